"""The browser harness itself: page, pinned SDK, fake media and the measuring helpers."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.browser.harness import (
    Browser,
    StaticServer,
    free_port,
    pinned_twilio_video_version,
    process_group_alive,
    require_chromium,
)
from tests.support.tenants import mint_token

LOCAL_VIDEO = "local:video:"
LOCAL_AUDIO = "local:audio:"


def _by_prefix(media: dict[str, Any], prefix: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [stats for key, stats in media.items() if key.startswith(prefix)]
    assert len(found) == 1, media
    return found[0]


async def test_page_loads_pinned_sdk_and_measures_local_media(
    browser: Browser, web_server: StaticServer
) -> None:
    page = await browser.new_page(web_server.url())

    assert await page.eval("Twilio.Video.version") == pinned_twilio_video_version()
    assert await page.eval("atrium.version") == pinned_twilio_video_version()
    assert await page.eval("Twilio.Video.isSupported") is True

    tracks = await page.eval(
        "atrium.createLocalTracks({audio: true, video: {width: 320, height: 240}})"
    )
    assert sorted(t["kind"] for t in tracks) == ["audio", "video"]
    await page.eval("atrium.monitorLocal()")

    # The fake camera's picture moves: frames must be decoded and differ from each other.
    video = await page.wait_for(
        f"""(() => {{
            const v = Object.entries(atrium.media())
                .find(([k]) => k.startsWith({json.dumps(LOCAL_VIDEO)}))[1];
            return v.distinctFrames >= 5 && v.decodedFrames >= 10 && v.callbackFrames >= 10
                ? v : null;
        }})()""",
        timeout=20,
    )
    assert (video["width"], video["height"]) == (320, 240), video
    assert video["changes"] >= 4, video

    # The fake microphone beeps: energy above silence at some point.
    audio = await page.wait_for(
        f"""(() => {{
            const a = Object.entries(atrium.media())
                .find(([k]) => k.startsWith({json.dumps(LOCAL_AUDIO)}))[1];
            return a.maxRms > 0.01 ? a : null;
        }})()""",
        timeout=20,
    )
    assert audio["contextState"] == "running", audio
    assert audio["loudSamples"] >= 1, audio

    # Stopping freezes the numbers and releases the devices.
    await page.eval("atrium.disconnect()")
    media = await page.eval("atrium.media()")
    assert _by_prefix(media, LOCAL_VIDEO)["stopped"] is not None
    assert _by_prefix(media, LOCAL_AUDIO)["stopped"] is not None
    assert await page.eval("atrium.localTracks.map(t => t.mediaStreamTrack.readyState)") == [
        "ended",
        "ended",
    ]
    assert page.errors == []


async def test_connect_uses_ws_server_and_fails_with_53000_when_nothing_listens(
    browser: Browser, web_server: StaticServer
) -> None:
    page = await browser.new_page(web_server.url())
    port = free_port()
    token = mint_token("alice", "smoke-room")
    options = {
        "wsServer": f"ws://127.0.0.1:{port}/signaling",
        "name": "smoke-room",
        "insights": False,
        "iceServers": [],
        "tracks": [],
    }

    started = time.monotonic()
    outcome = await page.eval(
        f"atrium.settle(Twilio.Video.connect({json.dumps(token)}, {json.dumps(options)}))",
        timeout=30,
    )
    elapsed = time.monotonic() - started

    assert outcome["ok"] is False, outcome
    assert outcome["error"]["code"] == 53000, outcome  # SignalingConnectionError
    assert elapsed < 10, elapsed
    # The SDK tried the local URL, and nothing else: no request left this machine.
    assert f"ws://127.0.0.1:{port}/signaling" in page.websockets, page.websockets
    assert page.foreign_urls() == [], page.foreign_urls()
    assert "twilio.com" not in page.console_text(), page.console_text()

    # The same through the page API (which forces insights:false, iceServers:[]).
    outcome = await page.eval(
        f"atrium.settle(atrium.connect({json.dumps(token)}, "
        f"{{wsServer: 'ws://127.0.0.1:{port}/signaling', name: 'smoke-room'}}))"
    )
    assert outcome["ok"] is False and outcome["error"]["code"] == 53000, outcome
    events = await page.eval("atrium.events")
    assert [e["event"] for e in events] == ["connecting", "connectFailed"], events
    assert events[-1]["errorCode"] == 53000, events


async def test_browser_close_ends_the_whole_process_group(web_server: StaticServer) -> None:
    instance = await Browser(require_chromium()).start()
    try:
        page = await instance.new_page(web_server.url())
        await page.eval("atrium.createLocalTracks({video: true})")
        assert instance.proc is not None
        pgid = instance.proc.pid
        assert process_group_alive(pgid)
    finally:
        await instance.close()
    assert not process_group_alive(pgid)
    assert not instance.profile.exists()


LOOPBACK_JS = """(async () => {
    const [a, b] = [new RTCPeerConnection(), new RTCPeerConnection()];
    window.loopback = [a, b];
    a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
    b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
    b.ontrack = (e) => atrium.monitor(`loop:${e.track.kind}`, e.track);
    for (const t of atrium.localTracks) a.addTrack(t.mediaStreamTrack);
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
    return true;
})()"""

FROZEN_AND_SILENT_JS = """(() => {
    const canvas = document.createElement('canvas');
    canvas.width = 64; canvas.height = 48;
    const g = canvas.getContext('2d');
    g.fillStyle = '#3a6'; g.fillRect(0, 0, 64, 48);
    const frozen = canvas.captureStream(10).getVideoTracks()[0];
    // captureStream only emits a frame when the canvas changes: repaint the same picture.
    window.repaint = setInterval(() => g.fillRect(0, 0, 64, 48), 50);
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    gain.gain.value = 0;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    atrium.monitor('frozen:video', frozen);
    atrium.monitor('silent:audio', dest.stream.getAudioTracks()[0]);
    return true;
})()"""


async def test_measuring_helpers_on_webrtc_received_media(
    browser: Browser, web_server: StaticServer
) -> None:
    """Tracks that went through a real (in-page, loopback) WebRTC connection are measured as
    moving and audible; a frozen picture and silence are measured as such."""
    page = await browser.new_page(web_server.url())
    await page.eval("atrium.createLocalTracks({audio: true, video: {width: 320, height: 240}})")
    await page.eval(LOOPBACK_JS)
    await page.eval(FROZEN_AND_SILENT_JS)

    video = await page.wait_for(
        "(v => v && v.distinctFrames >= 5 && v.decodedFrames >= 10 ? v : null)"
        "(atrium.media()['loop:video'])",
        timeout=20,
    )
    assert video["width"] > 0 and video["height"] > 0, video
    audio = await page.wait_for(
        "(a => a && a.maxRms > 0.01 ? a : null)(atrium.media()['loop:audio'])", timeout=20
    )
    assert audio["loudSamples"] >= 1, audio

    media = await page.wait_for(
        "(m => m['frozen:video'].samples >= 10 && m['silent:audio'].samples >= 10 ? m : null)"
        "(atrium.media())",
        timeout=20,
    )
    assert media["frozen:video"]["distinctFrames"] == 1, media["frozen:video"]
    assert media["frozen:video"]["changes"] == 0, media["frozen:video"]
    assert media["silent:audio"]["maxRms"] < 0.001, media["silent:audio"]
    assert media["silent:audio"]["loudSamples"] == 0, media["silent:audio"]

    await page.eval("clearInterval(window.repaint); loopback.forEach(pc => pc.close()); true")
    await page.eval("atrium.disconnect()")
