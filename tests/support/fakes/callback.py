"""In-memory fakes of the callback service's ports.

:class:`FakeCallbackStore` is the intake store, the dispatcher's queue and the delivery log at
once, as the Redis adapters share one Redis. Like Redis it keeps JSON text (one value per room
projection, one per pending callback), so what is stored must survive serialization, and a test
can plant a value no model reads back. :class:`FakeSender` records every request, fails the
next ones on request, takes fake time and can hold requests until a test lets them go.
Every async method gives the event loop a turn, as a network call would.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

from faststream.nats import NatsBroker
from pydantic import SecretStr, ValidationError

from atrium_callback.bootstrap import CallbackService, bootstrap
from atrium_callback.domain import (
    AttemptResult,
    CallbackRequest,
    IntakeOutcome,
    PendingCallback,
    ProjectionUpdate,
    QueueHead,
    RoomProjection,
    Timeouts,
    anonymized,
    matches,
    projection_json,
)
from atrium_shared.accounts import Account
from atrium_shared.callbacks import DeliveryQuery, DeliveryRecord
from atrium_shared.events import ParticipantConnected, RoomCreated, RoomEnded
from atrium_shared.models import ParticipantInfo, RoomInfo
from atrium_shared.settings import Settings
from tests.support.fakes.clock import START, FakeClock


class FakeCallbackStore:
    """IntakeStore, CallbackQueue and DeliveryLogReader on dicts."""

    def __init__(self, log_max_entries: int = 10_000) -> None:
        self.log_max = log_max_entries
        self.seen: set[str] = set()
        self.rooms: dict[str, str] = {}  # room -> RoomProjection JSON
        self.ended: set[str] = set()  # rooms whose projection Redis would let expire
        self.queues: dict[str, dict[str, int]] = {}  # room -> event id -> sequence number
        self.pending: dict[str, dict[str, str]] = {}  # room -> event id -> PendingCallback JSON
        self.due: dict[str, datetime] = {}
        self.leases: dict[str, str] = {}  # room -> owner (no expiry: tests take leases away)
        self.log: list[DeliveryRecord] = []  # newest first
        self.dead: list[DeliveryRecord] = []
        self._failures: dict[str, list[Exception]] = {}

    def fail(self, method: str, *errors: Exception) -> None:
        """The next calls of ``method`` (e.g. ``"head"``) raise ``errors``, one each."""
        self._failures.setdefault(method, []).extend(errors)

    def failing(self, method: str) -> bool:
        """Whether calls of ``method`` are still to fail."""
        return bool(self._failures.get(method))

    async def _turn(self, method: str) -> None:
        await asyncio.sleep(0)
        if self._failures.get(method):
            raise self._failures[method].pop(0)

    # What tests look at -----------------------------------------------------------------------
    def room(self, room_sid: str) -> RoomProjection | None:
        raw = self.rooms.get(room_sid)
        return projection_json.validate_json(raw) if raw is not None else None

    def queued(self, room_sid: str) -> list[PendingCallback]:
        """The room's pending callbacks, in delivery order."""
        order = sorted(self.queues.get(room_sid, {}).items(), key=lambda item: item[1])
        values = self.pending.get(room_sid, {})
        return [PendingCallback.model_validate_json(values[event_id]) for event_id, _ in order]

    def plant(self, room_sid: str, event_id: str, sequence_number: int, raw: str) -> None:
        """Queue a pending callback as raw text, e.g. one no model can read back."""
        self.queues.setdefault(room_sid, {})[event_id] = sequence_number
        self.pending.setdefault(room_sid, {})[event_id] = raw

    # IntakeStore ------------------------------------------------------------------------------
    async def take_in(
        self, pending: PendingCallback, update: ProjectionUpdate, due_at: datetime
    ) -> IntakeOutcome:
        await self._turn("take_in")
        event = pending.event
        if event.event_id in self.seen:
            return "duplicate"
        self.seen.add(event.event_id)
        room = update.apply(self.room(event.room_sid))
        if room is None:
            self.rooms.pop(event.room_sid, None)
            return "no-callback"
        self.rooms[event.room_sid] = projection_json.dump_json(room).decode()
        if update.ended:
            self.ended.add(event.room_sid)
        self.plant(event.room_sid, event.event_id, event.sequence_number, pending.model_dump_json())
        self.due.setdefault(event.room_sid, due_at)
        return "queued"

    async def anonymize(self, room_sid: str, participant_sid: str) -> int:
        await self._turn("anonymize")
        values = self.pending.get(room_sid, {})
        changed = 0
        for event_id, raw in values.items():
            renamed = anonymized(PendingCallback.model_validate_json(raw), participant_sid)
            if renamed is not None:
                values[event_id] = renamed.model_dump_json()
                changed += 1
        return changed

    # CallbackQueue ----------------------------------------------------------------------------
    async def due_rooms(self, now: datetime, limit: int) -> list[str]:
        await self._turn("due_rooms")
        due = sorted((at, room) for room, at in self.due.items() if at <= now)
        return [room for _, room in due[:limit]]

    async def acquire(self, room_sid: str, owner: str, ttl_ms: int) -> bool:
        await self._turn("acquire")
        holder = self.leases.setdefault(room_sid, owner)
        return holder == owner

    async def release(self, room_sid: str, owner: str) -> None:
        await self._turn("release")
        if self.leases.get(room_sid) == owner:
            del self.leases[room_sid]

    async def head(self, room_sid: str) -> QueueHead | None:
        await self._turn("head")
        queue = self.queues.get(room_sid)
        if not queue:
            return None
        event_id = min(queue, key=lambda one: queue[one])
        raw_room = self.rooms.get(room_sid)
        if raw_room is None:
            return QueueHead(event_id, None, None, "the room's projection is gone")
        try:
            pending = PendingCallback.model_validate_json(self.pending[room_sid][event_id])
        except ValidationError as exc:
            return QueueHead(event_id, None, None, str(exc))
        return QueueHead(event_id, pending, projection_json.validate_json(raw_room))

    async def finish(
        self, room_sid: str, owner: str, record: DeliveryRecord, now: datetime
    ) -> bool:
        await self._turn("finish")
        if not self._pop(room_sid, owner, record.event_id, now):
            return False
        self.log.insert(0, record)
        del self.log[self.log_max :]
        if record.outcome == "dead-letter":
            self.dead.insert(0, record)
            del self.dead[self.log_max :]
        return True

    async def drop(self, room_sid: str, owner: str, event_id: str, now: datetime) -> bool:
        await self._turn("drop")
        return self._pop(room_sid, owner, event_id, now)

    def _pop(self, room_sid: str, owner: str, event_id: str, now: datetime) -> bool:
        if self.leases.get(room_sid) != owner:
            return False
        self.queues[room_sid].pop(event_id, None)
        self.pending[room_sid].pop(event_id, None)
        if self.queues[room_sid]:
            self.due[room_sid] = now
        else:
            self.due.pop(room_sid, None)
        return True

    async def reschedule(
        self, room_sid: str, owner: str, pending: PendingCallback, due_at: datetime
    ) -> bool:
        await self._turn("reschedule")
        if self.leases.get(room_sid) != owner:
            return False
        self.pending[room_sid][pending.event.event_id] = pending.model_dump_json()
        self.due[room_sid] = due_at
        del self.leases[room_sid]
        return True

    # DeliveryLogReader ------------------------------------------------------------------------
    async def deliveries(self, query: DeliveryQuery) -> list[DeliveryRecord]:
        await self._turn("deliveries")
        records = self.dead if query.kind == "dead-letters" else self.log
        return [record for record in records if matches(record, query)][: max(0, query.limit)]


