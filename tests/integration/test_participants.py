"""Participants on real NATS and Redis: admission, capacity, duplicates, kicks, REST, ordering.

Joins go straight to the participant service's ``admit`` here, as the media worker calls it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from atrium_shared import subjects
from atrium_shared.errors import AtriumError
from atrium_shared.events import ParticipantConnected, ParticipantDisconnected, RoomEnded
from atrium_shared.participant_api import AdmitParticipantRequest, AdmitParticipantResult
from atrium_shared.rpc import call
from atrium_shared.settings import Settings
from tests.support.durations import rest_durations, whole_seconds
from tests.support.jetstream import stream_events
from tests.support.rpc import admission
from tests.support.stack import Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


@pytest.fixture
def client(stack: Stack, tenant: Tenant) -> Client:
    return stack.rest(tenant)


async def test_rest_lists_fetches_and_kicks_participants(
    client: Client, broker: NatsBroker
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create(unique_name="class"))
    alice = (await admission(broker, room, "alice")).participant
    bob = (await admission(broker, room, "bob")).participant
    participants = client.video.v1.rooms("class").participants

    listed = await asyncio.to_thread(lambda: participants.list())
    assert [p.identity for p in listed] == ["bob", "alice"]
    assert listed[0].status == "connected" and listed[0].room_sid == room.sid
    assert listed[0].url.endswith(f"/v1/Rooms/{room.sid}/Participants/{bob.sid}")
    assert listed[0].links["published_tracks"].endswith(f"/Participants/{bob.sid}/PublishedTracks")
    by_identity = await asyncio.to_thread(lambda: participants("alice").fetch())
    assert by_identity.sid == alice.sid and by_identity.end_time is None
    only_bob = await asyncio.to_thread(lambda: participants.list(identity="bob"))
    assert [p.sid for p in only_bob] == [bob.sid]

    kicked = await asyncio.to_thread(lambda: participants(bob.sid).update(status="disconnected"))
    assert kicked.status == "disconnected" and kicked.end_time is not None
    assert kicked.duration in rest_durations(kicked.start_time, kicked.end_time)
    assert [p.sid for p in await asyncio.to_thread(lambda: participants.list())] == [alice.sid]
    gone = await asyncio.to_thread(lambda: participants.list(status="disconnected"))
    assert [p.sid for p in gone] == [bob.sid]

    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(lambda: participants("nobody").fetch())
    assert (caught.value.code, caught.value.status) == (20404, 404)
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(lambda: participants(alice.sid).update(status="connected"))
    assert caught.value.status == 400


async def test_duplicate_identity_replaces_the_first_connection(
    client: Client, broker: NatsBroker
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create(max_participants=2))
    first = await admission(broker, room, "alice")
    await admission(broker, room, "bob")
    # The room is full, but the same identity takes its own seat back.
    second = await admission(broker, room, "alice")
    assert second.evicted is not None and second.evicted.sid == first.participant.sid
    assert second.evicted.status == "disconnected"
    connected = await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).participants.list())
    assert sorted(p.identity for p in connected) == ["alice", "bob"]
    assert second.participant.sid in {p.sid for p in connected}


async def test_only_one_of_many_racing_joins_gets_the_last_seat(
    client: Client, broker: NatsBroker
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create(max_participants=3))
    await admission(broker, room, "first")
    results = await asyncio.gather(
        *(admission(broker, room, f"racer-{i}") for i in range(8)), return_exceptions=True
    )
    admitted = [r for r in results if isinstance(r, AdmitParticipantResult)]
    refused = [r for r in results if isinstance(r, AtriumError)]
    assert len(admitted) == 2 and len(refused) == 6
    assert {r.code for r in refused} == {53105}


async def test_completing_a_room_disconnects_everyone_before_room_ended(
    client: Client, broker: NatsBroker, settings: Settings
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create(unique_name="end"))
    for name in ("a", "b", "c"):
        await admission(broker, room, name)
    await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).update(status="completed"))

    async def settled() -> list[Any]:
        events = [e for e in await stream_events(settings.nats_url) if e.room_sid == room.sid]
        return events if any(isinstance(e, RoomEnded) for e in events) else []

    events = await eventually(settled, message="room-ended in the stream")
    kinds = [e.event_type for e in events]
    assert kinds[0] == "room-created"
    assert kinds[-1] == "room-ended"
    disconnected = [e for e in events if isinstance(e, ParticipantDisconnected)]
    assert len(disconnected) == 3 and {e.reason for e in disconnected} == {"room-ended"}
    assert all(kinds.index("room-ended") > events.index(e) for e in disconnected)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    ended = await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).participants.list())
    assert {p.status for p in ended} == {"disconnected"} and len(ended) == 3


async def test_last_participant_leaving_starts_the_empty_room_timeout(
    stack: Stack, broker: NatsBroker, tenant: Tenant, client: Client
) -> None:
    room = await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(unused_room_timeout=2, empty_room_timeout=1)
    )
    joined = await admission(broker, room, "solo")
    # Created after it with the same timeout, a room nobody joins: its unused timer is due later,
    # and the room service runs due timers in order, so once this one has ended, the first
    # room's unused timeout has passed too.
    marker = await asyncio.to_thread(lambda: client.video.v1.rooms.create(unused_room_timeout=2))
    auth = (tenant.account.sid, tenant.auth_token)
    async with httpx.AsyncClient(base_url=stack.base_url, auth=auth) as http:

        async def status(sid: str) -> str:
            return str((await http.get(f"/v1/Rooms/{sid}")).json()["status"])

        async def marker_ended() -> bool:
            return await status(marker.sid) == "completed"

        await eventually(marker_ended, timeout=10, message="the unjoined room's unused timeout")
        # Joined before the unused timeout: the room outlives it while someone is in it.
        assert await status(room.sid) == "in-progress"
        await http.post(
            f"/v1/Rooms/{room.sid}/Participants/{joined.participant.sid}",
            data={"Status": "disconnected"},
        )

        async def ended() -> bool:
            return await status(room.sid) == "completed"

        await eventually(ended, timeout=10, message="empty room to end")


async def test_max_participant_duration_disconnects(
    settings: Settings, broker: NatsBroker, tenant: Tenant, stack: Stack
) -> None:
    twilio = stack.rest(tenant)
    room = await asyncio.to_thread(lambda: twilio.video.v1.rooms.create())
    result = await call(
        broker,
        subjects.PARTICIPANT_ADMIT,
        AdmitParticipantRequest(
            account_sid=tenant.account.sid,
            room_sid=room.sid,
            identity="brief",
            max_participants=50,
            max_participant_duration=1,
        ),
        AdmitParticipantResult,
    )

    async def limited() -> list[Any]:
        return [
            e
            for e in await stream_events(settings.nats_url)
            if isinstance(e, ParticipantDisconnected)
            and e.participant.sid == result.participant.sid
        ]

    (event,) = await eventually(limited, timeout=10, message="duration limit")
    assert event.reason == "max-duration" and event.participant.end_time is not None
    # Whole seconds connected: at least the one second allowed.
    duration = whole_seconds(event.participant.start_time, event.participant.end_time)
    assert event.participant.duration == duration and duration >= 1
    connected = [
        e for e in await stream_events(settings.nats_url) if isinstance(e, ParticipantConnected)
    ]
    assert len(connected) == 1
