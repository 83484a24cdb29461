"""The Python client SDK (atrium_video) against the real stack: real signaling, real WebRTC."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atrium_video import (
    LocalDataTrack,
    RemoteAudioTrack,
    RemoteDataTrack,
    RemoteParticipant,
    RemoteVideoTrack,
    Room,
    TwilioError,
    connect,
    create_local_video_track,
)
from tests.support.sdk import (
    Recorder,
    audio_energy,
    distinct_video,
    full_tracks,
    join,
    remote,
    sees,
)
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.stack(REALTIME)]


async def test_two_sdk_participants_exchange_audio_video_and_data(
    stack: Stack, tenant: Tenant
) -> None:
    alice, alice_events = await join(stack, tenant, "alice", "sdk-pair", tracks=full_tracks())
    assert alice.sid.startswith("RM") and alice.name == "sdk-pair"
    assert alice.local_participant.sid.startswith("PA")
    assert alice.local_participant.identity == "alice"
    assert {p.kind for p in alice.local_participant.tracks.values()} == {"audio", "video", "data"}
    assert all(sid.startswith("MT") for sid in alice.local_participant.tracks)
    bob, bob_events = await join(stack, tenant, "bob", "sdk-pair", tracks=full_tracks())
    try:
        await eventually(sees(alice, "bob", 3), timeout=20, message="alice subscribes to bob")
        await eventually(sees(bob, "alice", 3), timeout=20, message="bob subscribes to alice")
        for room, other in ((alice, "bob"), (bob, "alice")):
            audio = remote(room, other, "audio")
            video = remote(room, other, "video")
            assert isinstance(audio, RemoteAudioTrack) and isinstance(video, RemoteVideoTrack)
            assert await audio_energy(audio) > 0.05
            assert await distinct_video(video) >= 3
            assert isinstance(remote(room, other, "data"), RemoteDataTrack)
        alice_data = next(iter(alice.local_participant.data_tracks.values())).track
        bob_data = next(iter(bob.local_participant.data_tracks.values())).track
        assert isinstance(alice_data, LocalDataTrack) and isinstance(bob_data, LocalDataTrack)
        alice_data.send("hello from alice")
        alice_data.send(b"\x00\x01 bytes from alice")
        bob_data.send("hello from bob")
        await eventually(
            lambda: bob_events.messages == ["hello from alice", b"\x00\x01 bytes from alice"],
            timeout=10,
            message="bob gets alice's messages",
        )
        await eventually(
            lambda: alice_events.messages == ["hello from bob"],
            timeout=10,
            message="alice gets bob's message",
        )
    finally:
        await bob.disconnect()
        await alice.disconnect()


def order_ok(events: list[tuple[str, Any]], first: tuple[str, Any], then: tuple[str, Any]) -> bool:
    return events.index(first) < events.index(then)


async def test_events_fire_once_in_order_through_publish_toggle_unpublish_and_leave(
    stack: Stack, tenant: Tenant
) -> None:
    alice, seen = await join(stack, tenant, "alice", "sdk-events", tracks=full_tracks())
    bob, bob_seen = await join(stack, tenant, "bob", "sdk-events", tracks=full_tracks())
    try:
        await eventually(sees(alice, "bob", 3), timeout=20, message="alice subscribes to bob")
        bob_sids = list(bob.local_participant.tracks)
        assert seen.count("participant_connected", "bob") == 1
        for sid in bob_sids:
            assert seen.count("track_published", sid) == 1
            assert seen.count("track_subscribed", sid) == 1
            assert order_ok(seen.events, ("participant_connected", "bob"), ("track_published", sid))
            assert order_ok(seen.events, ("track_published", sid), ("track_subscribed", sid))
        # The participant-level events are the same ones, without the participant argument.
        bob_remote = alice.get_participant("bob")
        assert isinstance(bob_remote, RemoteParticipant) and bob_remote.state == "connected"

        # Disable / enable reach the subscriber as track_disabled / track_enabled, once each.
        audio_pub = next(iter(bob.local_participant.audio_tracks.values()))
        audio_pub.track.disable()
        await eventually(
            lambda: seen.count("track_disabled", audio_pub.track_sid) == 1, message="track_disabled"
        )
        remote_pub = bob_remote.tracks[audio_pub.track_sid]
        assert not remote_pub.is_track_enabled and remote_pub.track is not None
        assert not remote_pub.track.is_enabled
        audio_pub.track.enable()
        await eventually(
            lambda: seen.count("track_enabled", audio_pub.track_sid) == 1, message="track_enabled"
        )
        assert remote_pub.is_track_enabled

        # Unpublishing: the subscriber sees track_unsubscribed, then track_unpublished.
        video_pub = next(iter(bob.local_participant.video_tracks.values()))
        assert await bob.local_participant.unpublish_track(video_pub.track) is video_pub
        assert video_pub.track_sid not in bob.local_participant.tracks
        await eventually(
            lambda: seen.count("track_unpublished", video_pub.track_sid) == 1,
            message="track_unpublished",
        )
        assert seen.count("track_unsubscribed", video_pub.track_sid) == 1
        assert order_ok(
            seen.events,
            ("track_unsubscribed", video_pub.track_sid),
            ("track_unpublished", video_pub.track_sid),
        )

        # Publishing after joining (a client re-offer): published, then subscribed.
        fresh = await bob.local_participant.publish_track(create_local_video_track(name="cam2"))
        assert fresh.track_sid.startswith("MT") and fresh.track_name == "cam2"
        assert bob_seen.count("track_published") == 0  # local publications are not room events
        await eventually(sees(alice, "bob", 3), timeout=20, message="alice subscribes to cam2")
        assert seen.count("track_published", fresh.track_sid) == 1
        assert seen.count("track_subscribed", fresh.track_sid) == 1
        assert await distinct_video(remote(alice, "bob", "video")) >= 3

        # Leaving: unsubscribed and unpublished per track, then participant_disconnected.
        remaining = list(bob.local_participant.tracks)
        await bob.disconnect()
        assert bob.state == "disconnected" and bob_seen.errors == [None]
        await eventually(
            lambda: seen.count("participant_disconnected", "bob") == 1,
            message="participant_disconnected",
        )
        for sid in remaining:
            assert seen.count("track_unsubscribed", sid) == 1
            assert seen.count("track_unpublished", sid) == 1
            assert order_ok(
                seen.events, ("track_unpublished", sid), ("participant_disconnected", "bob")
            )
        assert alice.participants == {}
        assert seen.count("participant_connected") == 1
        assert seen.count("disconnected") == 0
    finally:
        await bob.disconnect()
        await alice.disconnect()


def rest_room(stack: Stack, tenant: Tenant, room_sid: str) -> Any:
    return stack.rest(tenant).video.v1.rooms(room_sid)


async def test_rest_kick_and_room_completion_reach_the_sdk(stack: Stack, tenant: Tenant) -> None:
    alice, seen = await join(stack, tenant, "alice", "sdk-managed", audio=True)
    bob, bob_seen = await join(stack, tenant, "bob", "sdk-managed", video=True)
    try:
        await eventually(sees(alice, "bob", 1), timeout=20, message="alice sees bob")
        room = rest_room(stack, tenant, alice.sid)
        bob_sid = bob.local_participant.sid
        await asyncio.to_thread(lambda: room.participants(bob_sid).update(status="disconnected"))
        await eventually(lambda: bob.state == "disconnected", message="bob kicked")
        assert bob_seen.events[-1] == ("disconnected", None) and bob_seen.errors == [None]
        await eventually(
            lambda: seen.count("participant_disconnected", "bob") == 1,
            message="alice sees bob leave",
        )

        await asyncio.to_thread(lambda: room.update(status="completed"))
        await eventually(lambda: alice.state == "disconnected", message="room completed")
        assert len(seen.errors) == 1 and isinstance(seen.errors[0], TwilioError)
        assert seen.errors[0].code == 53118
    finally:
        await bob.disconnect()
        await alice.disconnect()


async def test_token_defects_fail_with_their_2010x_codes(stack: Stack, tenant: Tenant) -> None:
    cases = [
        (20101, "not-a-token"),
        (20107, tenant.token("mallory", secret="x" * 32)),
        # An API key SID that does not exist: the same 20107, so guessing SIDs reveals nothing.
        (20107, tenant.token("mallory", api_key_sid="SK" + "9" * 32)),
        (20104, tenant.token("mallory", ttl=-600)),
        (20106, tenant.token("mallory", room="another-room")),
    ]
    for code, token in cases:
        with pytest.raises(TwilioError) as caught:
            await connect(token, url=stack.signaling_url, name="guarded", timeout=10)
        assert caught.value.code == code, (code, caught.value)


async def test_unreachable_server_and_full_room(stack: Stack, tenant: Tenant) -> None:
    with pytest.raises(TwilioError) as caught:
        await connect(tenant.token("alice"), url="ws://127.0.0.1:9/signaling", name="x")
    assert caught.value.code == 53000

    client = stack.rest(tenant)
    await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(unique_name="tiny", max_participants=1)
    )
    first = await connect(tenant.token("alice"), url=stack.signaling_url, name="tiny")
    first_seen = Recorder(first)
    try:
        with pytest.raises(TwilioError) as full:
            await connect(tenant.token("bob"), url=stack.signaling_url, name="tiny")
        assert full.value.code == 53105
        # The same identity again takes the seat; the first connection is told 53205.
        second = await connect(tenant.token("alice"), url=stack.signaling_url, name="tiny")
        await eventually(lambda: first.state == "disconnected", message="53205")
        assert first_seen.errors[0] is not None and first_seen.errors[0].code == 53205
        await second.disconnect()
    finally:
        await first.disconnect()


async def test_three_participants_all_receive_each_other(stack: Stack, tenant: Tenant) -> None:
    rooms = [
        (await join(stack, tenant, who, "sdk-trio", tracks=full_tracks()))
        for who in ("ann", "ben", "cat")
    ]
    try:
        for room, _seen in rooms:
            me = room.local_participant.identity
            for other in {"ann", "ben", "cat"} - {me}:
                await eventually(sees(room, other, 3), timeout=30, message=f"{me} sees {other}")
                assert await distinct_video(remote(room, other, "video")) >= 2
                assert await audio_energy(remote(room, other, "audio"), frames=25) > 0.05
        for room, _ in rooms:
            data = next(iter(room.local_participant.data_tracks.values())).track
            assert isinstance(data, LocalDataTrack)
            data.send(f"hi from {room.local_participant.identity}")
        for room, seen in rooms:
            me = room.local_participant.identity
            expected = {f"hi from {o}" for o in {"ann", "ben", "cat"} - {me}}

            async def got_both(recorder: Recorder = seen, wanted: set[str] = expected) -> bool:
                return set(recorder.messages) == wanted

            await eventually(got_both, message=f"{me} gets both messages")
            # Participants already in the room at connect() are in `participants`, not events.
            assert seen.count("participant_connected") == {"ann": 2, "ben": 1, "cat": 0}[me]
    finally:
        for room, _ in rooms:
            await room.disconnect()


async def test_a_dropped_signaling_socket_resyncs_and_keeps_media(
    stack: Stack, tenant: Tenant
) -> None:
    alice, seen = await join(stack, tenant, "alice", "sdk-sync", tracks=full_tracks())
    bob, _ = await join(stack, tenant, "bob", "sdk-sync", tracks=full_tracks())
    try:
        await eventually(sees(alice, "bob", 3), timeout=20, message="alice sees bob")
        transport = alice._transport
        assert transport is not None
        transport.drop()
        await eventually(lambda: seen.count("reconnected") == 1, timeout=15, message="reconnected")
        assert seen.events[-2:] == [("reconnecting", None), ("reconnected", None)]
        assert alice.state == "connected" and alice._transport is not transport
        assert await distinct_video(remote(alice, "bob", "video")) >= 3
        # Signaling works again: a new participant is seen, and leaving is clean.
        cat, _ = await join(stack, tenant, "cat", "sdk-sync", audio=True)
        await eventually(sees(alice, "cat", 1), timeout=20, message="alice sees cat")
        await cat.disconnect()
    finally:
        await bob.disconnect()
        await alice.disconnect()
    assert seen.errors == [None]


async def test_publishing_while_the_worker_offers_converges(stack: Stack, tenant: Tenant) -> None:
    """Publishes racing worker offers (newcomers' tracks): glare is resolved, nothing stalls."""
    bob, _ = await join(stack, tenant, "bob", "sdk-glare", audio=True)
    others: list[Room] = []
    try:
        for index in range(3):
            newcomer = asyncio.ensure_future(
                connect(
                    tenant.token(f"guest{index}"),
                    url=stack.signaling_url,
                    name="sdk-glare",
                    tracks=[create_local_video_track(), LocalDataTrack()],
                )
            )
            await bob.local_participant.publish_track(create_local_video_track(name=f"v{index}"))
            others.append(await newcomer)
        for index in range(3):
            await eventually(
                sees(bob, f"guest{index}", 2), timeout=20, message=f"bob sees guest{index}"
            )
        for guest in others:
            await eventually(sees(guest, "bob", 4), timeout=20, message="guests see bob")
        assert len(bob.local_participant.video_tracks) == 3
        print(f"glare rollbacks: {bob.glare_rollbacks}")
    finally:
        for guest in others:
            await guest.disconnect()
        await bob.disconnect()


async def test_glare_our_offer_is_rolled_back_and_made_again(stack: Stack, tenant: Tenant) -> None:
    """The worker's offer arrives while ours is pending (the worker dropped ours, as it does in
    glare): the SDK rolls back, answers, offers again, and both directions keep working."""
    bob, _ = await join(stack, tenant, "bob", "sdk-glare2", audio=True)
    transport = bob._transport
    assert transport is not None
    original = transport.send
    swallowed: list[dict[str, Any]] = []

    async def lossy_send(body: dict[str, Any]) -> bool:
        descriptions = [
            pc.get("description", {}).get("type") for pc in body.get("peer_connections") or []
        ]
        if "offer" in descriptions and not swallowed:
            swallowed.append(body)  # as if the worker had dropped it under glare
            return True
        return await original(body)

    transport.send = lossy_send  # type: ignore[method-assign]
    publishing = asyncio.ensure_future(
        bob.local_participant.publish_track(create_local_video_track(name="late"))
    )
    await eventually(lambda: bool(swallowed), message="bob's offer swallowed")
    cat, _ = await join(stack, tenant, "cat", "sdk-glare2", tracks=full_tracks())
    try:
        publication = await asyncio.wait_for(publishing, 20)
        assert publication.track_name == "late" and bob.glare_rollbacks >= 1
        await eventually(sees(bob, "cat", 3), timeout=20, message="bob subscribes to cat")
        await eventually(sees(cat, "bob", 2), timeout=20, message="cat subscribes to bob")
        assert await distinct_video(remote(bob, "cat", "video")) >= 3
        assert await distinct_video(remote(cat, "bob", "video")) >= 3
    finally:
        await cat.disconnect()
        await bob.disconnect()
