"""Killing the gateway replica an SDK participant is connected to: it reconnects through another
replica (RSP ``sync``), keeps its participant SID, and its media keeps flowing.

Two gateway replicas run as subprocesses on the same NATS and Redis as the in-process services;
the SDK is given both signaling URLs, standing in for the load balancer of a real deployment.
"""

from __future__ import annotations

import pytest

from atrium_video import LocalDataTrack, RemoteVideoTrack, connect
from tests.support.processes import ServiceProcess
from tests.support.sdk import Recorder, distinct_video, full_tracks, join, remote, sees
from tests.support.stack import REALTIME, Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150), pytest.mark.stack(REALTIME)]


@pytest.fixture
def gateways(stacks: StackFactory) -> list[ServiceProcess]:
    """Two gateway replicas as subprocesses; they are stopped with the stack."""
    return [stacks.spawn("gateway") for _ in range(2)]


async def test_killing_the_gateway_replica_reconnects_through_another_and_keeps_media(
    stack: Stack, tenant: Tenant, gateways: list[ServiceProcess]
) -> None:
    first, second = gateways
    # bob stays on the in-process gateway; alice is given both replicas, first one first.
    bob, _ = await join(stack, tenant, "bob", "failover", tracks=full_tracks())
    alice = await connect(
        tenant.token("alice"),
        url=[first.signaling_url, second.signaling_url],
        name="failover",
        tracks=full_tracks(),
    )
    seen = Recorder(alice)
    cat = None
    try:
        assert alice.url == first.signaling_url
        room_sid, participant_sid = alice.sid, alice.local_participant.sid
        await eventually(sees(alice, "bob", 3), timeout=20, message="alice subscribes to bob")
        await eventually(sees(bob, "alice", 3), timeout=20, message="bob subscribes to alice")
        video = remote(alice, "bob", "video")
        assert isinstance(video, RemoteVideoTrack)
        assert await distinct_video(video) >= 3

        first.kill9()
        frames_at_kill = video.frames_received
        alice_video_at_bob = remote(bob, "alice", "video")
        assert isinstance(alice_video_at_bob, RemoteVideoTrack)
        bob_frames_at_kill = alice_video_at_bob.frames_received

        await eventually(
            lambda: seen.count("reconnected") == 1,
            timeout=30,
            message=f"reconnected through the other replica; {seen.events}",
        )
        assert [e for e, _ in seen.events if e in ("reconnecting", "reconnected")] == [
            "reconnecting",
            "reconnected",
        ]
        assert seen.count("disconnected") == 0
        assert alice.state == "connected" and alice.url == second.signaling_url
        assert alice.sid == room_sid and alice.local_participant.sid == participant_sid
        # The subscriptions survived: same participant, same track objects, no resubscription.
        assert remote(alice, "bob", "video") is video
        assert seen.count("track_unsubscribed") == 0 and seen.count("participant_connected") == 0

        # Media keeps flowing, both ways: new decoded frames since the kill, and still moving.
        await eventually(
            lambda: video.frames_received > frames_at_kill + 30,
            timeout=15,
            message="new frames from bob after the kill",
        )
        assert await distinct_video(video) >= 3
        await eventually(
            lambda: alice_video_at_bob.frames_received > bob_frames_at_kill + 30,
            timeout=15,
            message="bob gets new frames from alice after the kill",
        )

        # Signaling works through the second replica: data, a newcomer, a clean leave.
        bob_data = next(iter(bob.local_participant.data_tracks.values())).track
        assert isinstance(bob_data, LocalDataTrack)
        bob_data.send("still there?")
        await eventually(
            lambda: "still there?" in seen.messages,
            timeout=10,
            message="alice gets bob's message after the failover",
        )
        cat, _ = await join(stack, tenant, "cat", "failover", audio=True)
        await eventually(sees(alice, "cat", 1), timeout=20, message="alice sees cat")
        await alice.disconnect()
        await eventually(
            lambda: bob.get_participant("alice") is None,
            timeout=15,
            message="bob sees alice leave (her bye went through the replica)",
        )
    finally:
        if cat is not None:
            await cat.disconnect()
        await alice.disconnect()
        await bob.disconnect()
    assert seen.errors == [None]
