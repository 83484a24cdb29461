"""What the callback use cases need from the outside world, as interfaces only.

The adapters (:mod:`atrium_callback.adapters`) implement them on Redis, HTTP and OpenTelemetry;
the unit tier implements them in memory (``tests/support/fakes/callback.py``).

No port here is a unit of work. Intake is serial (one unacknowledged event at a time, for all
replicas), so its cost per event bounds the service's throughput; taking an event in is one
atomic store step (one round trip) instead of a WATCH, a read and a MULTI (three, measured at a
quarter fewer events per second). The dispatcher's steps are guarded by the room's lease rather
than by what they read. The rules those steps follow (:class:`ProjectionUpdate`, retries) are
decided in :mod:`atrium_callback.domain`; the store only applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from atrium_callback.domain import (
    AttemptResult,
    CallbackRequest,
    IntakeOutcome,
    PendingCallback,
    ProjectionUpdate,
    QueueHead,
    Timeouts,
)
from atrium_shared.accounts import Account
from atrium_shared.callbacks import DeliveryQuery, DeliveryRecord


class IntakeStore(Protocol):
    async def take_in(
        self, pending: PendingCallback, update: ProjectionUpdate, due_at: datetime
    ) -> IntakeOutcome:
        """In one atomic step: unless the event was taken in before (JetStream redelivers after a
        crash), apply ``update`` to its room's projection and, if the room is then known, queue
        the callback behind the room's earlier ones, the room due by ``due_at`` at the latest (an
        earlier due time, e.g. a retry already scheduled, stays)."""
        ...

    async def anonymize(self, room_sid: str, participant_sid: str) -> int:
        """Rewrite the room's pending callbacks that name the participant with its SID in
        place of its identity (:func:`atrium_callback.domain.anonymized`), without losing a
        concurrent change to them; returns how many changed."""
        ...


class CallbackQueue(Protocol):
    """The rooms' queues as the dispatcher works them. ``owner`` is the dispatcher's lease id:
    every change of a room's queue happens only while ``owner`` holds the room's lease."""

    async def due_rooms(self, now: datetime, limit: int) -> list[str]:
        """Rooms whose next callback may be tried at ``now``, longest due first."""
        ...

    async def acquire(self, room_sid: str, owner: str, ttl_ms: int) -> bool:
        """Take the room's lease if it is free, or extend ours; False if another holds it."""
        ...

    async def release(self, room_sid: str, owner: str) -> None: ...

    async def head(self, room_sid: str) -> QueueHead | None:
        """The room's next callback (lowest sequence number), None if its queue is empty."""
        ...

    async def finish(
        self, room_sid: str, owner: str, record: DeliveryRecord, now: datetime
    ) -> bool:
        """Remove the head, log ``record`` (and dead-letter it if so), make the room due at
        ``now`` if more is queued. False, changing nothing, if the lease was lost."""
        ...

    async def reschedule(
        self, room_sid: str, owner: str, pending: PendingCallback, due_at: datetime
    ) -> bool:
        """Store the head's new attempt state, make the room due at ``due_at`` and release the
        lease. False, changing nothing, if the lease was lost."""
        ...

    async def drop(self, room_sid: str, owner: str, event_id: str, now: datetime) -> bool:
        """Remove an unreadable head without logging it; as :meth:`finish` otherwise."""
        ...


class DeliveryLogReader(Protocol):
    async def deliveries(self, query: DeliveryQuery) -> list[DeliveryRecord]:
        """Finished callbacks (or dead letters only), newest first, filtered by ``query``."""
        ...


class AccountsPort(Protocol):
    async def get_account(self, sid: str) -> Account | None: ...


class CallbackSender(Protocol):
    async def send(self, request: CallbackRequest, timeouts: Timeouts) -> AttemptResult:
        """Make one try; report how it went, never raise."""
        ...


class Tracing(Protocol):
    """Carries a trace from an event's consumption to its callback's HTTP request."""

    def current(self) -> dict[str, str]:
        """The current trace context, as a carrier that can be stored."""
        ...

    def continued(self, carrier: Mapping[str, str]) -> AbstractContextManager[None]:
        """Make ``carrier``'s trace current for the block (spans and log lines join it)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
