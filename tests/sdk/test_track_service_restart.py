"""Work the track service's restart interrupts is finished or refused, never half done.

The track service runs as a subprocess beside the in-process room, participant and media services,
so it can be killed and started again: a participant who joins meanwhile gets its subscriptions
once the service is back, and a track published meanwhile is reported to its client as failed.
"""

from __future__ import annotations

import pytest

from atrium_video import TwilioError, create_local_audio_track
from tests.support.sdk import full_tracks, join, sees
from tests.support.stack import Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(150),
    pytest.mark.stack(("room", "participant", "callback", "media")),
]


async def test_a_join_during_a_track_service_restart_gets_its_subscriptions_afterwards(
    stack: Stack, stacks: StackFactory, tenant: Tenant
) -> None:
    track = stacks.spawn("track")
    alice, _ = await join(stack, tenant, "alice", "restart", tracks=full_tracks())
    bob = carol = None
    try:
        track.kill9()
        bob, _ = await join(stack, tenant, "bob", "restart")
        assert bob.get_participant("alice") is not None  # connected, without subscriptions yet

        # A publication meanwhile fails, and its client is told so (it does not hang).
        with pytest.raises(TwilioError):
            await alice.local_participant.publish_track(create_local_audio_track(name="second"))

        stacks.spawn("track")
        await eventually(sees(bob, "alice", 3), timeout=30, message="bob's subscriptions")
        # And the service works for everyone again: a newcomer gets everything at once.
        carol, _ = await join(stack, tenant, "carol", "restart")
        await eventually(sees(carol, "alice", 3), timeout=20, message="carol's subscriptions")
    finally:
        for room in (alice, bob, carol):
            if room is not None:
                await room.disconnect()