@dataclass(frozen=True)
class SentRequest:
    request: CallbackRequest
    timeouts: Timeouts
    at: datetime  # fake time when it was sent
    trace: dict[str, str]  # the trace context current while it was sent

    @property
    def params(self) -> dict[str, str]:
        if self.request.form is not None:
            return dict(self.request.form)
        return dict(parse_qsl(urlsplit(self.request.url).query))

    @property
    def room_sid(self) -> str:
        return self.params["RoomSid"]

    @property
    def sequence(self) -> int:
        return int(self.params["SequenceNumber"])


class FakeTracing:
    """Each ``current()`` is a new trace; ``active`` is the one ``continued`` made current."""

    def __init__(self) -> None:
        self.started = 0
        self.active: dict[str, str] = {}

    def current(self) -> dict[str, str]:
        self.started += 1
        return {"traceparent": f"trace-{self.started}"}

    @contextlib.contextmanager
    def continued(self, carrier: Mapping[str, str]) -> Iterator[None]:
        before, self.active = self.active, dict(carrier)
        try:
            yield
        finally:
            self.active = before


Rule = Callable[[CallbackRequest], bool]


class FakeSender:
    """Answers 200 unless told otherwise; ``takes`` seconds of fake time per request."""

    def __init__(self, clock: FakeClock, tracing: FakeTracing) -> None:
        self.clock = clock
        self.tracing = tracing
        self.sent: list[SentRequest] = []
        self.takes = 0.0
        self._failures: list[tuple[Rule, AttemptResult]] = []
        self._holds: list[tuple[Rule, asyncio.Event]] = []
        self.in_flight: dict[str, int] = {}  # room -> requests being sent
        self.overlaps: list[str] = []  # rooms that had two requests in flight at once

    def fail(
        self, times: int, result: AttemptResult | None = None, *, where: Rule | None = None
    ) -> None:
        """The next ``times`` requests (matching ``where``) get ``result`` (default HTTP 503)."""
        outcome = result or AttemptResult(status=503)
        self._failures.extend([(where or (lambda _: True), outcome)] * times)

    def hold(self, where: Rule) -> asyncio.Event:
        """Requests matching ``where`` wait until the returned event is set."""
        gate = asyncio.Event()
        self._holds.append((where, gate))
        return gate

    def of_room(self, room_sid: str) -> list[SentRequest]:
        return [sent for sent in self.sent if sent.room_sid == room_sid]

    def sequences(self, room_sid: str) -> list[int]:
        return [sent.sequence for sent in self.of_room(room_sid)]

    async def send(self, request: CallbackRequest, timeouts: Timeouts) -> AttemptResult:
        sent = SentRequest(request, timeouts, self.clock.now(), dict(self.tracing.active))
        self.sent.append(sent)
        room = sent.room_sid
        self.in_flight[room] = self.in_flight.get(room, 0) + 1
        if self.in_flight[room] > 1:
            self.overlaps.append(room)
        try:
            await asyncio.sleep(0)
            for where, gate in self._holds:
                if where(request):
                    await gate.wait()
            self.clock.advance(self.takes)
            for index, (where, result) in enumerate(self._failures):
                if where(request):
                    del self._failures[index]
                    return result
            return AttemptResult(status=200)
        finally:
            self.in_flight[room] -= 1


