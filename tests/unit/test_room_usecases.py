"""The room use cases on in-memory fakes: every branch, the races a fake can express, and the
order of what they commit and ask of other services."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import SecretStr

from atrium_room.domain import EMPTY, PURGE, UNUSED, Timer
from atrium_room.usecases import RoomUseCases
from atrium_shared import errors
from atrium_shared.accounts import Account
from atrium_shared.errors import AtriumError
from atrium_shared.events import RoomCreated, RoomEnded
from atrium_shared.models import RoomInfo
from atrium_shared.room_api import (
    CreateRoomRequest,
    FetchRoomRequest,
    JoinRoomRequest,
    ListRoomsRequest,
    UpdateRoomRequest,
)
from atrium_shared.settings import Settings
from atrium_shared.workers import WorkerInfo
from tests.support.fakes.room import FakeAccounts, FakeWorkers, RoomFakes
from tests.support.replies import failure

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
MINUTE = 60.0
RETENTION = 3600.0
SETTINGS = Settings(minute_seconds=MINUTE, completed_room_retention_seconds=RETENTION)
CALLBACK = "https://app.example.com/hooks"


class Rooms(RoomFakes):
    def replica(self, workers: FakeWorkers | None = None) -> RoomUseCases:
        return self.service(SETTINGS, workers=workers).rooms


@pytest.fixture
def rooms() -> Rooms:
    return Rooms()


@pytest.fixture
def service(rooms: Rooms) -> RoomUseCases:
    return rooms.replica()


async def create(service: RoomUseCases, **fields: Any) -> RoomInfo:
    return await service.create(CreateRoomRequest(account_sid=ACCOUNT, **fields))


# create ------------------------------------------------------------------------------------------
async def test_create_stores_the_room_claims_its_name_and_starts_the_unused_timer(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, unique_name="standup", unused_room_timeout=3)

    assert rooms.store.view.rooms[room.sid] == room
    assert rooms.store.view.names[(ACCOUNT, "standup")] == room.sid
    assert room.date_created == rooms.clock.now() and room.created_by == "rest"
    assert rooms.timers_of(room.sid) == {UNUSED: rooms.clock.timestamp() + 3 * MINUTE}
    [event] = rooms.store.uow.committed
    assert isinstance(event, RoomCreated) and event.room == room


async def test_a_name_held_by_an_in_progress_room_is_53113_and_commits_nothing(
    rooms: Rooms, service: RoomUseCases
) -> None:
    first = await create(service, unique_name="standup")

    error = await failure(create(service, unique_name="standup"))

    assert (error.code, error.status) == (errors.ROOM_EXISTS, 400)
    assert list(rooms.store.view.rooms) == [first.sid]
    assert rooms.committed_types == ["room-created"]


async def test_the_same_name_in_another_account_is_another_room(service: RoomUseCases) -> None:
    mine = await create(service, unique_name="standup")
    theirs = await service.create(
        CreateRoomRequest(account_sid=OTHER_ACCOUNT, unique_name="standup")
    )
    assert mine.sid != theirs.sid


async def test_a_stale_claim_of_a_completed_room_does_not_block_the_name(
    rooms: Rooms, service: RoomUseCases
) -> None:
    old = await create(service, unique_name="standup")
    rooms.store.view.rooms[old.sid] = old.model_copy(update={"status": "completed"})

    new = await create(service, unique_name="standup")

    assert rooms.store.view.names[(ACCOUNT, "standup")] == new.sid


async def test_an_invalid_request_is_its_twilio_code_and_commits_nothing(
    rooms: Rooms, service: RoomUseCases
) -> None:
    error = await failure(create(service, type="huge"))
    assert error.code == errors.ROOM_TYPE_INVALID
    assert rooms.store.uow.committed == [] and rooms.store.view.rooms == {}


# fetch / resolve ---------------------------------------------------------------------------------
async def test_fetch_by_sid_and_by_the_name_of_an_in_progress_room(
    service: RoomUseCases,
) -> None:
    room = await create(service, unique_name="standup")
    by_sid = await service.fetch(FetchRoomRequest(account_sid=ACCOUNT, sid_or_name=room.sid))
    by_name = await service.fetch(FetchRoomRequest(account_sid=ACCOUNT, sid_or_name="standup"))
    assert by_sid == by_name == room


async def test_a_completed_room_is_found_by_sid_but_no_longer_by_name(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, unique_name="standup")
    await service.update(
        UpdateRoomRequest(account_sid=ACCOUNT, sid_or_name=room.sid, status="completed")
    )
    # Even if the claim were still there, a completed room does not answer to its name.
    rooms.store.view.names[(ACCOUNT, "standup")] = room.sid

    fetched = await service.fetch(FetchRoomRequest(account_sid=ACCOUNT, sid_or_name=room.sid))
    assert fetched.status == "completed"
    error = await failure(
        service.fetch(FetchRoomRequest(account_sid=ACCOUNT, sid_or_name="standup"))
    )
    assert (error.code, error.status) == (errors.NOT_FOUND, 404)


@pytest.mark.parametrize("sid_or_name", ["RM" + "f" * 32, "nobody-uses-this-name"])
async def test_an_unknown_room_is_20404(service: RoomUseCases, sid_or_name: str) -> None:
    error = await failure(
        service.fetch(FetchRoomRequest(account_sid=ACCOUNT, sid_or_name=sid_or_name))
    )
    assert (error.code, error.status) == (errors.NOT_FOUND, 404)
    assert sid_or_name in error.message


async def test_another_accounts_room_is_not_found(service: RoomUseCases) -> None:
    room = await create(service, unique_name="standup")
    for sid_or_name in (room.sid, "standup"):
        error = await failure(
            service.fetch(FetchRoomRequest(account_sid=OTHER_ACCOUNT, sid_or_name=sid_or_name))
        )
        assert error.code == errors.NOT_FOUND


# list --------------------------------------------------------------------------------------------
async def test_list_pages_newest_first_with_cursors(rooms: Rooms, service: RoomUseCases) -> None:
    created = []
    for _ in range(3):
        created.append(await create(service))
        rooms.clock.advance(1)
    await service.create(CreateRoomRequest(account_sid=OTHER_ACCOUNT))

    first = await service.list(ListRoomsRequest(account_sid=ACCOUNT, page_size=2))
    assert [r.sid for r in first.items] == [created[2].sid, created[1].sid]
    assert first.next_cursor is not None and first.previous_cursor is None
    second = await service.list(
        ListRoomsRequest(account_sid=ACCOUNT, page_size=2, cursor=first.next_cursor)
    )
    assert [r.sid for r in second.items] == [created[0].sid]
    assert second.next_cursor is None and second.previous_cursor is not None


async def test_list_filters_by_status_and_unique_name(service: RoomUseCases) -> None:
    standup = await create(service, unique_name="standup")
    await create(service, unique_name="retro")
    await service.update(
        UpdateRoomRequest(account_sid=ACCOUNT, sid_or_name="retro", status="completed")
    )

    named = await service.list(ListRoomsRequest(account_sid=ACCOUNT, unique_name="standup"))
    completed = await service.list(ListRoomsRequest(account_sid=ACCOUNT, status="completed"))

    assert [r.sid for r in named.items] == [standup.sid]
    assert [r.unique_name for r in completed.items] == ["retro"]


async def test_a_page_token_we_did_not_issue_is_20001(service: RoomUseCases) -> None:
    error = await failure(service.list(ListRoomsRequest(account_sid=ACCOUNT, cursor="bogus")))
    assert (error.code, error.status) == (errors.INVALID_PARAMETER, 400)


# update / complete -------------------------------------------------------------------------------
async def test_completing_empties_the_room_first_then_ends_it(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, unique_name="standup")
    committed_when_emptied: list[list[str]] = []
    rooms.participants.on_call = lambda sid: committed_when_emptied.append(rooms.committed_types)
    rooms.clock.advance(90)

    ended = await service.update(
        UpdateRoomRequest(account_sid=ACCOUNT, sid_or_name="standup", status="completed")
    )

    # Participants are disconnected before room-ended is committed (Twilio's callback order).
    assert rooms.participants.calls == [room.sid]
    assert committed_when_emptied == [["room-created"]]
    assert rooms.committed_types == ["room-created", "room-ended"]
    assert (ended.status, ended.duration, ended.end_time) == ("completed", 90, rooms.clock.now())
    assert rooms.store.view.rooms[room.sid] == ended
    assert (ACCOUNT, "standup") not in rooms.store.view.names
    assert rooms.timers_of(room.sid) == {PURGE: rooms.clock.timestamp() + RETENTION}


async def test_completing_forgets_presence_and_placement(
    rooms: Rooms, service: RoomUseCases
) -> None:
    joined = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    await service.participant_connected(joined.room.sid, "PA1")

    await service.complete(joined.room.sid, strict=True)

    assert joined.room.sid not in rooms.store.view.presence
    assert joined.room.sid not in rooms.store.view.placements


@pytest.mark.parametrize("status", [None, "in-progress", "failed"])
async def test_the_only_update_is_status_completed(
    service: RoomUseCases, status: str | None
) -> None:
    room = await create(service)
    error = await failure(
        service.update(UpdateRoomRequest(account_sid=ACCOUNT, sid_or_name=room.sid, status=status))
    )
    assert (error.code, error.status) == (errors.STATUS_INVALID, 400)


async def test_completing_a_completed_room_is_53112_and_empties_nobody(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service)
    request = UpdateRoomRequest(account_sid=ACCOUNT, sid_or_name=room.sid, status="completed")
    await service.update(request)

    error = await failure(service.update(request))

    assert error.code == errors.STATUS_INVALID
    assert rooms.participants.calls == [room.sid]
    assert rooms.committed_types == ["room-created", "room-ended"]


async def test_completing_an_unknown_room_is_20404(service: RoomUseCases) -> None:
    error = await failure(
        service.update(
            UpdateRoomRequest(account_sid=ACCOUNT, sid_or_name="nope", status="completed")
        )
    )
    assert error.code == errors.NOT_FOUND
    assert (await failure(service.complete("RM" + "0" * 32, strict=False))).code == (
        errors.NOT_FOUND
    )


# join --------------------------------------------------------------------------------------------
async def test_joining_a_new_name_creates_an_ad_hoc_room_on_the_least_loaded_worker(
    rooms: Rooms,
) -> None:
    rooms.workers = FakeWorkers(
        WorkerInfo(worker_id="busy", participants=150),
        WorkerInfo(worker_id="idle", participants=10),
        WorkerInfo(worker_id="draining", participants=0, draining=True),
        WorkerInfo(worker_id="full", participants=200, capacity=200),
    )
    service = rooms.replica()

    joined = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))

    assert joined.worker_id == "idle"
    assert joined.room.unique_name == "standup" and joined.room.created_by == "signaling"
    assert joined.room.status_callback is None
    assert rooms.store.view.placements[joined.room.sid] == "idle"
    # If the first join fails, the ad-hoc room ends like an emptied one.
    assert rooms.timers_of(joined.room.sid) == {EMPTY: rooms.clock.timestamp() + 5 * MINUTE}


async def test_an_ad_hoc_room_reports_to_the_accounts_default_callback(rooms: Rooms) -> None:
    rooms.accounts = FakeAccounts(
        Account(
            sid=ACCOUNT,
            friendly_name="a",
            auth_token=SecretStr("t"),
            default_status_callback=CALLBACK,
            default_status_callback_method="GET",
        )
    )
    joined = await rooms.replica().join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    assert (joined.room.status_callback, joined.room.status_callback_method) == (CALLBACK, "GET")


async def test_an_account_without_ad_hoc_rooms_joins_only_existing_ones(rooms: Rooms) -> None:
    """Client-side room creation off: a connect to a new name is 53106 and creates nothing;
    a room created over REST is joined by name as before."""
    rooms.accounts = FakeAccounts(
        Account(sid=ACCOUNT, friendly_name="a", auth_token=SecretStr("t"), ad_hoc_rooms=False)
    )
    service = rooms.replica()
    error = await failure(service.join(JoinRoomRequest(account_sid=ACCOUNT, room="new")))
    assert (error.code, error.status) == (errors.ROOM_NOT_FOUND, 404)
    assert rooms.store.view.rooms == {}
    room = await create(service, unique_name="booked")
    joined = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="booked"))
    assert joined.room.sid == room.sid


async def test_an_invalid_default_callback_is_left_out_not_a_failed_join(
    rooms: Rooms, caplog: pytest.LogCaptureFixture
) -> None:
    rooms.accounts = FakeAccounts(
        Account(
            sid=ACCOUNT,
            friendly_name="a",
            auth_token=SecretStr("t"),
            default_status_callback="not a url",
        )
    )
    joined = await rooms.replica().join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    assert joined.room.status_callback is None
    assert "invalid default StatusCallback" in caplog.text


async def test_joining_an_existing_room_by_name_or_sid_uses_it(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, unique_name="standup")
    by_name = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    by_sid = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room=room.sid))
    assert by_name.room == by_sid.room == room
    assert list(rooms.store.view.rooms) == [room.sid]


@pytest.mark.parametrize("account", [ACCOUNT, OTHER_ACCOUNT])
async def test_joining_an_unknown_or_foreign_room_sid_is_53106(
    service: RoomUseCases, account: str
) -> None:
    room = await create(service)
    missing = "RM" + "f" * 32
    target = room.sid if account == OTHER_ACCOUNT else missing
    error = await failure(service.join(JoinRoomRequest(account_sid=account, room=target)))
    assert (error.code, error.status) == (errors.ROOM_NOT_FOUND, 404)


async def test_joining_with_an_invalid_name_is_its_code_and_creates_nothing(
    rooms: Rooms, service: RoomUseCases
) -> None:
    error = await failure(service.join(JoinRoomRequest(account_sid=ACCOUNT, room="x" * 129)))
    assert error.code == errors.ROOM_NAME_TOO_LONG
    assert rooms.store.view.rooms == {}


async def test_a_name_that_stays_taken_but_never_resolves_is_53103(
    rooms: Rooms, service: RoomUseCases
) -> None:
    """Each attempt finds no room of this account by the name, yet cannot claim it."""
    foreign = await service.create(CreateRoomRequest(account_sid=OTHER_ACCOUNT))
    rooms.store.view.names[(ACCOUNT, "cursed")] = foreign.sid

    error = await failure(service.join(JoinRoomRequest(account_sid=ACCOUNT, room="cursed")))

    assert (error.code, error.status) == (errors.ROOM_CREATE_FAILED, 400)
    assert list(rooms.store.view.rooms) == [foreign.sid]


async def test_joining_a_completed_room_is_53118(service: RoomUseCases) -> None:
    room = await create(service)
    await service.complete(room.sid, strict=True)
    error = await failure(service.join(JoinRoomRequest(account_sid=ACCOUNT, room=room.sid)))
    assert (error.code, error.status) == (errors.ROOM_COMPLETED, 400)


async def test_joining_with_no_worker_available_is_53116(rooms: Rooms) -> None:
    rooms.workers = FakeWorkers(WorkerInfo(worker_id="d", draining=True))
    error = await failure(
        rooms.replica().join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    )
    assert (error.code, error.status) == (errors.NO_MEDIA_SERVERS, 503)


async def test_a_room_stays_on_its_live_worker_and_moves_off_a_dead_one(
    rooms: Rooms, service: RoomUseCases
) -> None:
    first = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    rooms.workers.live["w2"] = WorkerInfo(worker_id="w2", participants=0)
    rooms.workers.live["w1"].participants = 100

    again = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    assert (first.worker_id, again.worker_id) == ("w1", "w1")  # live: it stays

    del rooms.workers.live["w1"]
    moved = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    assert moved.worker_id == "w2"
    assert rooms.store.view.placements[first.room.sid] == "w2"


async def test_racing_joins_of_a_new_name_share_one_room(rooms: Rooms) -> None:
    replicas = [rooms.replica() for _ in range(4)]
    joins = await asyncio.gather(
        *(r.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup")) for r in replicas)
    )
    assert len({j.room.sid for j in joins}) == 1
    assert rooms.committed_types == ["room-created"]


async def test_joins_racing_to_move_a_room_agree_on_one_worker(rooms: Rooms) -> None:
    service = rooms.replica()
    joined = await service.join(JoinRoomRequest(account_sid=ACCOUNT, room="standup"))
    del rooms.workers.live["w1"]
    # Each replica reads another least-loaded worker (loads changed between their reads).
    left = rooms.replica(FakeWorkers(WorkerInfo(worker_id="w2")))
    right = rooms.replica(FakeWorkers(WorkerInfo(worker_id="w3")))

    results = await asyncio.gather(
        left.join(JoinRoomRequest(account_sid=ACCOUNT, room=joined.room.sid)),
        right.join(JoinRoomRequest(account_sid=ACCOUNT, room=joined.room.sid)),
    )

    assert results[0].worker_id == results[1].worker_id
    assert rooms.store.view.placements[joined.room.sid] == results[0].worker_id


# presence ----------------------------------------------------------------------------------------
async def test_a_participant_arriving_stops_the_unused_and_empty_timers(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service)
    rooms.store.view.timers[Timer(EMPTY, room.sid)] = 1.0

    await service.participant_connected(room.sid, "PA1")

    assert rooms.store.view.presence[room.sid] == {"PA1"}
    assert rooms.timers_of(room.sid) == {}


async def test_the_last_participant_leaving_starts_the_empty_room_timeout(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, empty_room_timeout=2)
    await service.participant_connected(room.sid, "PA1")
    await service.participant_connected(room.sid, "PA2")

    await service.participant_disconnected(room.sid, "PA1")
    assert rooms.timers_of(room.sid) == {}

    rooms.clock.advance(30)
    await service.participant_disconnected(room.sid, "PA2")
    assert rooms.store.view.presence[room.sid] == set()
    assert rooms.timers_of(room.sid) == {EMPTY: rooms.clock.timestamp() + 2 * MINUTE}


async def test_leaving_a_completed_or_unknown_room_starts_no_timer(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service)
    await service.complete(room.sid, strict=True)

    await service.participant_disconnected(room.sid, "PA1")
    await service.participant_disconnected("RM" + "0" * 32, "PA1")

    assert {t.kind for t in rooms.store.view.timers} == {PURGE}


# timers ------------------------------------------------------------------------------------------
async def test_an_unused_room_ends_when_its_timer_is_due_and_not_before(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, unused_room_timeout=1)

    rooms.clock.advance(MINUTE - 1)
    assert await service.fire_due_timers() == 0
    assert rooms.store.view.rooms[room.sid].status == "in-progress"

    rooms.clock.advance(1)
    assert await service.fire_due_timers() == 1
    assert rooms.store.view.rooms[room.sid].status == "completed"
    assert rooms.participants.calls == [room.sid]
    assert rooms.timers_of(room.sid) == {PURGE: rooms.clock.timestamp() + RETENTION}


async def test_an_empty_room_ends_when_its_timer_is_due(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service)
    await service.participant_connected(room.sid, "PA1")
    await service.participant_disconnected(room.sid, "PA1")

    rooms.clock.advance(5 * MINUTE)
    assert await service.fire_due_timers() == 1
    assert rooms.committed_types[-1] == "room-ended"


async def test_two_replicas_end_a_timed_out_room_exactly_once(rooms: Rooms) -> None:
    replicas = [rooms.replica() for _ in range(3)]
    created = [await create(replicas[0], unused_room_timeout=1) for _ in range(5)]
    rooms.clock.advance(MINUTE)

    fired = await asyncio.gather(*(r.fire_due_timers() for r in replicas))

    assert sum(fired) == len(created)
    ended = [e.room_sid for e in rooms.store.uow.committed if isinstance(e, RoomEnded)]
    assert sorted(ended) == sorted(room.sid for room in created)
    assert {t.kind for t in rooms.store.view.timers} == {PURGE}


async def test_a_timer_of_a_room_that_already_ended_is_dropped(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service)
    await service.complete(room.sid, strict=True)
    rooms.store.view.timers[Timer(UNUSED, room.sid)] = 0.0

    assert await service.fire_due_timers() == 0

    assert Timer(UNUSED, room.sid) in rooms.store.timers.dropped
    assert rooms.committed_types == ["room-created", "room-ended"]


@pytest.mark.parametrize("kind", [UNUSED, "bogus"])
async def test_a_timer_of_an_unknown_room_or_kind_is_dropped(
    rooms: Rooms, service: RoomUseCases, kind: str
) -> None:
    timer = Timer(kind, "RM" + "0" * 32)
    rooms.store.view.timers[timer] = 0.0

    assert await service.fire_due_timers() == 0

    assert rooms.store.timers.dropped == [timer]
    assert rooms.store.view.timers == {}


async def test_a_timer_waits_while_the_participant_service_is_down(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, unused_room_timeout=1)
    rooms.clock.advance(MINUTE)
    rooms.participants.fail = AtriumError(errors.SERVICE_UNAVAILABLE, "down", 503)

    assert await service.fire_due_timers() == 0
    assert rooms.timers_of(room.sid) == {UNUSED: room.date_created.timestamp() + MINUTE}
    assert rooms.store.view.rooms[room.sid].status == "in-progress"

    rooms.participants.fail = None
    assert await service.fire_due_timers() == 1


async def test_a_completed_room_is_purged_after_its_retention(
    rooms: Rooms, service: RoomUseCases
) -> None:
    room = await create(service, unique_name="standup")
    await service.complete(room.sid, strict=True)

    rooms.clock.advance(RETENTION)
    assert await service.fire_due_timers() == 0

    assert rooms.store.view.rooms == {} and rooms.store.view.timers == {}
    listed = await service.list(ListRoomsRequest(account_sid=ACCOUNT, status="completed"))
    assert listed.items == []


async def test_a_purge_timer_of_a_room_already_gone_is_removed(
    rooms: Rooms, service: RoomUseCases
) -> None:
    rooms.store.view.timers[Timer(PURGE, "RM" + "0" * 32)] = 0.0
    await service.fire_due_timers()
    assert rooms.store.view.timers == {}
