"""The transactional outbox: a state change and its events commit together, then reach JetStream.

:func:`commit` runs a read-decide-write cycle under Redis ``WATCH``: the caller reads what it needs,
decides with its domain rules, and queues its writes; the events go into the outbox stream in the
same ``MULTI``. A concurrent change to a watched key retries the whole cycle, so two replicas that
race to change one record cannot both win.

:class:`OutboxRelay` moves outbox entries to JetStream with ``Nats-Msg-Id`` = event id and removes
them once JetStream has acknowledged. One relay leads at a time (a Redis lease), which keeps the
stream in commit order, so per-room sequence numbers arrive in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from opentelemetry import propagate, trace
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from atrium_shared.events import DomainEvent, parse_event
from atrium_shared.subjects import EVENTS_STREAM_NAME, ensure_events_stream, event_subject

log = logging.getLogger("atrium.outbox")

OUTBOX_STREAM = "atrium:outbox"
RELAY_LEASE_KEY = "atrium:outbox:relay-lease"


def sequence_key(room_sid: str) -> str:
    return f"atrium:room-seq:{room_sid}"


@dataclass
class Change:
    """What a decision wants committed: Redis writes (queued on the MULTI pipeline) and events."""

    write: Callable[[Pipeline], None] = lambda pipe: None
    events: list[DomainEvent] = field(default_factory=list)


Decide = Callable[[Pipeline], Awaitable[Change | None]]


async def commit(redis: Redis, watch: Sequence[str], decide: Decide) -> Change | None:
    """Run ``decide`` under WATCH of ``watch`` and commit its change with its events atomically.

    ``decide`` reads through the given pipeline (immediate mode) and returns the change, or None
    to commit nothing. It may raise to abort. On a write conflict it is called again.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    trace_context = json.dumps(carrier)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                if watch:
                    await pipe.watch(*watch)
                change = await decide(pipe)
                if change is None:
                    await pipe.reset()
                    return None
                rooms = sorted({event.room_sid for event in change.events})
                seq_keys = [sequence_key(room) for room in rooms]
                last_seq: dict[str, int] = {}
                if seq_keys:
                    await pipe.watch(*seq_keys)
                    current = await pipe.mget(seq_keys)
                    last_seq = {
                        room: (int(value) if value is not None else -1)
                        for room, value in zip(rooms, current, strict=True)
                    }
                for event in change.events:
                    last_seq[event.room_sid] += 1
                    event.sequence_number = last_seq[event.room_sid]
                pipe.multi()
                change.write(pipe)
                for room, seq in last_seq.items():
                    pipe.set(sequence_key(room), seq)
                for event in change.events:
                    pipe.xadd(
                        OUTBOX_STREAM,
                        {
                            "subject": event_subject(
                                event.account_sid, event.room_sid, event.event_type
                            ),
                            "event": event.model_dump_json(),
                            "trace": trace_context,
                        },
                    )
                await pipe.execute()
                return change
            except WatchError:
                continue


_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class OutboxRelay:
    """Relays outbox entries to JetStream; every service runs one, one leads at a time."""

    def __init__(
        self,
        redis: Redis,
        broker: NatsBroker,
        *,
        lease_seconds: float = 3.0,
        batch: int = 100,
    ) -> None:
        self._redis = redis
        self._broker = broker
        self._lease_ms = int(lease_seconds * 1000)
        self._batch = batch
        self._owner = uuid.uuid4().hex
        self._renew = redis.register_script(_RENEW_LEASE)
        self._tracer = trace.get_tracer("atrium.outbox")
        self._stopping = asyncio.Event()

    async def _lead(self) -> bool:
        return bool(await self._renew(keys=[RELAY_LEASE_KEY], args=[self._owner, self._lease_ms]))

    async def run(self) -> None:
        await ensure_events_stream(self._broker)
        while not self._stopping.is_set():
            try:
                if not await self._lead():
                    await self._sleep(self._lease_ms / 3000)
                    continue
                entries = await self._redis.xrange(OUTBOX_STREAM, count=self._batch)
                if not entries:
                    # Wake as soon as anything is appended (0-0: any entry at all).
                    await self._redis.xread({OUTBOX_STREAM: "0-0"}, count=1, block=500)
                    continue
                await self._relay_batch(entries)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("outbox relay: %s; retrying", exc)
                await self._sleep(0.5)
            except Exception:
                log.exception("outbox relay failed; retrying")
                await self._sleep(0.5)
        # Give the lease up so another replica takes over at once.
        try:
            if await self._redis.get(RELAY_LEASE_KEY) == self._owner:
                await self._redis.delete(RELAY_LEASE_KEY)
        except RedisError:
            pass

    async def _relay_batch(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Relay a batch: rooms in parallel, each room's events one after another in order.

        JetStream only needs per-room order (sequence numbers count per room), and waiting for
        each acknowledgement in turn across all rooms would cap the relay at one round trip per
        event. If anything fails nothing is trimmed: the next round publishes the batch again and
        JetStream drops what it already has (same Nats-Msg-Id), so order still holds.
        """
        chains: dict[str, list[DomainEvent]] = {}
        subjects: dict[str, str] = {}
        traces: dict[str, str] = {}
        for _, fields in entries:
            event = parse_event(fields["event"])
            chains.setdefault(event.room_sid, []).append(event)
            subjects[event.event_id] = fields["subject"]
            traces[event.event_id] = fields.get("trace") or "{}"

        async def relay_chain(chain: list[DomainEvent]) -> None:
            for event in chain:
                await self._relay(event, subjects[event.event_id], traces[event.event_id])

        await asyncio.gather(*(relay_chain(chain) for chain in chains.values()))
        await self._redis.xdel(OUTBOX_STREAM, *(entry_id for entry_id, _ in entries))

    async def _relay(self, event: DomainEvent, subject: str, trace_context: str) -> None:
        parent = propagate.extract(json.loads(trace_context))
        with self._tracer.start_as_current_span(
            "outbox relay", context=parent, attributes={"atrium.event_type": event.event_type}
        ):
            await self._broker.publish(
                event,
                subject,
                headers={"Nats-Msg-Id": event.event_id},
                stream=EVENTS_STREAM_NAME,
                timeout=5.0,
            )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stopping.set()
