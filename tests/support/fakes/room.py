"""In-memory fakes of the room service's ports.

:class:`FakeRoomStore` holds one :class:`FakeUnitOfWork` whose state every Redis-backed port reads:
the transaction (:class:`FakeRoomTransaction`), the queries and the timers, as the real adapters
share one Redis. The ports to other processes (:class:`FakeParticipants`, :class:`FakeWorkers`,
:class:`FakeAccounts`) give the event loop a turn, as a network call would, so concurrent use cases
interleave there as they do against real services.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

from faststream.nats import NatsBroker

from atrium_room.bootstrap import RoomService, bootstrap
from atrium_room.domain import Timer
from atrium_shared.accounts import Account
from atrium_shared.errors import SERVICE_UNAVAILABLE, AtriumError
from atrium_shared.models import RoomInfo
from atrium_shared.paging import index_member, member_sid
from atrium_shared.settings import Settings
from atrium_shared.workers import WorkerInfo
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.common import FakeRemoteService, FakeStore, FakeTimers
from tests.support.fakes.paging import page_members
from tests.support.fakes.unit_of_work import FakeTransaction


class FakeRoomTransaction(FakeTransaction):
    """RoomTransaction on the working copy: ``rooms``, ``names``, ``present``, ``placements``
    and ``timers`` (timer -> due time), each created on first use."""

    @property
    def rooms(self) -> dict[str, RoomInfo]:
        rooms: dict[str, RoomInfo] = self.state.setdefault("rooms", {})
        return rooms

    @property
    def names(self) -> dict[tuple[str, str], str]:
        names: dict[tuple[str, str], str] = self.state.setdefault("names", {})
        return names

    @property
    def presence(self) -> dict[str, set[str]]:
        presence: dict[str, set[str]] = self.state.setdefault("present", {})
        return presence

    @property
    def placements(self) -> dict[str, str]:
        placements: dict[str, str] = self.state.setdefault("placements", {})
        return placements

    @property
    def timers(self) -> dict[Timer, float]:
        timers: dict[Timer, float] = self.state.setdefault("timers", {})
        return timers

    async def room(self, sid: str) -> RoomInfo | None:
        return self.rooms.get(sid)

    async def room_holding_name(self, account_sid: str, unique_name: str) -> RoomInfo | None:
        holder = self.names.get((account_sid, unique_name))
        return self.rooms.get(holder) if holder is not None else None

    async def present(self, room_sid: str) -> set[str]:
        return set(self.presence.get(room_sid, set()))

    async def placement(self, room_sid: str) -> str | None:
        return self.placements.get(room_sid)

    def add_room(self, room: RoomInfo) -> None:
        self.rooms[room.sid] = room
        self.names[(room.account_sid, room.unique_name)] = room.sid

    def end_room(self, before: RoomInfo, after: RoomInfo) -> None:
        self.rooms[after.sid] = after
        self.names.pop((before.account_sid, before.unique_name), None)
        self.presence.pop(after.sid, None)
        self.placements.pop(after.sid, None)

    def delete_room(self, room: RoomInfo) -> None:
        self.rooms.pop(room.sid, None)

    def add_present(self, room_sid: str, participant_sid: str) -> None:
        self.presence.setdefault(room_sid, set()).add(participant_sid)

    def remove_present(self, room_sid: str, participant_sid: str) -> None:
        self.presence.get(room_sid, set()).discard(participant_sid)

    def place(self, room_sid: str, worker_id: str) -> None:
        self.placements[room_sid] = worker_id
        self.placed_workers.add(worker_id)

    @property
    def placed_workers(self) -> set[str]:
        placed: set[str] = self.state.setdefault("placed_workers", set())
        return placed

    async def rooms_on(self, worker_id: str) -> list[str]:
        return sorted(room for room, worker in self.placements.items() if worker == worker_id)

    def forget_worker(self, worker_id: str) -> None:
        self.placed_workers.discard(worker_id)

    def schedule(self, timer: Timer, due_at: float) -> None:
        self.timers[timer] = due_at

    def cancel(self, *timers: Timer) -> None:
        for timer in timers:
            self.timers.pop(timer, None)


class FakeRoomStore(FakeStore[FakeRoomTransaction]):
    """The room service's storage: ``uow``, plus the query and timer ports on it."""

    def __init__(self) -> None:
        super().__init__(FakeRoomTransaction)
        self.queries = FakeRoomQueries(self)
        self.timers: FakeTimers[Timer] = FakeTimers(lambda: self.view.timers)


class FakeRoomQueries:
    def __init__(self, store: FakeRoomStore) -> None:
        self.store = store

    async def get(self, sid: str) -> RoomInfo | None:
        return self.store.view.rooms.get(sid)

    async def holding_name(self, account_sid: str, unique_name: str) -> RoomInfo | None:
        return await self.store.view.room_holding_name(account_sid, unique_name)

    async def placement(self, room_sid: str) -> str | None:
        return await self.store.view.placement(room_sid)

    async def placed_workers(self) -> list[str]:
        return sorted(self.store.view.placed_workers)

    async def rooms_on(self, worker_id: str) -> list[str]:
        return await self.store.view.rooms_on(worker_id)

    async def list_page(
        self,
        account_sid: str,
        status: str,
        unique_name: str | None,
        *,
        created_on_or_after: datetime | None,
        created_before: datetime | None,
        page_size: int,
        cursor: str | None,
    ) -> tuple[list[RoomInfo], str | None, str | None]:
        rooms = self.store.view.rooms
        members, next_cursor, prev_cursor = page_members(
            (
                index_member(room.date_created, room.sid)
                for room in rooms.values()
                if room.account_sid == account_sid
                and room.status == status
                and (unique_name is None or room.unique_name == unique_name)
            ),
            created_on_or_after=created_on_or_after,
            created_before=created_before,
            page_size=page_size,
            cursor=cursor,
        )
        return [rooms[member_sid(m)] for m in members], next_cursor, prev_cursor


class FakeParticipants(FakeRemoteService):
    """The participant service; ``calls`` are the SIDs of the rooms it emptied."""

    async def disconnect_everyone(self, account_sid: str, room_sid: str) -> int:
        await self.answer(room_sid)
        return 0


class FakeWorkers:
    """The media-worker registry: ``live`` workers, least loaded first among non-draining ones."""

    def __init__(self, *workers: WorkerInfo) -> None:
        self.live: dict[str, WorkerInfo] = {worker.worker_id: worker for worker in workers}

    async def get(self, worker_id: str) -> WorkerInfo | None:
        """A live worker's entry, as if it had just heartbeaten."""
        await asyncio.sleep(0)
        info = self.live.get(worker_id)
        return None if info is None else info.model_copy(update={"heartbeat_at": time.time()})

    async def least_loaded(self) -> WorkerInfo | None:
        await asyncio.sleep(0)
        takers = [w for w in self.live.values() if not w.draining and w.participants < w.capacity]
        return min(takers, key=lambda worker: worker.load, default=None)


class FakeMedia:
    """The media workers' control subjects: the ``live`` workers of ``workers`` answer pings;
    ``adopted`` lists (worker, room SID, from worker) of each adoption; a worker in ``refusing``
    fails it."""

    def __init__(self, workers: FakeWorkers) -> None:
        self.workers = workers
        self.adopted: list[tuple[str, str, str]] = []
        self.refusing: set[str] = set()

    async def responds(self, worker_id: str) -> bool:
        await asyncio.sleep(0)
        return worker_id in self.workers.live

    async def adopt(self, worker_id: str, room: RoomInfo, from_worker: str) -> int:
        await asyncio.sleep(0)
        if worker_id in self.refusing or worker_id not in self.workers.live:
            raise AtriumError(SERVICE_UNAVAILABLE, "Service unavailable (NoRespondersError)", 503)
        self.adopted.append((worker_id, room.sid, from_worker))
        return 0


class FakeAccounts:
    def __init__(self, *accounts: Account) -> None:
        self.accounts = {account.sid: account for account in accounts}

    async def get_account(self, sid: str) -> Account | None:
        await asyncio.sleep(0)
        return self.accounts.get(sid)


@dataclass
class RoomFakes:
    """Every port of the room service in memory; ``service()`` wires one replica on them (call it
    again for another replica sharing the same storage and services)."""

    store: FakeRoomStore = field(default_factory=FakeRoomStore)
    participants: FakeParticipants = field(default_factory=FakeParticipants)
    workers: FakeWorkers = field(default_factory=lambda: FakeWorkers(WorkerInfo(worker_id="w1")))
    accounts: FakeAccounts = field(default_factory=FakeAccounts)
    clock: FakeClock = field(default_factory=FakeClock)
    media: FakeMedia | None = None

    def service(self, settings: Settings, *, workers: FakeWorkers | None = None) -> RoomService:
        workers = workers if workers is not None else self.workers
        if self.media is None or self.media.workers is not workers:
            self.media = FakeMedia(workers)
        return bootstrap(
            settings,
            broker=NatsBroker(),
            uow=self.store.uow,
            queries=self.store.queries,
            timers=self.store.timers,
            participants=self.participants,
            workers=workers,
            media=self.media,
            accounts=self.accounts,
            clock=self.clock,
        )

    @property
    def committed_types(self) -> list[str]:
        return [event.event_type for event in self.store.uow.committed]

    def timers_of(self, room_sid: str) -> dict[str, float]:
        """The room's pending timers: kind -> due time."""
        timers = self.store.view.timers
        return {timer.kind: due for timer, due in timers.items() if timer.room_sid == room_sid}
