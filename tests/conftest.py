"""Fixtures: real NATS (JetStream) and Redis processes on free ports, fresh for each test, and
Atrium on them (tests/support/stack.py says how)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_shared.infra import make_broker
from atrium_shared.settings import Settings
from tests.support.stack import (
    CONTROL_PLANE,
    Servers,
    Stack,
    StackFactory,
    base_settings,
    start_servers,
)
from tests.support.tenants import Tenant, make_tenant
from tests.support.webhook import Webhook


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "stack(services=CONTROL_PLANE, *, gateway=True, **settings): what the `stack` fixture "
        "starts (tests/support/stack.py)",
    )


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    with start_servers(tmp_path) as running:
        yield running


@pytest.fixture
def settings(servers: Servers, tmp_path: Path) -> Settings:
    # Recordings go to this test's own folder.
    return base_settings(servers).model_copy(update={"recordings_dir": str(tmp_path / "media")})


@pytest.fixture
async def stacks(settings: Settings, tmp_path: Path) -> AsyncIterator[StackFactory]:
    """Start Atrium on this test's NATS and Redis: ``await stacks.start(REALTIME)``,
    ``async with stacks.running(...)``, ``stacks.spawn("room")``; all stopped at teardown."""
    factory = StackFactory(settings, tmp_path)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def stack(request: pytest.FixtureRequest, stacks: StackFactory) -> Stack:
    """The gateway and services of the test's ``stack`` marker (default: the control plane)."""
    marker = request.node.get_closest_marker("stack")
    args: tuple[Any, ...] = marker.args if marker is not None else ()
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    services = args[0] if args else options.pop("services", CONTROL_PLANE)
    return await stacks.start(services, **options)


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
