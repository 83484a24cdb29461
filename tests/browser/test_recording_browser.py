"""twilio-video.js in a recorded room (issue 11): the unmodified SDK sees the room's recording
state, and every track it publishes ends up as its own playable file behind Twilio's REST.

The room is created over REST with RecordParticipantsOnConnect=true; two pages connect the way
Twilio's reference app (twilio-video-app-react) does (bandwidth profile, dominant speaker, network
quality, maxAudioBitrate, VP8 simulcast) and publish a tone as the microphone and Chrome's fake
camera. After they leave, the four recordings are completed, and each one's media downloads
through ``/Media`` (a redirect to a signed URL) and decodes with PyAV.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from atrium_media.recording.recorder import KEYFRAME_REQUEST_INTERVAL
from tests.browser.harness import Browser, Page, StaticServer
from tests.support.rtp_media import decode_file
from tests.support.stack import RECORDED, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually
from tests.support.webhook import Webhook

pytestmark = [pytest.mark.timeout(180), pytest.mark.stack(RECORDED)]

SECONDS = 4.0  # how long both pages publish while recorded
ROOM = "recorded-browser"
BANDWIDTH_PROFILE = {
    "video": {
        "mode": "collaboration",
        "dominantSpeakerPriority": "standard",
        "clientTrackSwitchOffControl": "auto",
        "contentPreferencesMode": "auto",
    }
}
REFERENCE_APP_OPTIONS = {
    "bandwidthProfile": BANDWIDTH_PROFILE,
    "dominantSpeaker": True,
    "networkQuality": {"local": 1, "remote": 1},
    "maxAudioBitrate": 16000,
    "preferredVideoCodecs": [{"codec": "VP8", "simulcast": True}],
}
EXPECTED = {"audio": ("mka", "OPUS", "opus"), "video": ("mkv", "VP8", "vp8")}


async def join(
    browser: Browser, web: StaticServer, stack: Stack, tenant: Tenant, identity: str
) -> Page:
    """A page that publishes a 440 Hz tone (named "mic") and the fake camera into ROOM."""
    page = await browser.new_page(web.url())
    await page.eval("atrium.createToneTrack({gain: 0.3, name: 'mic'})")
    connect = {
        "wsServer": stack.signaling_url,
        "name": ROOM,
        "video": True,
        **REFERENCE_APP_OPTIONS,
    }
    token = json.dumps(tenant.token(identity, ROOM))
    result = await page.eval(
        f"atrium.settle(atrium.connect({token}, {json.dumps(connect)}))", timeout=30
    )
    assert result["ok"], (result, page.console_text()[-3000:])
    return page


async def test_a_recorded_room_of_twilio_video_js_gives_four_playable_files(
    stack: Stack,
    tenant: Tenant,
    webhook: Webhook,
    browser: Browser,
    web_server: StaticServer,
    tmp_path: Path,
) -> None:
    client = stack.rest(tenant)
    room = await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(
            unique_name=ROOM,
            record_participants_on_connect=True,
            status_callback=webhook.url("/events"),
        )
    )
    alice = await join(browser, web_server, stack, tenant, "alice")
    bob = await join(browser, web_server, stack, tenant, "bob")
    pages = {"alice": alice, "bob": bob}
    try:
        for page, other in ((alice, "bob"), (bob, "alice")):
            await page.wait_for(
                f"atrium.state().participants.some(p => p.identity === {json.dumps(other)}"
                " && p.tracks.length === 2 && p.tracks.every(t => t.subscribed))",
                timeout=20,
            )
        # Both pages see the room recording; the first to join saw it start (an empty room
        # records nothing, so its state changed once its own tracks were recorded).
        for page in pages.values():
            await page.wait_for("atrium.state().isRecording === true", timeout=15)
        await alice.wait_for(
            "atrium.events.some(e => e.source === 'room' && e.event === 'recordingStarted')",
            timeout=15,
        )

        # The media worker says when it really records a track (recording-started).
        def started() -> bool:
            events = [r.params.get("StatusCallbackEvent") for r in webhook.for_room(room.sid)]
            return events.count("recording-started") == 4

        await eventually(started, timeout=20, message="four recording-started callbacks")
        published_at = time.monotonic()
        await asyncio.sleep(SECONDS)  # the media being recorded: real time passing is the point
        state = await alice.eval("atrium.state()")
        identities = {state["localParticipant"]["sid"]: "alice"}
        identities.update({p["sid"]: p["identity"] for p in state["participants"]})
        names = {t["trackSid"]: t["trackName"] for t in state["localParticipant"]["tracks"]}
        for remote in state["participants"]:
            names.update({t["trackSid"]: t["trackName"] for t in remote["tracks"]})
    finally:
        for page in pages.values():
            await page.eval("atrium.disconnect()")
    published_for = time.monotonic() - published_at

    async def all_completed() -> list[Any]:
        found = await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).recordings.list())
        done = len(found) == 4 and all(r.status == "completed" for r in found)
        return found if done else []

    recordings = await eventually(all_completed, timeout=30, message="four recordings completed")
    seen: set[tuple[str, str]] = set()
    auth = (tenant.api_key.sid, tenant.key_secret)
    async with httpx.AsyncClient() as http:
        for recording in recordings:
            container, codec, decoder = EXPECTED[recording.type]
            assert (recording.container_format, recording.codec) == (container, codec), recording
            assert recording.grouping_sids["room_sid"] == room.sid
            participant = recording.grouping_sids["participant_sid"]
            assert recording.source_sid in names, (recording.source_sid, names)
            assert recording.track_name == names[recording.source_sid]
            assert recording.size > 0
            seen.add((identities[participant], recording.type))

            # The media: a redirect to a signed URL, then the file itself.
            redirect = await http.get(
                f"{stack.base_url}/v1/Recordings/{recording.sid}/Media", auth=auth
            )
            assert redirect.status_code == 302, redirect.text
            download = await http.get(redirect.headers["location"])
            assert download.status_code == 200, download.text
            assert len(download.content) == recording.size
            path = tmp_path / f"{recording.sid}.{container}"
            path.write_bytes(download.content)

            decoded = await asyncio.to_thread(decode_file, str(path))
            assert decoded.codec == decoder, decoded
            if recording.type == "audio":
                assert decoded.rms > 0.01, decoded  # the tone, not silence
            else:
                assert decoded.distinct_pictures >= 10, decoded  # the fake camera moves
            # Recorded from before the timed window to the disconnect. Video starts at the first
            # keyframe, which may take the recorder's own keyframe request (once a second).
            late = KEYFRAME_REQUEST_INTERVAL if recording.type == "video" else 0.0
            assert published_for - 1.0 - late <= decoded.duration <= published_for + 6.0, (
                decoded,
                published_for,
            )
    assert seen == {("alice", "audio"), ("alice", "video"), ("bob", "audio"), ("bob", "video")}
