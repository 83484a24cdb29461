"""What the callback service does: take events in, deliver their callbacks, answer the log.

:class:`Intake` records each consumed event's callback in its room's queue (once per event id)
so the JetStream message can be acknowledged at once. :class:`Delivery` tries a room's next
callback once and settles it: logged, dead-lettered or rescheduled with backoff. The
:class:`Dispatcher` drains each due room's queue in sequence order, one callback at a time per
room, under a per-room lease so two replicas never deliver one room concurrently, while many
rooms proceed in parallel (bounded).

An event is parsed once, by the handler; from there on it travels as the :data:`DomainEvent`
object, stored and read back as part of its :class:`PendingCallback`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from atrium_callback.domain import (
    AttemptResult,
    IntakeOutcome,
    PendingCallback,
    RoomProjection,
    build_request,
    callback_params,
    delivery_record,
    parse_callback_url,
    projection_update,
    public_url,
    retry_plan,
)
from atrium_callback.ports import (
    AccountsPort,
    CallbackQueue,
    CallbackSender,
    Clock,
    DeliveryLogReader,
    IntakeStore,
    Tracing,
)
from atrium_shared.callbacks import DeliveryList, DeliveryQuery
from atrium_shared.events import DomainEvent, ParticipantAnonymized
from atrium_shared.settings import Settings

log = logging.getLogger("atrium.callback")

# A lease outlives a crashed holder by at most this long; the holder renews it every third.
LEASE_MS = 2000


class Intake:
    def __init__(
        self,
        store: IntakeStore,
        clock: Clock,
        tracing: Tracing,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._tracing = tracing
        self._on_queued = on_queued  # "a room has something new", to wake the dispatcher

    async def accept(self, event: DomainEvent) -> IntakeOutcome:
        """Queue the event's callback behind its room's earlier ones, unless it was taken in
        before or its room has no StatusCallback.

        Raises only if nothing could be stored (Redis down): the event must then be redelivered.
        """
        if isinstance(event, ParticipantAnonymized):
            # No callback of its own (Twilio has none): the queued ones forget the identity.
            # Delivered ones are not kept: the delivery log and dead letters hold no identity.
            await self._store.anonymize(event.room_sid, event.participant.sid)
            return "no-callback"
        # The consume span is current: the delivery's HTTP span becomes its child.
        pending = PendingCallback(event=event, trace=self._tracing.current())
        outcome = await self._store.take_in(pending, projection_update(event), self._clock.now())
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
            self._on_queued()
        return outcome


class DeliveryLog:
    def __init__(self, reader: DeliveryLogReader) -> None:
        self._reader = reader

    async def query(self, query: DeliveryQuery) -> DeliveryList:
        return DeliveryList(records=await self._reader.deliveries(query))


class Delivery:
    """One try of a room's next callback, and what follows from it."""

    def __init__(
        self,
        queue: CallbackQueue,
        accounts: AccountsPort,
        sender: CallbackSender,
        settings: Settings,
        clock: Clock,
        tracing: Tracing,
    ) -> None:
        self._queue = queue
        self._accounts = accounts
        self._sender = sender
        self._settings = settings
        self._clock = clock
        self._tracing = tracing

    async def deliver_head(self, room_sid: str, owner: str) -> bool:
        """Try the room's next callback once (``owner`` holds its lease). True to go on with the
        room's next callback now; False when its queue is empty, the next try has to wait, or the
        lease was lost."""
        head = await self._queue.head(room_sid)
        if head is None:
            return False
        if head.pending is None or head.room is None:
            log.error(
                "dropping unreadable queued callback",
                extra={
                    "fields": {
                        "room_sid": room_sid,
                        "event_id": head.event_id,
                        "error": head.problem,
                    }
                },
            )
            return await self._queue.drop(room_sid, owner, head.event_id, self._clock.now())
        # Continue the event's trace: the HTTP span becomes a child of the consume span.
        with self._tracing.continued(head.pending.trace):
            return await self._attempt(room_sid, owner, head.pending, head.room)

    async def _attempt(
        self, room_sid: str, owner: str, pending: PendingCallback, room: RoomProjection
    ) -> bool:
        url = room.url or ""  # a known room has a StatusCallback
        target = parse_callback_url(url)
        plan = retry_plan(target.overrides, self._settings)
        started = pending.attempt.first_attempt_at or self._clock.now()

        account = await self._accounts.get_account(room.account_sid)
        tried = account is not None and account.status == "active"
        if account is None or not tried:
            # Nothing to sign with: no try can succeed.
            result = AttemptResult(error="account not found or not active", permanent=True)
        else:
            request = build_request(
                target,
                room.method,
                callback_params(pending.event, room),
                account.auth_token.get_secret_value(),
            )
            timeouts = plan.try_timeouts(self._elapsed_ms(started))
            result = await self._sender.send(request, timeouts)

        attempt = pending.attempt.after(result, tried=tried, started=started)
        event = pending.event
        fields = {
            "room_sid": room_sid,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "sequence_number": event.sequence_number,
            "url": public_url(url),
            "attempt": attempt.attempts,
            "status": result.status,
        }
        delay = (
            None
            if result.delivered
            else plan.next_delay(result, attempt.attempts, self._elapsed_ms(started))
        )
        if delay is not None:
            log.info(
                "status callback failed; retrying in %.2fs",
                delay,
                extra={"fields": {**fields, "error": attempt.last_error}},
            )
            retry_at = self._clock.now() + timedelta(seconds=delay)
            retried = pending.model_copy(update={"attempt": attempt})
            await self._queue.reschedule(room_sid, owner, retried, retry_at)
            return False  # the lease is released; the room waits for its turn in the schedule

        record = delivery_record(event, url, room.method, attempt, result, self._clock.now())
        if record.outcome == "delivered":
            log.info("status callback delivered", extra={"fields": fields})
        else:
            log.warning(
                "status callback dead-lettered",
                extra={"fields": {**fields, "error": attempt.last_error}},
            )
        return await self._queue.finish(room_sid, owner, record, self._clock.now())

    def _elapsed_ms(self, started: datetime) -> float:
        return (self._clock.now() - started).total_seconds() * 1000


