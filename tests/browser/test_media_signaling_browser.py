"""twilio-video.js with the options real apps use: dominant speaker, network quality,
automaticSubscription: false and reconnecting participants (issue 10).

Every page connects the way Twilio's reference app (twilio-video-app-react) does: a bandwidth
profile, dominantSpeaker, networkQuality {local: 1, remote: 1}, maxAudioBitrate and VP8
simulcast, or preferredVideoCodecs 'auto' (adaptive simulcast).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from twilio.rest import Client

from tests.browser.harness import Browser, Page, StaticServer
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = pytest.mark.stack(REALTIME)

BANDWIDTH_PROFILE = {
    "video": {
        "mode": "collaboration",
        "dominantSpeakerPriority": "standard",
        "clientTrackSwitchOffControl": "auto",
        "contentPreferencesMode": "auto",
    }
}
SIMULCAST = [{"codec": "VP8", "simulcast": True}]


def reference_app_options(codecs: Any) -> dict[str, Any]:
    return {
        "bandwidthProfile": BANDWIDTH_PROFILE,
        "dominantSpeaker": True,
        "networkQuality": {"local": 1, "remote": 1},
        "maxAudioBitrate": 16000,
        "preferredVideoCodecs": codecs,
    }


def rest_client(stack: Stack, tenant: Tenant) -> Client:
    return stack.rest_as(tenant.api_key.sid, tenant.key_secret, tenant.account.sid)


async def join(
    browser: Browser,
    web: StaticServer,
    stack: Stack,
    tenant: Tenant,
    identity: str,
    room: str,
    *,
    gain: float | None = None,
    video: bool = True,
    **options: Any,
) -> Page:
    """Open a page and connect ``identity``; ``gain`` publishes a tone of that loudness as the
    microphone (Chrome's fake microphone has one fixed level)."""
    page = await browser.new_page(web.url())
    if gain is not None:
        await page.eval(f"atrium.createToneTrack({{gain: {gain}}})")
    token = tenant.token(identity, room)
    connect = {"wsServer": stack.signaling_url, "name": room, "video": video, **options}
    result = await page.eval(
        f"atrium.settle(atrium.connect({json.dumps(token)}, {json.dumps(connect)}))", timeout=30
    )
    assert result["ok"], (result, page.console_text()[-3000:])
    return page


async def sid_of(page: Page) -> str:
    sid: str = (await page.eval("atrium.state()"))["localParticipant"]["sid"]
    return sid


def dominant_is(sid: str) -> str:
    return f"atrium.state().dominantSpeaker === {json.dumps(sid)}"


@pytest.mark.parametrize("codecs", [SIMULCAST, "auto"], ids=["vp8-simulcast", "auto"])
async def test_the_louder_participant_is_the_dominant_speaker(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer, codecs: Any
) -> None:
    options = reference_app_options(codecs)
    alice = await join(browser, web_server, stack, tenant, "alice", "speakers", gain=0.6, **options)
    bob = await join(browser, web_server, stack, tenant, "bob", "speakers", gain=0.0, **options)
    alice_sid, bob_sid = await sid_of(alice), await sid_of(bob)

    # Alice talks, Bob is silent: Bob's room names Alice (a RemoteParticipant there).
    await bob.wait_for(dominant_is(alice_sid), timeout=20)
    changed = await bob.eval(
        "atrium.events.filter(e => e.event === 'dominantSpeakerChanged').map(e => e.participantSid)"
    )
    assert alice_sid in changed

    # They swap: Bob becomes the dominant speaker; Alice's page follows.
    await alice.eval("atrium.setToneGain(0)")
    await bob.eval("atrium.setToneGain(0.6)")
    await alice.wait_for(dominant_is(bob_sid), timeout=20)


@pytest.mark.parametrize("codecs", [SIMULCAST, "auto"], ids=["vp8-simulcast", "auto"])
async def test_network_quality_levels_reach_local_and_remote_participants(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer, codecs: Any
) -> None:
    options = reference_app_options(codecs)
    alice = await join(browser, web_server, stack, tenant, "alice", "quality", gain=0.3, **options)
    bob = await join(browser, web_server, stack, tenant, "bob", "quality", gain=0.3, **options)
    for page, other in ((alice, "bob"), (bob, "alice")):
        await page.wait_for(
            "(() => { const s = atrium.state(); const l = s.localParticipant.networkQualityLevel;"
            f" const r = s.participants.find(p => p.identity === {json.dumps(other)});"
            " return Number.isInteger(l) && l >= 0 && l <= 5 && r"
            " && Number.isInteger(r.networkQualityLevel) && r.networkQualityLevel >= 0"
            " && r.networkQualityLevel <= 5; })()",
            timeout=20,
        )
        state = await page.eval("atrium.state()")
        # A clean loopback link: nothing lost, no delay worth the name.
        assert state["localParticipant"]["networkQualityLevel"] >= 4, state
        events = await page.eval(
            "atrium.events.filter(e => e.source === 'local'"
            " && e.event === 'networkQualityLevelChanged').map(e => e.level)"
        )
        assert events and all(0 <= level <= 5 for level in events), events


async def test_automatic_subscription_off_subscribes_to_nothing_until_rules_change(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    options = reference_app_options(SIMULCAST)
    alice = await join(browser, web_server, stack, tenant, "alice", "opt-in", gain=0.3, **options)
    bob = await join(
        browser,
        web_server,
        stack,
        tenant,
        "bob",
        "opt-in",
        video=False,
        gain=0.3,
        automaticSubscription=False,
        **options,
    )
    alice_sid, bob_sid = await sid_of(alice), await sid_of(bob)
    # Bob sees Alice's two publications but is subscribed to neither.
    await bob.wait_for(
        "atrium.state().participants.some(p => p.identity === 'alice' && p.tracks.length === 2)",
        timeout=20,
    )
    state = await bob.eval("atrium.state()")
    (remote,) = state["participants"]
    assert [t["subscribed"] for t in remote["tracks"]] == [False, False]
    client = rest_client(stack, tenant)
    room = client.video.v1.rooms("opt-in")
    rules = await asyncio.to_thread(lambda: room.participants(bob_sid).subscribe_rules.fetch())
    assert rules.rules == [
        {
            "type": "exclude",
            "all": True,
            "publisher": None,
            "track": None,
            "kind": None,
            "priority": None,
        }
    ]
    subscribed = await asyncio.to_thread(
        lambda: room.participants(bob_sid).subscribed_tracks.list()
    )
    assert subscribed == []
    # Alice, meanwhile, receives Bob as usual.
    await alice.wait_for(
        "atrium.state().participants.some(p => p.identity === 'bob'"
        " && p.tracks.length === 1 && p.tracks.every(t => t.subscribed))",
        timeout=20,
    )

    # The app opts Bob in to Alice's audio over REST: only that arrives.
    await asyncio.to_thread(
        lambda: room.participants(bob_sid).subscribe_rules.update(
            rules=[{"type": "include", "publisher": alice_sid, "kind": "audio"}]
        )
    )
    await bob.wait_for(
        "(() => { const a = atrium.state().participants.find(p => p.identity === 'alice');"
        " return a.tracks.filter(t => t.subscribed).map(t => t.kind).join() === 'audio'; })()",
        timeout=20,
    )

    async def rest_shows_audio() -> bool:
        tracks = await asyncio.to_thread(
            lambda: room.participants(bob_sid).subscribed_tracks.list()
        )
        return [t.kind for t in tracks] == ["audio"]

    await eventually(rest_shows_audio, timeout=10, message="SubscribedTracks shows the audio")


async def test_a_dropped_participant_is_seen_reconnecting_then_reconnected(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    options = reference_app_options(SIMULCAST)
    alice = await join(browser, web_server, stack, tenant, "alice", "flaky", gain=0.3, **options)
    bob = await join(browser, web_server, stack, tenant, "bob", "flaky", gain=0.3, **options)
    alice_sid = await sid_of(alice)
    client = rest_client(stack, tenant)
    participant = client.video.v1.rooms("flaky").participants(alice_sid)

    # Alice's network goes away: her page is offline and her socket is cut the way a drop
    # would cut it (no clean close), so she cannot come back yet.
    await alice.send("Network.enable")
    await alice.send(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    assert stack.gateway is not None
    hub = stack.gateway.state.signaling
    first = next(iter(hub.connections.values()))  # Alice connected first
    await first.socket.close(4000)
    seen = "atrium.events.some(e => e.event === '%s' && e.participantSid === %s)"
    await bob.wait_for(seen % ("participantReconnecting", json.dumps(alice_sid)), timeout=10)
    state = await bob.eval("atrium.state()")
    assert [p["state"] for p in state["participants"]] == ["reconnecting"]

    async def rest_status_is(status: str) -> bool:
        return bool((await asyncio.to_thread(participant.fetch)).status == status)

    await eventually(
        lambda: rest_status_is("reconnecting"), timeout=10, message="REST shows alice reconnecting"
    )

    # Back online: she resumes her session and everybody sees her connected again.
    await alice.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    await bob.wait_for(seen % ("participantReconnected", json.dumps(alice_sid)), timeout=30)
    await eventually(
        lambda: rest_status_is("connected"), timeout=10, message="REST shows alice connected again"
    )
