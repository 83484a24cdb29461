"""What the callback service does: take events in, deliver their callbacks, answer the log.

Intake records each consumed event in its room's queue (idempotently, by event id) so the
JetStream message can be acknowledged at once. The dispatcher drains each room's queue in
sequence order, one callback at a time per room, under a per-room lease so two replicas never
deliver one room concurrently, while many rooms proceed in parallel (bounded).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from datetime import datetime

from opentelemetry import context as otel_context
from opentelemetry import propagate
from pydantic import ValidationError

from atrium_callback.adapters.http_sender import HttpSender
from atrium_callback.adapters.redis_store import (
    AttemptState,
    CallbackStore,
    QueuedCallback,
)
from atrium_callback.domain import (
    AttemptResult,
    build_request,
    callback_params,
    parse_callback_url,
    projection_from_event,
    public_url,
    retry_plan,
)
from atrium_shared.accounts import AccountStore
from atrium_shared.callbacks import DeliveryList, DeliveryQuery, DeliveryRecord
from atrium_shared.events import DomainEvent, parse_event
from atrium_shared.settings import Settings
from atrium_shared.timefmt import utcnow

log = logging.getLogger("atrium.callback")

# A lease outlives a crashed holder by at most this long; the holder renews it every third.
LEASE_MS = 2000


def _now_ms() -> int:
    return int(time.time() * 1000)


class Intake:
    def __init__(self, store: CallbackStore, wake: asyncio.Event) -> None:
        self._store = store
        self._wake = wake

    async def accept(self, raw: bytes | str) -> DomainEvent | None:
        """Record one consumed event. Returns the event, or None if it is unreadable.

        Raises only if the event could not be stored (Redis down): it must then be redelivered.
        """
        try:
            event = parse_event(raw)
        except ValidationError as exc:
            log.error(
                "dropping unreadable event",
                extra={"fields": {"errors": exc.error_count(), "detail": str(exc)[:500]}},
            )
            return None
        carrier: dict[str, str] = {}
        propagate.inject(carrier)  # the consume span, parent of the delivery's HTTP span
        outcome = await self._store.record(
            event_id=event.event_id,
            room_sid=event.room_sid,
            sequence_number=event.sequence_number,
            event_json=event.model_dump_json(),
            trace=carrier,
            projection=projection_from_event(event),
            defines_room=event.event_type == "room-created",
            room_ended=event.event_type == "room-ended",
            now_ms=_now_ms(),
        )
        log.debug(
            "event recorded",
            extra={
                "fields": {
                    "event_id": event.event_id,
                    "room_sid": event.room_sid,
                    "event_type": event.event_type,
                    "outcome": outcome,
                }
            },
        )
        if outcome == "queued":
            self._wake.set()
        return event


class DeliveryLog:
    def __init__(self, store: CallbackStore) -> None:
        self._store = store

    async def query(self, query: DeliveryQuery) -> DeliveryList:
        return DeliveryList(records=await self._store.deliveries(query))


class Dispatcher:
    def __init__(
        self,
        store: CallbackStore,
        accounts: AccountStore,
        sender: HttpSender,
        settings: Settings,
        wake: asyncio.Event,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._sender = sender
        self._settings = settings
        self._wake = wake
        self._owner = uuid.uuid4().hex
        self._slots = max(1, settings.callback_concurrency)
        self._poll_s = max(0.02, min(settings.timer_poll_seconds, 1.0))
        self._active: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._start_due_rooms()
            except Exception as exc:
                # Redis unreachable, most likely; the schedule is in Redis, so nothing is lost.
                log.warning("callback dispatcher: %s; retrying", exc)
            await self._idle()
        # Let the rooms in flight finish their current try (the runtime bounds the wait).
        if self._active:
            await asyncio.gather(*self._active.values(), return_exceptions=True)

    async def _idle(self) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
        except TimeoutError:
            pass

    async def _start_due_rooms(self) -> None:
        free = self._slots - len(self._active)
        if free <= 0:
            return
        # Ask for more than we can take: rooms leased by other replicas are skipped.
        candidates = await self._store.due_rooms(_now_ms(), free + len(self._active) + 50)
        for room_sid in candidates:
            if free <= 0 or self._stopping.is_set():
                break
            if room_sid in self._active:
                continue
            if not await self._store.acquire(room_sid, self._owner, LEASE_MS):
                continue
            task = asyncio.create_task(self._drain_room(room_sid), name=f"callbacks {room_sid}")
            self._active[room_sid] = task
            task.add_done_callback(functools.partial(self._room_done, room_sid))
            free -= 1

    def _room_done(self, room_sid: str, _task: asyncio.Task[None]) -> None:
        self._active.pop(room_sid, None)
        self._wake.set()  # a slot is free

    async def _drain_room(self, room_sid: str) -> None:
        """Deliver the room's queue head by head while we hold its lease."""
        renewer = asyncio.create_task(self._keep_lease(room_sid))
        try:
            while not self._stopping.is_set() and not renewer.done():
                if not await self._deliver_head(room_sid):
                    return
        except Exception:
            log.exception("delivering callbacks of %s failed; will retry", room_sid)
        finally:
            renewer.cancel()
            try:
                await self._store.release(room_sid, self._owner)
            except Exception as exc:
                log.warning("releasing lease of %s: %s", room_sid, exc)

    async def _keep_lease(self, room_sid: str) -> None:
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            try:
                if not await self._store.acquire(room_sid, self._owner, LEASE_MS):
                    log.warning("lost the lease of room %s", room_sid)
                    return
            except Exception as exc:
                log.warning("renewing lease of %s: %s", room_sid, exc)

    async def _deliver_head(self, room_sid: str) -> bool:
        """Try the room's next callback once. True to go on with the next one now."""
        head = await self._store.head(room_sid)
        if head is None:
            return False
        event_id, raw_item, state = head
        try:
            if raw_item is None:
                raise ValueError("queued item missing")
            item = QueuedCallback.model_validate_json(raw_item)
            event = parse_event(item.event)
        except (ValueError, ValidationError) as exc:
            log.error(
                "dropping unreadable queued callback",
                extra={"fields": {"room_sid": room_sid, "event_id": event_id, "error": str(exc)}},
            )
            return await self._store.drop(room_sid, self._owner, event_id, _now_ms())

        # Continue the event's trace: the HTTP span becomes a child of the consume span.
        token = otel_context.attach(propagate.extract(item.trace))
        try:
            return await self._attempt(room_sid, event, item, state)
        finally:
            otel_context.detach(token)

    async def _attempt(
        self, room_sid: str, event: DomainEvent, item: QueuedCallback, state: AttemptState
    ) -> bool:
        target = parse_callback_url(item.url)
        plan = retry_plan(target.overrides, self._settings)
        started = state.first_attempt_at or utcnow()
        elapsed_ms = (utcnow() - started).total_seconds() * 1000

        account = await self._accounts.get_account(item.account_sid)
        tried = account is not None and account.status == "active"
        if account is None or not tried:
            # Nothing to sign with: no try can succeed.
            result = AttemptResult(error="account not found or not active", permanent=True)
        else:
            request = build_request(
                target,
                item.method,
                callback_params(event, item.room()),
                account.auth_token.get_secret_value(),
            )
            result = await self._sender.send(request, plan.try_timeouts(elapsed_ms))

        state = AttemptState(
            attempts=state.attempts + (1 if tried else 0),
            first_attempt_at=started,
            last_status=result.status,
            last_error=result.error
            or (f"HTTP {result.status}" if result.status and not result.delivered else None),
        )
        fields = {
            "room_sid": room_sid,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "sequence_number": event.sequence_number,
            "url": public_url(item.url),
            "attempt": state.attempts,
            "status": result.status,
        }
        elapsed_ms = (utcnow() - started).total_seconds() * 1000
        delay = None if result.delivered else plan.next_delay(result, state.attempts, elapsed_ms)
        if delay is not None:
            log.info(
                "status callback failed; retrying in %.2fs",
                delay,
                extra={"fields": {**fields, "error": state.last_error}},
            )
            await self._store.reschedule(
                room_sid, self._owner, event.event_id, state, _now_ms() + int(delay * 1000)
            )
            return False  # the lease is released; the room waits for its turn in the schedule

        record = self._record(event, item, state, started, result)
        if record.outcome == "delivered":
            log.info("status callback delivered", extra={"fields": fields})
        else:
            log.warning(
                "status callback dead-lettered",
                extra={"fields": {**fields, "error": state.last_error}},
            )
        return await self._store.finish(room_sid, self._owner, record, _now_ms())

    @staticmethod
    def _record(
        event: DomainEvent,
        item: QueuedCallback,
        state: AttemptState,
        started: datetime,
        result: AttemptResult,
    ) -> DeliveryRecord:
        return DeliveryRecord(
            event_id=event.event_id,
            account_sid=event.account_sid,
            room_sid=event.room_sid,
            event_type=event.event_type,
            sequence_number=event.sequence_number,
            url=public_url(item.url),
            method=item.method,
            outcome="delivered" if result.delivered else "dead-letter",
            attempts=state.attempts,
            last_status=state.last_status,
            last_error=None if result.delivered else state.last_error,
            first_attempt_at=started,
            finished_at=utcnow(),
        )