class Dispatcher:
    """Starts due rooms while slots are free; each room drains under its lease."""

    def __init__(
        self,
        queue: CallbackQueue,
        delivery: Delivery,
        clock: Clock,
        *,
        concurrency: int,
        poll_seconds: float,
        lease_ms: int = LEASE_MS,
    ) -> None:
        self._queue = queue
        self._delivery = delivery
        self._clock = clock
        self._owner = uuid.uuid4().hex
        self._slots = max(1, concurrency)
        self._poll_s = max(0.02, min(poll_seconds, 1.0))
        self._lease_ms = lease_ms
        self._active: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """Look for due rooms now rather than at the next poll (intake queued something)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.start_due_rooms()
            except Exception as exc:
                # Redis unreachable, most likely; the schedule is in Redis, so nothing is lost.
                log.warning("callback dispatcher: %s; retrying", exc)
            await self._idle()
        # Let the rooms in flight finish their current try (the runtime bounds the wait).
        await self.wait_active()

    async def wait_active(self) -> None:
        """Until every room started so far has drained or stopped."""
        while self._active:
            await asyncio.gather(*self._active.values(), return_exceptions=True)

    async def _idle(self) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._poll_s)
        except TimeoutError:
            pass

    async def start_due_rooms(self) -> list[str]:
        """Start draining the due rooms this dispatcher has slots for; returns those started."""
        started: list[str] = []
        free = self._slots - len(self._active)
        if free <= 0:
            return started
        # Ask for more than we can take: rooms leased by other replicas are skipped.
        limit = free + len(self._active) + 50
        for room_sid in await self._queue.due_rooms(self._clock.now(), limit):
            if len(started) >= free or self._stopping.is_set():
                break
            if room_sid in self._active:
                continue
            if not await self._queue.acquire(room_sid, self._owner, self._lease_ms):
                continue
            task = asyncio.create_task(self._drain_room(room_sid), name=f"callbacks {room_sid}")
            self._active[room_sid] = task
            task.add_done_callback(functools.partial(self._room_done, room_sid))
            started.append(room_sid)
        return started

    def _room_done(self, room_sid: str, _task: asyncio.Task[None]) -> None:
        self._active.pop(room_sid, None)
        self._wake.set()  # a slot is free

    async def _drain_room(self, room_sid: str) -> None:
        """Deliver the room's queue head by head while we hold its lease."""
        renewer = asyncio.create_task(self._keep_lease(room_sid))
        try:
            while not self._stopping.is_set() and not renewer.done():
                if not await self._delivery.deliver_head(room_sid, self._owner):
                    return
        except Exception:
            log.exception("delivering callbacks of %s failed; will retry", room_sid)
        finally:
            renewer.cancel()
            try:
                await self._queue.release(room_sid, self._owner)
            except Exception as exc:
                log.warning("releasing lease of %s: %s", room_sid, exc)

    async def _keep_lease(self, room_sid: str) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                if not await self._queue.acquire(room_sid, self._owner, self._lease_ms):
                    log.warning("lost the lease of room %s", room_sid)
                    return
            except Exception as exc:
                log.warning("renewing lease of %s: %s", room_sid, exc)
