"""Where the CLI's commands find NATS and Redis, and what they say when nothing answers there."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from faststream.nats import NatsBroker
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from atrium_cli.state import find_run_env, read_env_file
from atrium_shared.settings import Settings

ServerKind = Literal["NATS", "Redis"]
CONNECT_TIMEOUT_SECONDS = 5


class CliError(Exception):
    """A failure to report to the user in one line, with a non-zero exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Endpoint:
    kind: ServerKind
    url: str
    source: str  # where the URL came from, to make "cannot reach" errors actionable

    def unreachable(self, reason: object) -> CliError:
        return CliError(
            f"cannot reach {self.kind} at {self.url} (from {self.source}): {reason}. "
            "Is `make run` (atrium run) running?"
        )


def resolve_endpoint(kind: ServerKind, explicit: str | None, cwd: Path | None = None) -> Endpoint:
    """A flag wins, then the environment, then the running stack's run.env, then the default."""
    if explicit:
        return Endpoint(kind, explicit, "command line")
    variable = "NATS_URL" if kind == "NATS" else "REDIS_URL"
    for name in (variable, f"ATRIUM_{variable}"):
        if os.environ.get(name):
            return Endpoint(kind, os.environ[name], f"${name}")
    run_env = find_run_env(cwd or Path.cwd())
    if run_env is not None:
        value = read_env_file(run_env).get(variable)
        if value:
            return Endpoint(kind, value, str(run_env))
    default = Settings.model_fields["nats_url" if kind == "NATS" else "redis_url"].default
    return Endpoint(kind, str(default), "default, no .atrium/run.env found")


@contextlib.asynccontextmanager
async def connected_redis(endpoint: Endpoint) -> AsyncIterator[Redis]:
    client = Redis.from_url(
        endpoint.url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    try:
        try:
            await client.ping()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise endpoint.unreachable(exc) from None
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def connected_broker(endpoint: Endpoint) -> AsyncIterator[NatsBroker]:
    # A one-shot command should fail fast, not retry forever like a service does.
    broker = NatsBroker(
        endpoint.url,
        max_reconnect_attempts=1,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        allow_reconnect=False,
    )
    try:
        try:
            await asyncio.wait_for(broker.connect(), CONNECT_TIMEOUT_SECONDS * 2)
        except Exception as exc:  # nats raises several unrelated types for "no server"
            raise endpoint.unreachable(f"{type(exc).__name__}: {exc}") from None
        yield broker
    finally:
        with contextlib.suppress(Exception):
            await broker.stop()
