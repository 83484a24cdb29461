"""The callback service against real NATS (JetStream) and Redis, delivering to a local webhook.

Events are produced the way the room service produces them (outbox commit + relay), so these
tests do not need the room service. Every request the webhook receives is checked with twilio's
own RequestValidator.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from faststream.nats import NatsBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis

from atrium_shared import sids
from atrium_shared.callbacks import DeliveryList, DeliveryQuery
from atrium_shared.events import DomainEvent, RoomCreated, RoomEnded
from atrium_shared.infra import make_broker
from atrium_shared.models import RoomInfo
from atrium_shared.outbox import Change, OutboxRelay, commit
from atrium_shared.rpc import call
from atrium_shared.settings import Settings
from atrium_shared.subjects import CALLBACK_DELIVERIES
from atrium_shared.timefmt import utcnow
from tests.support.logs import fields, recorded
from tests.support.stack import Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually
from tests.support.webhook import Received, Webhook, in_milliseconds

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# Callback settings of these tests: quick retries, and few of them.
FAST: dict[str, Any] = {
    "callback_backoff_initial_seconds": 0.05,
    "callback_backoff_max_seconds": 0.2,
    "callback_max_attempts": 4,
    "timer_poll_seconds": 0.05,
}

# --------------------------------------------------------------------------------------------
# Producing events like the room service does
# --------------------------------------------------------------------------------------------


def room_info(
    tenant: Tenant, url: str | None, method: str = "POST", name: str | None = None
) -> RoomInfo:
    sid = sids.new_sid(sids.ROOM)
    now = utcnow()
    return RoomInfo.model_validate(
        {
            "sid": sid,
            "account_sid": tenant.account.sid,
            "unique_name": name or sid,
            "date_created": now,
            "date_updated": now,
            "status_callback": url,
            "status_callback_method": method,
        }
    )


def created(room: RoomInfo) -> RoomCreated:
    return RoomCreated(account_sid=room.account_sid, room_sid=room.sid, room=room)


def ended(room: RoomInfo, duration: int = 7) -> RoomEnded:
    done = room.model_copy(update={"status": "completed", "duration": duration})
    return RoomEnded(account_sid=room.account_sid, room_sid=room.sid, room=done)


async def emit(redis: Redis, *events: DomainEvent) -> None:
    async def decide(_: Any) -> Change:
        return Change(events=list(events))

    await commit(redis, [], decide)


@contextlib.asynccontextmanager
async def event_relay(settings: Settings, redis: Redis) -> AsyncIterator[NatsBroker]:
    broker = make_broker(settings)
    await broker.start()
    relay = OutboxRelay(redis, broker)
    task = asyncio.create_task(relay.run())
    try:
        yield broker
    finally:
        relay.stop()
        await asyncio.wait_for(task, 10)
        await broker.stop()


def callback_service(stacks: StackFactory, **overrides: Any) -> AbstractAsyncContextManager[Stack]:
    """The callback service alone (no gateway, no room service), with ``FAST`` settings."""
    return stacks.running(("callback",), gateway=False, **{**FAST, **overrides})


def sequences(requests: Sequence[Received]) -> list[int]:
    return [r.sequence for r in requests]


def all_valid(webhook: Webhook) -> None:
    bad = [r.target for r in webhook.received if not r.valid_signature]
    assert not bad, f"requests with invalid signatures: {bad}"


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def relay(settings: Settings, redis: Redis) -> AsyncIterator[NatsBroker]:
    async with event_relay(settings, redis) as broker:
        yield broker


@pytest.fixture
async def service(relay: NatsBroker, stacks: StackFactory) -> AsyncIterator[Stack]:
    async with callback_service(stacks) as running:
        yield running


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


async def test_post_delivery_with_exact_params_and_projection(
    service: Stack, webhook: Webhook, redis: Redis, tenant: Tenant
) -> None:
    room = room_info(tenant, webhook.url("/status?tenant=a"), name="daily")
    creation = created(room)
    await emit(redis, creation)
    # The room-ended event does not carry the callback: the service remembers it from creation.
    finished = ended(room.model_copy(update={"status_callback": None}), duration=42)
    await emit(redis, finished)

    await eventually(lambda: _count(webhook, 2), message="two callbacks")
    all_valid(webhook)
    first, second = webhook.received
    assert first.method == "POST" and first.target == "/status?tenant=a"
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    # The time the event happened, not the time of the delivery.
    assert first.timestamp == in_milliseconds(creation.occurred_at)
    assert first.event_params() == {
        "AccountSid": tenant.account.sid,
        "RoomName": "daily",
        "RoomSid": room.sid,
        "RoomStatus": "in-progress",
        "RoomType": "group",
        "StatusCallbackEvent": "room-created",
        "SequenceNumber": "0",
    }
    assert second.params["StatusCallbackEvent"] == "room-ended"
    assert second.params["RoomStatus"] == "completed"
    assert second.params["RoomDuration"] == "42"
    assert second.params["SequenceNumber"] == "1"


async def test_get_delivery_puts_params_in_query(
    service: Stack, webhook: Webhook, redis: Redis, tenant: Tenant
) -> None:
    room = room_info(tenant, webhook.url("/hook?app=x%20y#rt=2000"), method="GET")
    await emit(redis, created(room))
    await eventually(lambda: _count(webhook, 1), message="GET callback")
    all_valid(webhook)
    request = webhook.received[0]
    assert request.method == "GET"
    assert request.target.startswith("/hook?app=x%20y&")
    assert "content-length" not in request.headers or request.headers["content-length"] == "0"
    assert request.params["app"] == "x y"
    assert request.params["RoomSid"] == room.sid
    assert request.params["StatusCallbackEvent"] == "room-created"
    assert request.params["AccountSid"] == tenant.account.sid


async def test_room_without_callback_sends_nothing(
    service: Stack, webhook: Webhook, redis: Redis, tenant: Tenant
) -> None:
    silent = room_info(tenant, None)
    await emit(redis, created(silent), ended(silent))
    marker = room_info(tenant, webhook.url("/marker"))
    await emit(redis, created(marker))
    await eventually(lambda: _count(webhook, 1), message="marker callback")
    # The marker came after the silent room's events on the same stream: they were processed.
    assert [r.room_sid for r in webhook.received] == [marker.sid]


async def test_order_within_a_room_holds_under_retries(
    service: Stack, webhook: Webhook, redis: Redis, tenant: Tenant
) -> None:
    failures: dict[int, int] = {0: 2, 2: 1, 3: 2}  # sequence -> how many tries fail first

    async def flaky(request: Received) -> int:
        left = failures.get(request.sequence, 0)
        if left:
            failures[request.sequence] = left - 1
            return 503
        return 200

    webhook.respond = flaky
    room = room_info(tenant, webhook.url("/ordered"))
    for _ in range(5):  # one commit per event, as state changes come one at a time
        await emit(redis, created(room))

    await eventually(lambda: _delivered(webhook, room.sid, 5), message="5 delivered")
    all_valid(webhook)
    assert sequences(webhook.received) == [0, 0, 0, 1, 2, 2, 3, 3, 3, 4]


async def test_failing_room_does_not_delay_another(
    relay: NatsBroker, webhook: Webhook, redis: Redis, tenant: Tenant, stacks: StackFactory
) -> None:

    async def respond(request: Received) -> int:
        if request.target.startswith("/down"):
            return 500
        if request.target.startswith("/slow"):
            await asyncio.sleep(3)  # a slow application: the slowness is what is tested
        return 200

    webhook.respond = respond
    down = room_info(tenant, webhook.url("/down"))
    slow = room_info(tenant, webhook.url("/slow#rt=8000"))
    healthy = room_info(tenant, webhook.url("/ok"))
    async with callback_service(stacks, callback_max_attempts=50, callback_backoff_max_seconds=0.5):
        await emit(redis, created(down), created(slow))
        await emit(redis, created(down))

        async def both_tried() -> bool:
            return await _any(webhook, "/down") and await _any(webhook, "/slow")

        await eventually(both_tried, message="both tried")
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(3):
            await emit(redis, created(healthy))
        await eventually(lambda: _delivered(webhook, healthy.sid, 3), timeout=3)
        assert loop.time() - started < 2.0
        assert sequences(webhook.for_room(healthy.sid)) == [0, 1, 2]
        # The failing room is still retrying its first callback, in order.
        assert set(sequences(webhook.for_room(down.sid))) == {0}


async def test_dead_letter_and_delivery_log_rpc(
    service: Stack, relay: NatsBroker, webhook: Webhook, redis: Redis, tenant: Tenant
) -> None:
    async def respond(request: Received) -> int:
        return 500 if request.target.startswith("/broken") else 204

    webhook.respond = respond
    broken = room_info(tenant, webhook.url("/broken#ct=1000"))
    fine = room_info(tenant, webhook.url("/fine"))
    await emit(redis, created(broken), created(fine))
    await emit(redis, ended(broken))

    async def dead_letters() -> DeliveryList:
        query = DeliveryQuery(kind="dead-letters", account_sid=tenant.account.sid)
        return await call(relay, CALLBACK_DELIVERIES, query, DeliveryList)

    dead = await eventually(lambda: _records(dead_letters, 2), message="two dead letters")
    assert dead is not None
    # Each dead letter got every try the settings allow (4), in order, then the next went.
    assert sorted((r.sequence_number, r.attempts) for r in dead.records) == [(0, 4), (1, 4)]
    assert all(r.outcome == "dead-letter" and r.last_status == 500 for r in dead.records)
    assert dead.records[0].url == webhook.url("/broken")  # no fragment
    assert sequences(webhook.for_room(broken.sid)) == [0, 0, 0, 0, 1, 1, 1, 1]

    log = await call(relay, CALLBACK_DELIVERIES, DeliveryQuery(room_sid=fine.sid), DeliveryList)
    assert [(r.outcome, r.attempts, r.last_status) for r in log.records] == [("delivered", 1, 204)]
    everything = await call(relay, CALLBACK_DELIVERIES, DeliveryQuery(limit=2), DeliveryList)
    assert len(everything.records) == 2
    other = await call(
        relay, CALLBACK_DELIVERIES, DeliveryQuery(account_sid="AC" + "0" * 32), DeliveryList
    )
    assert other.records == []


async def test_rc_zero_fragment_means_exactly_one_attempt(
    service: Stack, relay: NatsBroker, webhook: Webhook, redis: Redis, tenant: Tenant
) -> None:
    async def fail(_: Received) -> int:
        return 503

    webhook.respond = fail
    room = room_info(tenant, webhook.url("/once#rc=0"))
    await emit(redis, created(room))

    async def dead() -> DeliveryList:
        query = DeliveryQuery(kind="dead-letters", room_sid=room.sid)
        return await call(relay, CALLBACK_DELIVERIES, query, DeliveryList)

    records = await eventually(lambda: _records(dead, 1), message="dead letter")
    assert records is not None
    assert records.records[0].attempts == 1
    assert len(webhook.received) == 1
    assert webhook.received[0].target == "/once"


async def test_webhook_down_then_up_receives_backlog(
    relay: NatsBroker, redis: Redis, tenant: Tenant, stacks: StackFactory
) -> None:
    webhook = Webhook(tenant.auth_token)  # not listening yet: connections are refused
    rooms = [room_info(tenant, webhook.url(f"/later/{i}")) for i in range(3)]
    with recorded("atrium.callback") as logged:
        async with callback_service(stacks, callback_max_attempts=40):
            for room in rooms:
                await emit(redis, created(room))
                await emit(redis, ended(room))

            async def a_few_tries_failed() -> bool:
                tries = {room.sid: 0 for room in rooms}
                for record in logged:
                    sid, attempt = fields(record).get("room_sid"), fields(record).get("attempt")
                    if sid in tries and isinstance(attempt, int):
                        tries[sid] = max(tries[sid], attempt)
                return all(count >= 3 for count in tries.values())

            await eventually(a_few_tries_failed, message="three failed tries in every room")
            await webhook.start()
            try:
                for room in rooms:
                    await eventually(functools.partial(_delivered, webhook, room.sid, 2), timeout=8)
                    assert sequences(webhook.for_room(room.sid)) == [0, 1]
                all_valid(webhook)
            finally:
                await webhook.stop()


async def test_delivery_continues_the_event_trace(
    settings: Settings, webhook: Webhook, redis: Redis, tenant: Tenant, stacks: StackFactory
) -> None:
    exporter = _memory_exporter()
    async with event_relay(settings, redis), callback_service(stacks):
        tracer = trace.get_tracer("test")
        room = room_info(tenant, webhook.url("/traced"))
        with tracer.start_as_current_span("create room") as root:
            await emit(redis, created(room))
        trace_id = root.get_span_context().trace_id
        await eventually(lambda: _count(webhook, 1))

        def spans_of_trace() -> list[Any]:
            return [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]

        async def http_span() -> Any:
            found = [s for s in spans_of_trace() if s.kind == SpanKind.CLIENT and "POST" in s.name]
            return found[0] if found else None

        span = await eventually(http_span, message="HTTP client span in the event's trace")
        by_id = {s.context.span_id: s for s in spans_of_trace()}
        parent = by_id.get(span.parent.span_id)
        assert parent is not None and parent.kind == SpanKind.CONSUMER, parent
        traceparent = webhook.received[0].headers.get("traceparent", "")
        assert format(trace_id, "032x") in traceparent


async def test_bad_event_is_logged_and_does_not_stop_the_consumer(
    service: Stack, relay: NatsBroker, webhook: Webhook, redis: Redis, tenant: Tenant
) -> None:
    await relay.publish(
        b"{not json", "atrium.events.x.y.room-created", stream="ATRIUM_EVENTS", timeout=5.0
    )
    await relay.publish(
        {"event_type": "room-created", "account_sid": 5},
        "atrium.events.x.y.room-created",
        stream="ATRIUM_EVENTS",
        timeout=5.0,
    )
    room = room_info(tenant, webhook.url("/after-bad"))
    await emit(redis, created(room))
    await eventually(lambda: _count(webhook, 1), message="callback after bad input")


async def test_secrets_never_logged(
    service: Stack,
    webhook: Webhook,
    redis: Redis,
    tenant: Tenant,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    room = room_info(tenant, f"http://user:hunter2secret@127.0.0.1:{webhook.port}/s#rc=0")
    await emit(redis, created(room))
    await eventually(lambda: _count(webhook, 1))
    assert webhook.received[0].headers["authorization"].startswith("Basic ")
    all_valid(webhook)

    def delivery_logged() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if fields(r).get("room_sid") == room.sid and "url" in fields(r)
        ]

    # The delivery was logged (so the log was looked at), with the URL stripped of its password.
    (logged, *_) = await eventually(delivery_logged, message="the delivery's log line")
    assert fields(logged)["url"] == f"http://127.0.0.1:{webhook.port}/s"
    text = caplog.text + "".join(str(fields(r)) for r in caplog.records)
    assert tenant.auth_token not in text
    assert "hunter2secret" not in text


async def test_two_replicas_never_deliver_one_room_concurrently(
    relay: NatsBroker, webhook: Webhook, redis: Redis, tenant: Tenant, stacks: StackFactory
) -> None:
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []

    async def one_at_a_time(request: Received) -> int:
        in_flight[request.room_sid] = in_flight.get(request.room_sid, 0) + 1
        if in_flight[request.room_sid] > 1:
            overlaps.append(request.room_sid)
        await asyncio.sleep(0.01)  # a request that takes a while: the window for an overlap
        in_flight[request.room_sid] -= 1
        return 500 if random.random() < 0.2 else 200

    webhook.respond = one_at_a_time
    rooms = [room_info(tenant, webhook.url(f"/pair/{i}")) for i in range(4)]
    async with (
        callback_service(stacks, callback_max_attempts=30),
        callback_service(stacks, callback_max_attempts=30),
    ):
        for _ in range(6):
            for room in rooms:
                await emit(redis, created(room))
        for room in rooms:
            await eventually(functools.partial(_delivered, webhook, room.sid, 6), timeout=10)
    assert not overlaps
    for room in rooms:
        assert _without_retries(webhook.for_room(room.sid)) == list(range(6))
    all_valid(webhook)


# --------------------------------------------------------------------------------------------
# Crash safety: the service as a subprocess, killed with SIGKILL mid-delivery
# --------------------------------------------------------------------------------------------


async def test_kill_9_loses_nothing_and_keeps_order(
    relay: NatsBroker, redis: Redis, tenant: Tenant, stacks: StackFactory
) -> None:
    patient = {**FAST, "callback_max_attempts": 40}

    async def slowish(request: Received) -> int:
        await asyncio.sleep(random.uniform(0.005, 0.03))  # deliveries in flight when killed
        return 500 if random.random() < 0.1 else 200  # some retries in flight too

    webhook = Webhook(tenant.auth_token, respond=slowish)
    await webhook.start()
    try:
        rooms = [room_info(tenant, webhook.url(f"/crash/{i}")) for i in range(6)]
        per_room = 8
        first = stacks.spawn("callback", **patient)
        for _ in range(per_room):
            for room in rooms:
                await emit(redis, created(room))
        kill_after = random.randint(5, len(rooms) * per_room // 2)
        await eventually(lambda: _count(webhook, kill_after), timeout=10)
        first.kill9()
        stacks.spawn("callback", **patient)

        async def all_arrived() -> bool:
            return all(
                set(sequences(webhook.for_room(r.sid))) >= set(range(per_room)) for r in rooms
            )

        await eventually(all_arrived, timeout=15, message="every callback after the restart")
        all_valid(webhook)
        for room in rooms:
            seen = _without_retries(webhook.for_room(room.sid))
            assert seen == list(range(per_room)), (room.sid, sequences(webhook.for_room(room.sid)))
    finally:
        await webhook.stop()


def _without_retries(requests: Sequence[Received]) -> list[int]:
    """Sequence numbers with consecutive repeats (retries, the replayed in-flight one) collapsed."""
    collapsed: list[int] = []
    for seq in sequences(requests):
        if not collapsed or collapsed[-1] != seq:
            collapsed.append(seq)
    return collapsed


# --------------------------------------------------------------------------------------------
# Probes
# --------------------------------------------------------------------------------------------


async def _count(webhook: Webhook, n: int) -> bool:
    return len(webhook.received) >= n


async def _any(webhook: Webhook, prefix: str) -> bool:
    return any(r.target.startswith(prefix) for r in webhook.received)


async def _delivered(webhook: Webhook, room_sid: str, n: int) -> bool:
    """At least ``n`` distinct callbacks of the room were answered with a 2xx."""
    ok = {r.sequence for r in webhook.for_room(room_sid) if r.status and 200 <= r.status < 300}
    return len(ok) >= n


async def _records(fetch: Callable[[], Awaitable[DeliveryList]], n: int) -> DeliveryList | None:
    found = await fetch()
    return found if len(found.records) >= n else None


def _memory_exporter() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter
