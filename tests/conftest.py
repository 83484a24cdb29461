"""Fixtures: real NATS (JetStream) and Redis processes on free ports, fresh for each test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_cli.embedded import EmbeddedServer, start_nats, start_redis
from atrium_shared.accounts import Account, AccountStore, ApiKey
from atrium_shared.infra import make_broker
from atrium_shared.settings import Settings
from tests.support.processes import ServiceProcess
from tests.support.webhook import Webhook


@dataclass
class Servers:
    nats: EmbeddedServer
    redis: EmbeddedServer


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    nats = start_nats(tmp_path / "nats")
    try:
        redis = start_redis(tmp_path / "redis")
    except Exception:
        nats.stop()
        raise
    try:
        yield Servers(nats, redis)
    finally:
        nats.stop()
        redis.stop()


@pytest.fixture
def settings(servers: Servers) -> Settings:
    return Settings(
        nats_url=servers.nats.url,
        redis_url=servers.redis.url,
        minute_seconds=1.0,
        callback_backoff_initial_seconds=0.1,
        callback_backoff_max_seconds=1.0,
        timer_poll_seconds=0.05,
        log_format="text",
    )


@pytest.fixture
def service_env(settings: Settings) -> dict[str, str]:
    """Environment for service subprocesses matching ``settings``."""
    env = dict(os.environ)
    env.update(
        {
            "NATS_URL": settings.nats_url,
            "REDIS_URL": settings.redis_url,
            "ATRIUM_MINUTE_SECONDS": str(settings.minute_seconds),
            "ATRIUM_CALLBACK_BACKOFF_INITIAL_SECONDS": str(
                settings.callback_backoff_initial_seconds
            ),
            "ATRIUM_CALLBACK_BACKOFF_MAX_SECONDS": str(settings.callback_backoff_max_seconds),
            "ATRIUM_TIMER_POLL_SECONDS": str(settings.timer_poll_seconds),
            "ATRIUM_LOG_FORMAT": "text",
        }
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    return env


@pytest.fixture
def spawn(service_env: dict[str, str], tmp_path: Path) -> Iterator[list[ServiceProcess]]:
    """Start services as subprocesses: ``spawn.start(name)``; all are stopped at teardown."""
    started: list[ServiceProcess] = []
    yield started
    for proc in started:
        proc.stop()


def start_service(
    started: list[ServiceProcess], name: str, env: dict[str, str], log_dir: Path, **extra: str
) -> ServiceProcess:
    proc = ServiceProcess(name, {**env, **extra}, log_dir)
    started.append(proc)
    return proc.start()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[NatsBroker]:
    """A started NATS broker, to call services' RPCs the way other services do."""
    client = make_broker(settings)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@dataclass
class Tenant:
    account: Account
    api_key: ApiKey

    @property
    def auth_token(self) -> str:
        return self.account.auth_token.get_secret_value()

    @property
    def key_secret(self) -> str:
        return self.api_key.secret.get_secret_value()


async def make_tenant(redis: Redis, name: str = "test") -> Tenant:
    store = AccountStore(redis)
    account = await store.create_account(name)
    key = await store.create_api_key(account.sid, f"{name} key")
    return Tenant(account, key)


@pytest.fixture
async def tenant(redis: Redis) -> Tenant:
    return await make_tenant(redis, "tenant-a")


@pytest.fixture
async def webhook(tenant: Tenant) -> AsyncIterator[Webhook]:
    """An application webhook on 127.0.0.1 that checks every X-Twilio-Signature."""
    hook = Webhook(tenant.auth_token)
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()
