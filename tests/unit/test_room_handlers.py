"""The room service's NATS handlers, wired by bootstrap() on fakes, under FastStream's
TestNatsBroker: request -> reply body, Twilio codes in error replies, events consumed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from atrium_room.bootstrap import bootstrap
from atrium_room.domain import EMPTY
from atrium_shared import errors, subjects
from atrium_shared.events import DomainEvent, ParticipantConnected, ParticipantDisconnected
from atrium_shared.models import ParticipantInfo, RoomInfo
from atrium_shared.room_api import (
    CreateRoomRequest,
    FetchRoomRequest,
    JoinRoomRequest,
    JoinRoomResult,
    ListRoomsRequest,
    RoomPage,
    UpdateRoomRequest,
)
from atrium_shared.settings import Settings
from tests.support.fakes.room import FakeWorkers, RoomFakes
from tests.support.replies import error_of, result_of

ACCOUNT = "AC" + "a" * 32
SETTINGS = Settings(minute_seconds=60.0)


@pytest.fixture
def fakes() -> RoomFakes:
    return RoomFakes()


@pytest.fixture
async def broker(fakes: RoomFakes) -> AsyncIterator[NatsBroker]:
    async with TestNatsBroker(fakes.service(SETTINGS).broker) as broker:
        yield broker


async def create(broker: NatsBroker, unique_name: str) -> RoomInfo:
    request = CreateRoomRequest(account_sid=ACCOUNT, unique_name=unique_name)
    return await result_of(broker, subjects.ROOM_CREATE, request, RoomInfo)


def participant_event(
    kind: type[ParticipantConnected] | type[ParticipantDisconnected],
    room: RoomInfo,
    sid: str,
    at: datetime,
) -> DomainEvent:
    participant = ParticipantInfo(
        sid=sid,
        room_sid=room.sid,
        account_sid=ACCOUNT,
        identity=sid,
        date_created=at,
        date_updated=at,
        start_time=at,
    )
    return kind(account_sid=ACCOUNT, room_sid=room.sid, participant=participant)


async def test_create_replies_with_the_room(broker: NatsBroker, fakes: RoomFakes) -> None:
    room = await create(broker, "standup")
    assert room.unique_name == "standup" and room.account_sid == ACCOUNT
    assert fakes.store.view.rooms[room.sid] == room


async def test_create_failures_reply_with_twilio_codes(broker: NatsBroker) -> None:
    await create(broker, "standup")
    taken = await error_of(
        broker, subjects.ROOM_CREATE, CreateRoomRequest(account_sid=ACCOUNT, unique_name="standup")
    )
    assert (taken.code, taken.status) == (errors.ROOM_EXISTS, 400)
    bad_type = await error_of(
        broker, subjects.ROOM_CREATE, CreateRoomRequest(account_sid=ACCOUNT, type="huge")
    )
    assert (bad_type.code, bad_type.status) == (errors.ROOM_TYPE_INVALID, 400)


async def test_fetch_replies_with_the_room_or_20404(broker: NatsBroker) -> None:
    room = await create(broker, "standup")
    request = FetchRoomRequest(account_sid=ACCOUNT, sid_or_name="standup")
    assert await result_of(broker, subjects.ROOM_FETCH, request, RoomInfo) == room
    missing = await error_of(
        broker, subjects.ROOM_FETCH, FetchRoomRequest(account_sid=ACCOUNT, sid_or_name="nope")
    )
    assert (missing.code, missing.status) == (errors.NOT_FOUND, 404)


async def test_list_replies_with_a_page(broker: NatsBroker) -> None:
    room = await create(broker, "standup")
    request = ListRoomsRequest(account_sid=ACCOUNT)
    page = await result_of(broker, subjects.ROOM_LIST, request, RoomPage)
    assert [r.sid for r in page.items] == [room.sid] and page.next_cursor is None
    bad = await error_of(
        broker, subjects.ROOM_LIST, ListRoomsRequest(account_sid=ACCOUNT, cursor="bogus")
    )
    assert (bad.code, bad.status) == (errors.INVALID_PARAMETER, 400)


async def test_update_completes_or_replies_53112(broker: NatsBroker) -> None:
    room = await create(broker, "standup")
    request = UpdateRoomRequest(account_sid=ACCOUNT, sid_or_name=room.sid, status="completed")
    completed = await result_of(broker, subjects.ROOM_UPDATE, request, RoomInfo)
    assert completed.status == "completed"
    again = await error_of(broker, subjects.ROOM_UPDATE, request)
    assert (again.code, again.status) == (errors.STATUS_INVALID, 400)


async def test_join_replies_with_room_and_worker_or_53116(fakes: RoomFakes) -> None:
    async with TestNatsBroker(fakes.service(SETTINGS).broker) as broker:
        request = JoinRoomRequest(account_sid=ACCOUNT, room="standup")
        joined = await result_of(broker, subjects.ROOM_JOIN, request, JoinRoomResult)
        assert joined.worker_id == "w1" and joined.room.unique_name == "standup"
    async with TestNatsBroker(fakes.service(SETTINGS, workers=FakeWorkers()).broker) as broker:
        none = await error_of(
            broker, subjects.ROOM_JOIN, JoinRoomRequest(account_sid=ACCOUNT, room="retro")
        )
        assert (none.code, none.status) == (errors.NO_MEDIA_SERVERS, 503)


async def test_an_unexpected_failure_replies_20500(fakes: RoomFakes) -> None:
    class BrokenWorkers(FakeWorkers):
        async def least_loaded(self) -> None:
            raise RuntimeError("registry exploded")

    async with TestNatsBroker(fakes.service(SETTINGS, workers=BrokenWorkers()).broker) as broker:
        failed = await error_of(
            broker, subjects.ROOM_JOIN, JoinRoomRequest(account_sid=ACCOUNT, room="standup")
        )
    assert (failed.code, failed.status) == (errors.INTERNAL, 500)


async def test_participant_events_drive_presence_and_the_empty_room_timer(
    broker: NatsBroker, fakes: RoomFakes
) -> None:
    room = await create(broker, "standup")
    at = fakes.clock.now()

    for kind, sid in ((ParticipantConnected, "PA1"), (ParticipantDisconnected, "PA1")):
        event = participant_event(kind, room, sid, at)
        await broker.publish(
            event,
            subjects.event_subject(ACCOUNT, room.sid, event.event_type),
            stream=subjects.EVENTS_STREAM_NAME,
        )
        if kind is ParticipantConnected:
            assert fakes.store.view.presence[room.sid] == {"PA1"}
            assert fakes.timers_of(room.sid) == {}

    assert fakes.store.view.presence[room.sid] == set()
    assert fakes.timers_of(room.sid) == {EMPTY: fakes.clock.timestamp() + 5 * 60.0}


def test_bootstrap_without_fakes_wires_redis_and_the_outbox_relay() -> None:
    """No connection is opened: clients connect on first use, and nothing is used here."""
    service = bootstrap(SETTINGS)
    assert service.redis is not None
    assert len(service.loops) == len(service.on_drain) == 2  # timer poller + outbox relay


def test_bootstrap_on_fakes_needs_no_redis_and_runs_no_relay(fakes: RoomFakes) -> None:
    service = fakes.service(SETTINGS)
    assert service.redis is None
    assert len(service.loops) == 2  # the timer poller and the failover sweep: no relay
