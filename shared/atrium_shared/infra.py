"""Connections every service opens the same way: the NATS broker and the Redis client."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from redis.asyncio import Redis

from atrium_shared.settings import Settings


def make_broker(settings: Settings) -> NatsBroker:
    """A FastStream NATS broker whose publishes and consumes are spans (context in headers)."""
    return NatsBroker(
        settings.nats_url,
        middlewares=[NatsTelemetryMiddleware()],
        graceful_timeout=10.0,
        # Per-message Received/Processed lines only at DEBUG: spans already record each one.
        log_level=logging.DEBUG,
        # Through our handlers (JSON with trace ids), not FastStream's own console format.
        logger=logging.getLogger("atrium.broker"),
        # Keep retrying while NATS restarts instead of giving up after a few attempts.
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
    )


def make_redis(settings: Settings) -> Redis:
    return Redis.from_url(settings.redis_url, decode_responses=True, health_check_interval=10)