class FakeAccounts:
    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}

    def add(
        self, sid: str, auth_token: str, status: Literal["active", "closed"] = "active"
    ) -> Account:
        account = Account(
            sid=sid, friendly_name=sid, auth_token=SecretStr(auth_token), status=status
        )
        self.accounts[sid] = account
        return account

    async def get_account(self, sid: str) -> Account | None:
        await asyncio.sleep(0)
        return self.accounts.get(sid)


@dataclass
class CallbackFakes:
    """Every port of the callback service in memory, the account :data:`ACCOUNT` active;
    ``service()`` wires one replica on them (call it again for another replica sharing the same
    store, webhook and clock)."""

    clock: FakeClock = field(default_factory=FakeClock)
    tracing: FakeTracing = field(default_factory=FakeTracing)
    store: FakeCallbackStore = field(default_factory=FakeCallbackStore)
    accounts: FakeAccounts = field(default_factory=FakeAccounts)
    sender: FakeSender = field(init=False)

    def __post_init__(self) -> None:
        self.sender = FakeSender(self.clock, self.tracing)
        self.accounts.add(ACCOUNT, AUTH_TOKEN)

    def service(self, settings: Settings) -> CallbackService:
        return bootstrap(
            settings,
            broker=NatsBroker(),
            intake_store=self.store,
            queue=self.store,
            delivery_log=self.store,
            accounts=self.accounts,
            sender=self.sender,
            tracing=self.tracing,
            clock=self.clock,
        )


# Events as the room and participant services emit them ---------------------------------------

ACCOUNT = "AC" + "a" * 32
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"


@dataclass
class RoomEvents:
    """Builds one room's events with consecutive sequence numbers, from 0, timed by ``clock``."""

    clock: FakeClock
    url: str | None = "https://app.example.com/status"
    method: Literal["GET", "POST"] = "POST"
    name: str = "daily"
    sid: str = field(default_factory=lambda: "RM" + uuid.uuid4().hex)
    next_sequence: int = 0

    def info(self, **changes: object) -> RoomInfo:
        at = self.clock.now()
        room = RoomInfo(
            sid=self.sid,
            account_sid=ACCOUNT,
            unique_name=self.name,
            date_created=at,
            date_updated=at,
            status_callback=self.url,
            status_callback_method=self.method,
        )
        return room.model_copy(update=changes)

    def _sequence(self) -> int:
        self.next_sequence += 1
        return self.next_sequence - 1

    def created(self, **changes: object) -> RoomCreated:
        return RoomCreated(
            account_sid=ACCOUNT,
            room_sid=self.sid,
            room=self.info(**changes),
            occurred_at=self.clock.now(),
            sequence_number=self._sequence(),
        )

    def ended(self, **changes: object) -> RoomEnded:
        room = self.info(status="completed", duration=42, **changes)
        return RoomEnded(
            account_sid=ACCOUNT,
            room_sid=self.sid,
            room=room,
            occurred_at=self.clock.now(),
            sequence_number=self._sequence(),
        )

    def connected(self, identity: str = "alice") -> ParticipantConnected:
        at = self.clock.now()
        participant = ParticipantInfo(
            sid="PA" + uuid.uuid4().hex,
            room_sid=self.sid,
            account_sid=ACCOUNT,
            identity=identity,
            date_created=at,
            date_updated=at,
            start_time=at,
        )
        return ParticipantConnected(
            account_sid=ACCOUNT,
            room_sid=self.sid,
            participant=participant,
            occurred_at=at,
            sequence_number=self._sequence(),
        )


def delivery_record(
    n: int,
    room_sid: str,
    *,
    account_sid: str = ACCOUNT,
    dead: bool = False,
    at: datetime = START,
) -> DeliveryRecord:
    """A finished callback as the delivery log holds it: event ``e<n>``, sequence ``n``."""
    return DeliveryRecord(
        event_id=f"e{n}",
        account_sid=account_sid,
        room_sid=room_sid,
        event_type="room-created",
        sequence_number=n,
        url="https://app.example.com/s",
        method="POST",
        outcome="dead-letter" if dead else "delivered",
        attempts=1,
        last_status=500 if dead else 204,
        first_attempt_at=at,
        finished_at=at,
    )
