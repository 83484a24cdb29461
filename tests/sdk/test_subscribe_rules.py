"""SubscribeRules set over REST (twilio-python) take effect on live media in the Python SDK."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from atrium_video import RemoteVideoTrack, Room, create_local_video_track
from tests.support.rules import as_returned
from tests.support.sdk import Recorder, distinct_video, full_tracks, join, publication
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.stack(REALTIME)]

# The bound: a subscriber starts or stops receiving within one second of the POST.
EFFECT_SECONDS = 1.0
NO_ALICE_VIDEO = [
    {"type": "include", "all": True},
    {"type": "exclude", "publisher": "alice", "kind": "video"},
]
INCLUDE_ALL = [{"type": "include", "all": True}]


async def set_rules(stack: Stack, tenant: Tenant, room: Room, rules: Any) -> Any:
    participant = room.local_participant.sid
    return await asyncio.to_thread(
        lambda: (
            stack.rest(tenant)
            .video.v1.rooms(room.sid)
            .participants(participant)
            .subscribe_rules.update(rules=rules)
        )
    )


async def rest_subscribed(stack: Stack, tenant: Tenant, room: Room) -> set[str]:
    participant = room.local_participant.sid
    listed = await asyncio.to_thread(
        lambda: (
            stack.rest(tenant)
            .video.v1.rooms(room.sid)
            .participants(participant)
            .subscribed_tracks.list()
        )
    )
    return {t.sid for t in listed}


def flowing(room: Room) -> set[str]:
    """The remote tracks the SDK really has (publication.track set)."""
    return {
        sid
        for p in room.participants.values()
        for sid, pub in p.tracks.items()
        if pub.track is not None
    }


async def wait_event(
    seen: Recorder, name: str, sid: str, count: int, started: float, timeout: float = EFFECT_SECONDS
) -> float:
    """Wait until ``name`` fired ``count`` times for ``sid``; seconds since ``started``."""
    await eventually(
        lambda: seen.count(name, sid) >= count,
        timeout=timeout,
        interval=0.01,
        message=f"{name} {sid} x{count}",
    )
    return time.monotonic() - started


async def matches_rest(stack: Stack, tenant: Tenant, room: Room) -> None:
    async def probe() -> bool:
        listed = await rest_subscribed(stack, tenant, room)
        assert listed == flowing(room), (listed, flowing(room))
        return True

    await eventually(probe, timeout=5, message="SubscribedTracks matches what flows")


async def test_rules_decide_what_bob_receives_and_changes_apply_live(
    stack: Stack, tenant: Tenant
) -> None:
    # Bob is first; his rule names "alice", who is not there yet.
    bob, bob_seen = await join(stack, tenant, "bob", "rules-live", tracks=full_tracks())
    updated = await set_rules(stack, tenant, bob, NO_ALICE_VIDEO)
    assert updated.rules[1] == as_returned(type="exclude", publisher="alice", kind="video")
    alice, alice_seen = await join(stack, tenant, "alice", "rules-live", tracks=full_tracks())
    try:
        # Alice receives all of Bob's tracks (her rules are the default).
        async def alice_has_bob() -> bool:
            other = alice.get_participant("bob")
            return (
                other is not None
                and len(other.tracks) == 3
                and all(p.is_subscribed for p in other.tracks.values())
            )

        await eventually(alice_has_bob, timeout=20, message="alice subscribes to bob")

        async def bob_sees_alice() -> bool:
            other = bob.get_participant("alice")
            return other is not None and len(other.tracks) == 3

        await eventually(bob_sees_alice, timeout=20, message="bob sees alice's publications")
        audio = publication(bob, "alice", "audio")
        data = publication(bob, "alice", "data")
        video = publication(bob, "alice", "video")
        await eventually(
            lambda: audio.is_subscribed and data.is_subscribed,
            timeout=20,
            message="bob subscribes to alice's audio and data",
        )
        await matches_rest(stack, tenant, bob)
        assert not video.is_subscribed and video.track is None
        assert bob_seen.count("track_subscribed", video.track_sid) == 0
        assert bob_seen.count("track_subscribed") == 2

        # Include all: the video is subscribed within the bound and its frames arrive.
        started = time.monotonic()
        await set_rules(stack, tenant, bob, INCLUDE_ALL)
        took = await wait_event(bob_seen, "track_subscribed", video.track_sid, 1, started)
        track = video.track
        assert isinstance(track, RemoteVideoTrack)
        await asyncio.wait_for(track.recv(), 5)
        first_frame = time.monotonic() - started
        print(f"include: track_subscribed after {took:.3f}s, first frame {first_frame:.3f}s")
        assert await distinct_video(track) >= 3
        await matches_rest(stack, tenant, bob)

        # Applying the same rules again changes nothing.
        await set_rules(stack, tenant, bob, INCLUDE_ALL)
        await matches_rest(stack, tenant, bob)
        assert bob_seen.count("track_subscribed", video.track_sid) == 1
        assert bob_seen.count("track_unsubscribed") == 0

        # Exclude again: unsubscribed within the bound; then back, on the same m-line.
        started = time.monotonic()
        await set_rules(stack, tenant, bob, NO_ALICE_VIDEO)
        took = await wait_event(bob_seen, "track_unsubscribed", video.track_sid, 1, started)
        print(f"exclude: track_unsubscribed after {took:.3f}s")
        assert video.track is None and audio.is_subscribed and data.is_subscribed
        await matches_rest(stack, tenant, bob)
        transceivers = len(bob.peer_connection.getTransceivers())
        started = time.monotonic()
        await set_rules(stack, tenant, bob, INCLUDE_ALL)
        await wait_event(bob_seen, "track_subscribed", video.track_sid, 2, started)
        again = video.track
        assert isinstance(again, RemoteVideoTrack) and again is not track
        assert await distinct_video(again) >= 3
        assert len(bob.peer_connection.getTransceivers()) == transceivers
        await matches_rest(stack, tenant, bob)

        # Alice's side never changed: three local publications, Bob's three all subscribed.
        assert len(alice.local_participant.tracks) == 3
        assert alice_seen.count("track_unsubscribed") == 0
        # Bob unsubscribing from everything by track name and kind, in one rule set.
        await set_rules(
            stack,
            tenant,
            bob,
            [
                {"type": "include", "all": True},
                {"type": "exclude", "track": "mic", "kind": "audio"},
                {"type": "exclude", "kind": "data"},
            ],
        )
        await eventually(
            lambda: flowing(bob) == {video.track_sid}, timeout=5, message="bob keeps only the video"
        )
        await matches_rest(stack, tenant, bob)
        # Data comes back on a new channel: messages reach Bob again.
        await set_rules(stack, tenant, bob, INCLUDE_ALL)
        await eventually(
            lambda: len(flowing(bob)) == 3, timeout=5, message="bob receives all of alice again"
        )
        chat = next(iter(alice.local_participant.data_tracks.values())).track
        assert chat is not None

        async def delivered() -> bool:
            chat.send("after the rules")  # again on each probe: a message may race the channel
            return "after the rules" in bob_seen.messages

        await eventually(delivered, timeout=5, message="data after re-subscribing")
        await matches_rest(stack, tenant, bob)
    finally:
        await alice.disconnect()
        await bob.disconnect()


async def test_rule_changes_converge_while_publishing_and_reconnecting(
    stack: Stack, tenant: Tenant
) -> None:
    bob, bob_seen = await join(stack, tenant, "bob", "rules-races", audio=True)
    alice, _ = await join(stack, tenant, "alice", "rules-races", tracks=full_tracks())
    try:
        await eventually(lambda: len(flowing(bob)) == 3, timeout=20, message="bob receives alice")
        # A burst of changes: the last one wins.
        for rules in (NO_ALICE_VIDEO, INCLUDE_ALL, NO_ALICE_VIDEO, INCLUDE_ALL, NO_ALICE_VIDEO):
            await set_rules(stack, tenant, bob, rules)
        video = publication(bob, "alice", "video")
        audio_sid = publication(bob, "alice", "audio").track_sid
        data_sid = publication(bob, "alice", "data").track_sid
        await eventually(
            lambda: flowing(bob) == {audio_sid, data_sid},
            timeout=5,
            message="the burst settles on no video",
        )
        await matches_rest(stack, tenant, bob)

        # Rules change while Alice's new track is still being negotiated.
        publishing = asyncio.ensure_future(
            alice.local_participant.publish_track(create_local_video_track(name="cam2"))
        )
        await set_rules(
            stack,
            tenant,
            bob,
            [{"type": "include", "all": True}, {"type": "exclude", "track": "cam"}],
        )
        cam2 = await asyncio.wait_for(publishing, 20)
        await eventually(
            lambda: flowing(bob) == {audio_sid, data_sid, cam2.track_sid},
            timeout=10,
            message="cam excluded by name, cam2 subscribed",
        )
        await matches_rest(stack, tenant, bob)

        # Rules change while Bob's signaling socket is down: he converges after the sync.
        transport = bob._transport
        assert transport is not None
        transport.drop()
        await set_rules(stack, tenant, bob, INCLUDE_ALL)
        await eventually(
            lambda: bob_seen.count("reconnected") == 1, timeout=15, message="bob reconnected"
        )
        await eventually(
            lambda: video.track_sid in flowing(bob),
            timeout=10,
            message="cam subscribed again after the sync",
        )
        assert flowing(bob) == {audio_sid, data_sid, cam2.track_sid, video.track_sid}
        assert isinstance(video.track, RemoteVideoTrack)
        assert await distinct_video(video.track) >= 3
        await matches_rest(stack, tenant, bob)
    finally:
        await alice.disconnect()
        await bob.disconnect()
