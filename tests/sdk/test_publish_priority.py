"""A track's publish priority, end to end on the real stack: the Python SDK publishes with one
and changes it, the track service stores it, and SubscribeRules set over REST (twilio-python)
with a ``priority`` filter follow it: the subscriber is subscribed and unsubscribed as the
publisher's priority changes, and REST SubscribedTracks says the same."""

from __future__ import annotations

from typing import Any

import pytest

from atrium_video import RemoteVideoTrack, Room, create_local_video_track
from tests.sdk.test_subscribe_rules import flowing, matches_rest, set_rules
from tests.support.sdk import distinct_video, join
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.stack(REALTIME)]

HIGH_VIDEO_ONLY = [{"type": "include", "kind": "video", "priority": "high"}]


def remote_publications(room: Room, identity: str) -> dict[str, Any]:
    """``identity``'s publications as ``room`` sees them, by track name."""
    other = room.get_participant(identity)
    return {} if other is None else {p.track_name: p for p in other.tracks.values()}


async def test_subscribe_rules_with_a_priority_filter_follow_the_publish_priority(
    stack: Stack, tenant: Tenant
) -> None:
    bob, bob_seen = await join(stack, tenant, "bob", "priority-rules")
    alice, _ = await join(stack, tenant, "alice", "priority-rules")
    try:
        updated = await set_rules(stack, tenant, bob, HIGH_VIDEO_ONLY)
        assert updated.rules[0]["priority"] == "high"
        cam = await alice.local_participant.publish_track(
            create_local_video_track(name="cam"), priority="high"
        )
        screen = await alice.local_participant.publish_track(
            create_local_video_track(name="screen")
        )
        assert (cam.priority, screen.priority) == ("high", "standard")

        # Bob sees both publications with their publish priority, and receives only the high one.
        await eventually(
            lambda: set(remote_publications(bob, "alice")) == {"cam", "screen"},
            timeout=20,
            message="bob sees alice's publications",
        )
        seen = remote_publications(bob, "alice")
        assert (seen["cam"].publish_priority, seen["screen"].publish_priority) == (
            "high",
            "standard",
        )
        await eventually(
            lambda: flowing(bob) == {cam.track_sid},
            timeout=10,
            message="bob receives the high-priority camera only",
        )
        track = seen["cam"].track
        assert isinstance(track, RemoteVideoTrack)
        assert await distinct_video(track) >= 3
        await matches_rest(stack, tenant, bob)

        # Alice lowers the camera and raises the screen: Bob's subscriptions swap, and his
        # publications say so.
        changes: list[tuple[str, str]] = []
        bob.on(
            "track_publish_priority_changed",
            lambda priority, publication, _participant: changes.append(
                (publication.track_name, priority)
            ),
        )
        cam.set_priority("low")
        screen.set_priority("high")
        await eventually(
            lambda: flowing(bob) == {screen.track_sid},
            timeout=10,
            message="bob follows the new priorities",
        )
        await eventually(
            lambda: sorted(changes) == [("cam", "low"), ("screen", "high")],
            timeout=10,
            message=f"bob is told of both priority changes (got {changes})",
        )
        now_seen = remote_publications(bob, "alice")
        assert (now_seen["cam"].publish_priority, now_seen["screen"].publish_priority) == (
            "low",
            "high",
        )
        assert bob_seen.count("track_unsubscribed", cam.track_sid) == 1
        assert bob_seen.count("track_subscribed", screen.track_sid) == 1
        raised = remote_publications(bob, "alice")["screen"].track
        assert isinstance(raised, RemoteVideoTrack)
        assert await distinct_video(raised) >= 3
        await matches_rest(stack, tenant, bob)

        # The same priority again changes nothing; rules without a priority filter ignore it.
        screen.set_priority("high")
        await set_rules(stack, tenant, bob, [{"type": "include", "kind": "video"}])
        await eventually(
            lambda: flowing(bob) == {cam.track_sid, screen.track_sid},
            timeout=10,
            message="bob receives both videos again",
        )
        # A priority changed while no rule looks at it is what the next rules see.
        cam.set_priority("standard")
        screen.set_priority("low")
        await set_rules(stack, tenant, bob, [{"type": "include", "priority": "standard"}])
        await eventually(
            lambda: flowing(bob) == {cam.track_sid},
            timeout=10,
            message="bob receives the standard-priority camera only",
        )
        await matches_rest(stack, tenant, bob)
        with pytest.raises(ValueError):
            cam.set_priority("urgent")
    finally:
        await alice.disconnect()
        await bob.disconnect()


async def test_a_later_subscriber_is_decided_with_the_current_priority(
    stack: Stack, tenant: Tenant
) -> None:
    alice, _ = await join(stack, tenant, "alice", "priority-join")
    try:
        cam = await alice.local_participant.publish_track(create_local_video_track(name="cam"))
        cam.set_priority("high")
        screen = await alice.local_participant.publish_track(
            create_local_video_track(name="screen"), priority="low"
        )
        # Carol joins later with her own rules (automaticSubscription off, then REST rules):
        # what she receives is decided with each track's priority as stored now.
        carol, _ = await join(stack, tenant, "carol", "priority-join", automatic_subscription=False)
        try:
            await set_rules(stack, tenant, carol, HIGH_VIDEO_ONLY)
            await eventually(
                lambda: flowing(carol) == {cam.track_sid},
                timeout=10,
                message="carol receives the camera, raised to high after it was published",
            )
            publications = remote_publications(carol, "alice")
            assert publications["cam"].publish_priority == "high"
            assert publications["screen"].publish_priority == "low"
            await matches_rest(stack, tenant, carol)
            assert screen.track_sid not in flowing(carol)
        finally:
            await carol.disconnect()
    finally:
        await alice.disconnect()
