"""The unmodified twilio-video.js SDK in headless Chromium against a real Atrium stack."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.browser.harness import Browser, StaticServer
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.video_js import (
    connect_result,
    join,
    receives_media,
    remote_event,
    sees_all_tracks,
    two_in_a_room,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.stack(REALTIME)


async def test_a_browser_connects_and_rest_sees_it(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    page = await join(
        browser, web_server, stack, tenant.token("alice"), "browser-room", audio=True, video=True
    )
    state = await page.eval("atrium.state()")
    assert state["name"] == "browser-room" and state["sid"].startswith("RM")
    assert state["localParticipant"]["identity"] == "alice"
    assert state["localParticipant"]["sid"].startswith("PA")
    published = {t["kind"]: t for t in state["localParticipant"]["tracks"]}
    assert set(published) == {"audio", "video"}
    assert all(t["trackSid"].startswith("MT") for t in published.values())

    # REST sees the ad-hoc room, its connected participant and what it publishes.
    client = stack.rest(tenant)
    room = await asyncio.to_thread(lambda: client.video.v1.rooms("browser-room").fetch())
    assert room.sid == state["sid"] and room.status == "in-progress"
    (participant,) = await asyncio.to_thread(
        lambda: client.video.v1.rooms(room.sid).participants.list()
    )
    assert (participant.sid, participant.identity) == (state["localParticipant"]["sid"], "alice")
    tracks = await asyncio.to_thread(
        lambda: (
            client.video.v1.rooms(room.sid).participants(participant.sid).published_tracks.list()
        )
    )
    assert {t.sid for t in tracks} == {t["trackSid"] for t in published.values()}


async def test_two_browsers_exchange_audio_video_and_data(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    alice, bob = await two_in_a_room(
        browser, web_server, stack, tenant, "pair", tracks=3, audio=True, video=True, data=True
    )
    # Media really flows both ways: video frames decode and change, audio is above silence.
    for page, other in ((alice, "bob"), (bob, "alice")):
        assert await page.wait_for(receives_media(other), timeout=20)
    await alice.eval("atrium.sendData('hello from alice')")
    await bob.eval("atrium.sendData('hello from bob')")
    await bob.wait_for("atrium.dataMessages.some(m => m.data === 'hello from alice')")
    await alice.wait_for("atrium.dataMessages.some(m => m.data === 'hello from bob')")


async def test_rest_sees_real_tracks_then_kicks_and_completes(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    alice, bob = await two_in_a_room(
        browser, web_server, stack, tenant, "managed", tracks=3, audio=True, video=True, data=True
    )
    alice_state = await alice.eval("atrium.state()")
    bob_state = await bob.eval("atrium.state()")
    room_sid = alice_state["sid"]
    alice_sid = alice_state["localParticipant"]["sid"]
    bob_sid = bob_state["localParticipant"]["sid"]
    client = stack.rest(tenant)
    room = client.video.v1.rooms(room_sid)

    published = await asyncio.to_thread(
        lambda: room.participants(alice_sid).published_tracks.list()
    )
    assert {(t.sid, t.kind) for t in published} == {
        (t["trackSid"], t["kind"]) for t in alice_state["localParticipant"]["tracks"]
    }

    async def subscribed_matches() -> bool:
        subscribed = await asyncio.to_thread(
            lambda: room.participants(alice_sid).subscribed_tracks.list()
        )
        bob_tracks = {(t["trackSid"], t["kind"]) for t in bob_state["localParticipant"]["tracks"]}
        return {(t.sid, t.kind) for t in subscribed} == bob_tracks and all(
            t.publisher_sid == bob_sid for t in subscribed
        )

    await eventually(subscribed_matches, timeout=10, message="SubscribedTracks to match")

    # A REST kick: the kicked browser's room emits `disconnected`; the other sees it leave.
    await asyncio.to_thread(lambda: room.participants(bob_sid).update(status="disconnected"))
    await bob.wait_for("atrium.room.state === 'disconnected'", timeout=10)
    await alice.wait_for("atrium.state().participants.length === 0", timeout=10)
    assert await alice.eval(
        "atrium.events.some(e => e.event === 'participantDisconnected' && e.identity === 'bob')"
    )

    # Completing the room disconnects the remaining browser with Twilio's 53118.
    await asyncio.to_thread(lambda: room.update(status="completed"))
    await alice.wait_for("atrium.room.state === 'disconnected'", timeout=10)
    codes = await alice.eval(
        "atrium.events.filter(e => e.source === 'room' && e.event === 'disconnected')"
        ".map(e => e.errorCode)"
    )
    assert 53118 in codes, codes


async def test_token_defects_reach_the_browser_as_2010x(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    cases = [
        (20107, tenant.token("mallory", secret="x" * 32)),
        # An API key SID that does not exist: the same 20107, so guessing SIDs reveals nothing.
        (20107, tenant.token("mallory", api_key_sid="SK" + "9" * 32)),
        (20104, tenant.token("mallory", ttl=-600)),
        (20106, tenant.token("mallory", room="another-room")),
    ]
    page = await browser.new_page(web_server.url())
    ws = stack.signaling_url
    for code, token in cases:
        options = {"wsServer": ws, "name": "guarded", "tracks": []}
        result = await page.eval(
            f"atrium.settle(Twilio.Video.connect({json.dumps(token)},"
            f" Object.assign({json.dumps(options)}, {{insights: false, iceServers: []}})))"
        )
        assert not result["ok"] and result["error"]["code"] == code, (code, result)


async def test_capacity_duplicates_and_completed_rooms(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    client = stack.rest(tenant)
    tiny = await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(unique_name="tiny", max_participants=1)
    )
    first = await join(browser, web_server, stack, tenant.token("alice"), "tiny", audio=True)
    _, refused = await connect_result(
        browser, web_server, stack, tenant.token("bob"), "tiny", audio=True
    )
    assert not refused["ok"] and refused["error"]["code"] == 53105, refused

    # The same identity again takes the seat; the first connection is told 53205.
    await join(browser, web_server, stack, tenant.token("alice"), "tiny", audio=True)
    await first.wait_for("atrium.room.state === 'disconnected'", timeout=10)
    codes = await first.eval(
        "atrium.events.filter(e => e.event === 'disconnected').map(e => e.errorCode)"
    )
    assert 53205 in codes, codes

    await asyncio.to_thread(lambda: client.video.v1.rooms(tiny.sid).update(status="completed"))
    _, late = await connect_result(
        browser, web_server, stack, tenant.token("carol"), tiny.sid, audio=True
    )
    assert not late["ok"] and late["error"]["code"] == 53118, late


async def test_disable_enable_and_unpublish_reach_the_other_side_and_rest(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    alice = await join(
        browser, web_server, stack, tenant.token("alice"), "toggles", audio=True, video=True
    )
    bob = await join(browser, web_server, stack, tenant.token("bob"), "toggles", audio=True)
    await bob.wait_for(sees_all_tracks("alice", 2), timeout=20)
    state = await alice.eval("atrium.state()")
    video_sid = next(
        t["trackSid"] for t in state["localParticipant"]["tracks"] if t["kind"] == "video"
    )
    published = (
        stack.rest(tenant)
        .video.v1.rooms(state["sid"])
        .participants(state["localParticipant"]["sid"])
        .published_tracks
    )

    await alice.eval("atrium.localTracks.find(t => t.kind === 'video').disable()")
    await bob.wait_for(
        remote_event("trackDisabled", video_sid),
        timeout=10,
    )

    async def rest_enabled(expected: bool) -> bool:
        track = await asyncio.to_thread(lambda: published(video_sid).fetch())
        return bool(track.enabled is expected)

    await eventually(lambda: rest_enabled(False), timeout=10, message="REST enabled=false")
    await alice.eval("atrium.localTracks.find(t => t.kind === 'video').enable()")
    await bob.wait_for(
        remote_event("trackEnabled", video_sid),
        timeout=10,
    )
    await eventually(lambda: rest_enabled(True), timeout=10, message="REST enabled=true")

    await alice.eval(
        "atrium.room.localParticipant.unpublishTrack("
        "atrium.localTracks.find(t => t.kind === 'video'))"
    )
    await bob.wait_for(
        remote_event("trackUnpublished", video_sid),
        timeout=10,
    )

    async def gone_from_rest() -> bool:
        tracks = await asyncio.to_thread(lambda: published.list())
        return [t.kind for t in tracks] == ["audio"]

    await eventually(gone_from_rest, timeout=10, message="video gone from PublishedTracks")


async def test_a_dropped_signaling_socket_resumes_the_session(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    alice = await join(
        browser, web_server, stack, tenant.token("alice"), "flaky", audio=True, video=True
    )
    bob = await join(
        browser, web_server, stack, tenant.token("bob"), "flaky", audio=True, video=True
    )
    await bob.wait_for(receives_media("alice"), timeout=20)
    alice_sid = (await alice.eval("atrium.state()"))["localParticipant"]["sid"]

    # Cut every client's socket the way a network drop would (not a clean 1000 close).
    assert stack.gateway is not None
    hub = stack.gateway.state.signaling
    seen = await alice.eval("atrium.events.length")
    for connection in list(hub.connections.values()):
        await connection.socket.close(4000)
    room_event_after = "atrium.events.slice(%d).some(e => e.source === 'room' && e.event === '%s')"
    await alice.wait_for(room_event_after % (seen, "reconnecting"), timeout=10)
    await alice.wait_for(room_event_after % (seen, "reconnected"), timeout=20)
    state = await alice.eval("atrium.state()")
    assert state["state"] == "connected"
    assert state["localParticipant"]["sid"] == alice_sid
    assert [p["identity"] for p in state["participants"]] == ["bob"]
    # Media kept flowing: bob still sees alice, who is still the same participant.
    frames = await bob.eval("atrium.media()")
    key = next(k for k in frames if k.startswith("remote:alice:") and ":video:" in k)
    before = frames[key]["distinctFrames"]
    await bob.wait_for(f"atrium.media()[{json.dumps(key)}].distinctFrames > {before}", timeout=10)
