"""OpenTelemetry: the trace context of an event's consumption, stored with its callback and made
current again when the callback is sent (the HTTP span and the log lines join the event's trace)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from opentelemetry import context, propagate


class OpenTelemetryTracing:
    def current(self) -> dict[str, str]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    @contextlib.contextmanager
    def continued(self, carrier: Mapping[str, str]) -> Iterator[None]:
        token = context.attach(propagate.extract(carrier))
        try:
            yield
        finally:
            context.detach(token)
