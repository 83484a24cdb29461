"""The one telemetry bootstrap: tracing, structured logs with trace ids.

Each process calls :func:`setup` once with its service name. Spans go over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. Tests install their own provider (an in-memory exporter)
before starting services; :func:`setup` then leaves it in place.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from atrium_shared.settings import Settings

_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        trace_part = f" trace={span.trace_id:032x}" if span.is_valid else ""
        fields = "".join(f" {k}={v}" for k, v in getattr(record, "fields", {}).items())
        message = record.getMessage()
        line = f"{record.levelname.lower():5} {record.name}: {message}{fields}{trace_part}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(service: str, settings: Settings) -> None:
    """Configure tracing and logging for ``atrium-<service>``; safe to call more than once."""
    global _configured
    if _configured:
        return
    _configured = True

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": f"atrium-{service}"}))
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(service) if settings.log_format == "json" else TextFormatter()
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # Access logs repeat what the spans already say, and would print credentials-free URLs only.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
