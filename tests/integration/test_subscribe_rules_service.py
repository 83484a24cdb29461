"""SubscribeRules in the track service on real NATS and Redis: publish and join follow them, a
change is broadcast to the media workers (``atrium.media.subscriptions``) with its version."""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from twilio.base.exceptions import TwilioRestException

from atrium_shared import subjects
from atrium_shared.models import ParticipantInfo
from atrium_shared.rpc import call
from atrium_shared.settings import Settings
from atrium_shared.track_api import JoinTracksRequest, JoinTracksResult, SubscriptionsChanged
from tests.support.rpc import admit, publish
from tests.support.stack import Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


async def test_publish_join_and_changes_follow_the_rules(
    stack: Stack, broker: NatsBroker, tenant: Tenant, settings: Settings
) -> None:
    heard: list[SubscriptionsChanged] = []
    listener = await nats.connect(settings.nats_url)

    async def on_change(message: Msg) -> None:
        heard.append(SubscriptionsChanged.model_validate_json(message.data))

    await listener.subscribe(subjects.MEDIA_SUBSCRIPTIONS, cb=on_change)
    client = stack.rest(tenant)
    try:
        room = await asyncio.to_thread(lambda: client.video.v1.rooms.create(unique_name="rr"))
        alice = await admit(broker, room, "alice")
        bob = await admit(broker, room, "bob")

        async def join(who: ParticipantInfo) -> JoinTracksResult:
            return await call(
                broker,
                subjects.TRACK_JOIN,
                JoinTracksRequest(
                    account_sid=tenant.account.sid, room_sid=room.sid, participant_sid=who.sid
                ),
                JoinTracksResult,
            )

        joined = await join(bob)
        assert (joined.tracks, joined.considered, joined.rules_version) == ([], [], 0)
        bob_rules = client.video.v1.rooms(room.sid).participants(bob.sid).subscribe_rules
        await asyncio.to_thread(
            lambda: bob_rules.update(
                rules=[
                    {"type": "include", "all": True},
                    {"type": "exclude", "publisher": "alice", "kind": "video"},
                ]
            )
        )
        await eventually(lambda: len(heard) == 1, message="first broadcast")
        assert heard[0].subscriber_sid == bob.sid and heard[0].room_sid == room.sid
        assert (heard[0].rules_version, heard[0].desired, heard[0].considered) == (1, [], [])

        # Alice, who publishes after the rule, is matched by identity.
        mic, cam = (
            await publish(broker, alice, ("a", "mic", "audio"), ("v", "cam", "video"))
        ).tracks
        assert mic.track is not None and cam.track is not None
        assert mic.subscribers == [bob.sid] and cam.subscribers == []
        assert mic.decided == cam.decided == {bob.sid: 1}

        await asyncio.to_thread(
            lambda: bob_rules.update(
                rules=json.dumps({"rules": [{"type": "include", "all": "true"}]})
            )
        )
        await eventually(lambda: len(heard) == 2, message="second broadcast")
        assert heard[1].rules_version == 2
        both = sorted([mic.track.sid, cam.track.sid])  # published together: ordered by SID
        assert heard[1].desired == heard[1].considered == both

        # An invalid update is refused and broadcasts nothing.
        with pytest.raises(TwilioRestException) as caught:
            await asyncio.to_thread(lambda: bob_rules.update(rules=[]))
        assert caught.value.code == 53215
        assert len((await asyncio.to_thread(bob_rules.fetch)).rules) == 1

        # Rules set before joining decide what join returns.
        carol = await admit(broker, room, "carol")
        carol_rules = client.video.v1.rooms(room.sid).participants("carol").subscribe_rules
        await asyncio.to_thread(
            lambda: carol_rules.update(
                rules=[{"type": "include", "publisher": alice.sid, "track": "mic"}]
            )
        )
        joined = await join(carol)
        assert [t.sid for t in joined.tracks] == [mic.track.sid]
        assert joined.considered == both
        assert joined.rules_version == 1
        # Carol's update is broadcast after the invalid one would have been: nothing came between.
        await eventually(lambda: len(heard) >= 3, message="carol's broadcast")
        assert [(h.subscriber_sid, h.rules_version) for h in heard] == [
            (bob.sid, 1),
            (bob.sid, 2),
            (carol.sid, 1),
        ]
        # Carol's own later track: Bob (include all) gets it, decided with his version 2.
        (screen,) = (await publish(broker, carol, ("s", "screen", "video"))).tracks
        assert screen.subscribers == sorted([alice.sid, bob.sid])
        assert screen.decided[bob.sid] == 2
        assert heard[-1].subscriber_sid == carol.sid and heard[-1].desired == [mic.track.sid]
    finally:
        await listener.close()
