"""A twilio-video.js join is one trace across the gateway, the services and the media worker."""

from __future__ import annotations

import asyncio
import json

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from atrium_shared import telemetry
from atrium_shared.settings import Settings
from tests.browser.harness import Browser, StaticServer
from tests.support.stack import REALTIME, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually
from tests.support.webhook import Received, Webhook


async def test_a_join_is_one_trace(
    settings: Settings,
    stacks: StackFactory,
    tenant: Tenant,
    browser: Browser,
    web_server: StaticServer,
    webhook: Webhook,
) -> None:
    telemetry.setup("tests", settings)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    # Started after the exporter: the services' spans reach it.
    async with stacks.running(REALTIME) as stack:
        rooms = stack.rest(tenant)
        await asyncio.to_thread(
            lambda: rooms.video.v1.rooms.create(
                unique_name="traced", status_callback=webhook.url("/hooks")
            )
        )
        token = tenant.token("tracy")
        page = await browser.new_page(web_server.url())
        options = {"wsServer": stack.signaling_url, "name": "traced", "audio": True, "video": True}
        result = await page.eval(
            f"atrium.settle(atrium.connect({json.dumps(token)}, {json.dumps(options)}))"
        )
        assert result["ok"], result

        def find(name: str) -> list[ReadableSpan]:
            return [s for s in exporter.get_finished_spans() if s.name == name]

        async def join_finished() -> list[ReadableSpan]:
            return find("rsp connect")

        (rsp,) = await eventually(join_finished, timeout=10, message="the worker's join span")
        assert rsp.context is not None
        trace_id = rsp.context.trace_id

        async def whole_trace() -> list[str]:
            names = [
                s.name
                for s in exporter.get_finished_spans()
                if s.context is not None and s.context.trace_id == trace_id
            ]
            wanted = ("signaling connect", "worker connect", "rsp connect")
            rpcs = (
                "atrium.rpc.room.join",
                "atrium.rpc.participant.admit",
                "atrium.rpc.track.publish",
            )
            complete = all(w in names for w in wanted) and all(
                any(r in n and "process" in n for n in names) for r in rpcs
            )
            return names if complete else []

        names = await eventually(whole_trace, timeout=10, message="every hop of the join")
        # The client's frames crossed NATS to the worker in the same trace.
        assert any("atrium.media." in n and "process" in n for n in names), names
        # Participant and track events were committed (Redis) within it too.
        assert any(
            s.attributes and s.attributes.get("db.system") == "redis"
            for s in exporter.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id
        )
        # The gateway's signaling span (token check, room join) is in the same trace.
        (root,) = find("signaling connect")
        assert root.context is not None and root.context.trace_id == trace_id

        # ...and so are the status callbacks the join caused.
        async def joined_callback() -> list[Received]:
            return [
                r
                for r in webhook.received
                if r.params.get("StatusCallbackEvent") == "participant-connected"
            ]

        (callback,) = await eventually(joined_callback, timeout=10, message="the callback")
        assert callback.valid_signature
        assert int(callback.headers["traceparent"].split("-")[1], 16) == trace_id
