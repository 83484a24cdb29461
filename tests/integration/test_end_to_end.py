"""Rooms end to end through every component: twilio-python -> gateway -> NATS -> room service ->
Redis outbox -> JetStream -> callback service -> the application's webhook; one trace throughout.
"""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from atrium_shared import telemetry
from atrium_shared.settings import Settings
from tests.support.durations import rest_durations
from tests.support.stack import WITH_CALLBACKS, Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually
from tests.support.webhook import Webhook

pytestmark = pytest.mark.stack(WITH_CALLBACKS)


@pytest.fixture
def spans(settings: Settings) -> InMemorySpanExporter:
    """Collect every span of this process (services run in-process here)."""
    telemetry.setup("tests", settings)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_status_callbacks_for_a_room_life(
    stack: Stack, tenant: Tenant, webhook: Webhook
) -> None:
    client = stack.rest_as(tenant.api_key.sid, tenant.key_secret, tenant.account.sid)
    room = await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(
            unique_name="webhooked", status_callback=webhook.url("/hooks/video?tenant=a")
        )
    )
    await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).update(status="completed"))

    async def both() -> bool:
        return len(webhook.for_room(room.sid)) >= 2

    await eventually(both, timeout=15, message="room-created and room-ended callbacks")
    created, ended = webhook.for_room(room.sid)
    assert all(r.valid_signature for r in (created, ended))
    assert created.method == "POST" and created.target == "/hooks/video?tenant=a"
    assert created.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert created.params == {
        "AccountSid": tenant.account.sid,
        "RoomName": "webhooked",
        "RoomSid": room.sid,
        "RoomStatus": "in-progress",
        "RoomType": "group",
        "StatusCallbackEvent": "room-created",
        "Timestamp": created.params["Timestamp"],
        "SequenceNumber": "0",
    }
    assert created.params["Timestamp"].endswith("Z") and "." in created.params["Timestamp"]
    assert ended.params["StatusCallbackEvent"] == "room-ended"
    assert ended.params["RoomStatus"] == "completed"
    assert ended.params["SequenceNumber"] == "1"
    # The duration REST reports for the finished room, which its start and end times bear out.
    finished = await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).fetch())
    assert ended.params["RoomDuration"] == str(finished.duration)
    assert finished.duration in rest_durations(finished.date_created, finished.end_time)


async def test_get_callbacks_carry_params_in_the_query(
    stack: Stack, tenant: Tenant, webhook: Webhook
) -> None:
    client = stack.rest(tenant)
    room = await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(
            status_callback=webhook.url("/get-hook"), status_callback_method="GET"
        )
    )

    async def arrived() -> bool:
        return len(webhook.for_room(room.sid)) >= 1

    await eventually(arrived, timeout=15, message="room-created callback")
    (request,) = webhook.for_room(room.sid)
    assert request.method == "GET" and request.valid_signature
    assert request.params["StatusCallbackEvent"] == "room-created"
    assert request.target.startswith("/get-hook?")


def _by_trace(spans: list[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


async def test_one_trace_from_rest_request_to_status_callback(
    spans: InMemorySpanExporter, tenant: Tenant, webhook: Webhook, stacks: StackFactory
) -> None:
    # Started after ``spans``: the services' spans reach its exporter.
    async with stacks.running(WITH_CALLBACKS) as stack:
        client = stack.rest(tenant)
        room = await asyncio.to_thread(
            lambda: client.video.v1.rooms.create(status_callback=webhook.url("/traced"))
        )

        async def delivered() -> bool:
            return len(webhook.for_room(room.sid)) >= 1

        await eventually(delivered, timeout=15, message="room-created callback")
        (request,) = webhook.for_room(room.sid)

        # The webhook saw the trace context of the REST request that created the room.
        traceparent = request.headers.get("traceparent", "")
        assert traceparent, request.headers
        trace_id = int(traceparent.split("-")[1], 16)

        async def complete_trace() -> list[ReadableSpan]:
            mine = _by_trace(list(spans.get_finished_spans()), trace_id)
            kinds = {s.kind for s in mine}
            wanted = {SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT}
            return mine if wanted <= kinds and len(mine) >= 6 else []

        mine = await eventually(complete_trace, timeout=10, message="the whole trace")
    names = [s.name for s in mine]
    # The gateway's HTTP server span is the root of it all.
    roots = [s for s in mine if s.parent is None]
    assert len(roots) == 1 and roots[0].kind == SpanKind.SERVER, names
    assert "POST /v1/Rooms" in roots[0].name
    # The NATS request to the room service, published and processed.
    assert any("atrium.rpc.room.create" in n and "publish" in n for n in names), names
    assert any("atrium.rpc.room.create" in n and "process" in n for n in names), names
    # The room service's Redis writes (the outbox transaction).
    assert any(s.attributes and s.attributes.get("db.system") == "redis" for s in mine), names
    # The event's relay to JetStream and its consumption by the callback service.
    assert "outbox relay" in names
    assert any("atrium.events" in n and "publish" in n for n in names), names
    assert any("atrium.events" in n and "process" in n for n in names), names
    # The status callback's HTTP request.
    http_clients = [s for s in mine if s.kind == SpanKind.CLIENT and "POST" in s.name]
    assert http_clients, names
