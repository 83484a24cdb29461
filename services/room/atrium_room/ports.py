"""What the room use cases need from the outside world, as interfaces only.

The adapters (:mod:`atrium_room.adapters`) implement them on Redis and NATS; the unit tier
implements them in memory (``tests/support/fakes/room.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from atrium_room.domain import Timer
from atrium_shared.accounts import Account
from atrium_shared.events import DomainEvent
from atrium_shared.models import RoomInfo
from atrium_shared.workers import WorkerInfo


class RoomTransaction(Protocol):
    """One attempt at a room change: reads, then staged writes and events committed together.

    Reads make the commit fail (and the decision run again) if what they read changes before it.
    """

    async def room(self, sid: str) -> RoomInfo | None: ...

    async def room_holding_name(self, account_sid: str, unique_name: str) -> RoomInfo | None:
        """The room that claimed this unique name (an in-progress room, or None)."""
        ...

    async def present(self, room_sid: str) -> set[str]:
        """SIDs of the participants connected to the room, as learned from their events."""
        ...

    async def placement(self, room_sid: str) -> str | None:
        """The media worker hosting the room."""
        ...

    def add_room(self, room: RoomInfo) -> None:
        """Store a new room and claim its unique name."""
        ...

    def end_room(self, before: RoomInfo, after: RoomInfo) -> None:
        """Store a room that ended: frees its name, forgets its presence and placement."""
        ...

    def delete_room(self, room: RoomInfo) -> None:
        """Forget a room entirely (its retention is over)."""
        ...

    def add_present(self, room_sid: str, participant_sid: str) -> None: ...

    def remove_present(self, room_sid: str, participant_sid: str) -> None: ...

    def place(self, room_sid: str, worker_id: str) -> None:
        """Host the room on ``worker_id`` (indexed by worker, for failover)."""
        ...

    async def rooms_on(self, worker_id: str) -> list[str]:
        """SIDs of the rooms placed on the worker."""
        ...

    def forget_worker(self, worker_id: str) -> None:
        """The worker hosts nothing any more: the failover sweep stops looking at it."""
        ...

    def schedule(self, timer: Timer, due_at: float) -> None:
        """Set (or move) the timer to ``due_at``, epoch seconds."""
        ...

    def cancel(self, *timers: Timer) -> None: ...

    def emit(self, *events: DomainEvent) -> None: ...


class RoomQueries(Protocol):
    """Reads outside a transaction: REST fetches and listings."""

    async def get(self, sid: str) -> RoomInfo | None: ...

    async def holding_name(self, account_sid: str, unique_name: str) -> RoomInfo | None: ...

    async def placement(self, room_sid: str) -> str | None: ...

    async def placed_workers(self) -> list[str]:
        """Every worker that rooms were placed on and that the sweep has not forgotten."""
        ...

    async def rooms_on(self, worker_id: str) -> list[str]: ...

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
        """Newest first: (rooms, next cursor, previous cursor). ValueError: a bad cursor."""
        ...


class RoomTimers(Protocol):
    """The timers that are due; they are set and cancelled through :class:`RoomTransaction`."""

    async def due(self, now: float, limit: int = 100) -> list[Timer]: ...

    async def drop(self, timer: Timer) -> None: ...


class ParticipantsPort(Protocol):
    async def disconnect_everyone(self, account_sid: str, room_sid: str) -> int:
        """Disconnect a room's participants before it ends: Twilio sends their
        ``participant-disconnected`` callbacks before ``room-ended``. Returns how many left."""
        ...


class Worker(Protocol):
    @property
    def worker_id(self) -> str: ...


class WorkersPort(Protocol):
    """The media-worker registry, as the room service places rooms on it."""

    async def get(self, worker_id: str) -> WorkerInfo | None:
        """The worker's registry entry; None when it expired (or the worker left)."""
        ...

    async def least_loaded(self) -> Worker | None:
        """The live worker with the lowest load that takes new rooms, if any."""
        ...


class MediaPort(Protocol):
    """Requests to one media worker."""

    async def responds(self, worker_id: str) -> bool:
        """Whether the worker answers a ping now."""
        ...

    async def adopt(self, worker_id: str, room: RoomInfo, from_worker: str) -> int:
        """Have the worker host ``room`` and resume its sessions; how many it resumed.
        AtriumError: it could not."""
        ...


class AccountsPort(Protocol):
    async def get_account(self, sid: str) -> Account | None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
