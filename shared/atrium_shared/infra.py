"""Connections every service opens the same way: the NATS broker and the Redis client."""

from __future__ import annotations

import logging

from faststream.nats import NatsBroker
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from nats import errors as nats_errors
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.settings import Settings

# A Redis command waits at most this long for a server that accepted the connection but does not
# answer (stopped, partitioned), so a request fails with 20503 rather than hanging. Above the
# longest blocking read the services issue (the outbox relay's 500 ms XREAD).
REDIS_SOCKET_TIMEOUT_SECONDS = 10.0
REDIS_CONNECT_TIMEOUT_SECONDS = 5.0

# What NATS and Redis raise when they cannot be reached right now (down, restarting, still
# loading their data, a partition). Nothing about the request was wrong: the caller gets 20503
# and may retry, and no traceback is logged for it.
UNREACHABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,  # BusyLoadingError too: valkey replaying its append-only file
    redis_errors.TimeoutError,
    nats_errors.ConnectionClosedError,
    nats_errors.ConnectionReconnectingError,
    nats_errors.ConnectionDrainingError,
    nats_errors.OutboundBufferLimitError,
    nats_errors.NoServersError,
    nats_errors.StaleConnectionError,
    nats_errors.FlushTimeoutError,
)


def unavailable(exc: Exception) -> AtriumError:
    """Twilio's 20503 for an :data:`UNREACHABLE` failure (its kind named, no addresses)."""
    backend = "Redis" if isinstance(exc, redis_errors.RedisError) else "NATS"
    return AtriumError(errors.SERVICE_UNAVAILABLE, f"Service unavailable ({backend})", 503)


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
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        health_check_interval=10,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
    )


def is_connected(broker: NatsBroker) -> bool:
    """Whether ``broker`` is started and its connection to NATS is up right now (not
    reconnecting)."""
    if not broker.config.connection_state:
        return False
    return bool(broker.connection.is_connected)
