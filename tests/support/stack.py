"""Atrium on a test's own NATS and Redis: the one way tests start it.

Every test gets fresh ``nats-server`` and ``valkey-server`` processes on free ports
(:func:`start_servers`) and :func:`base_settings` for them (timers shrunk: a "minute" is a second).
On those, a :class:`StackFactory` (the ``stacks`` fixture of tests/conftest.py) starts:

* ``await stacks.start(REALTIME, dev_mode=True)``: the gateway (uvicorn, on a free port) and the
  named services in the test's own event loop, with settings overrides; stopped at teardown.
  In-process services share the test's tracer provider, so a test can see a whole trace.
* ``async with stacks.running(CONTROL_PLANE) as stack``: the same, stopped when the block ends
  (a test that restarts a service, or that must see what the services did by the time they
  stopped).
* ``stacks.spawn("callback", callback_max_attempts=40)``: a service as a subprocess, with the same
  settings as environment variables, to kill -9 it; ``stacks.spawn("gateway")`` is a gateway
  replica with its own HTTP port.

The ``stack`` fixture is ``stacks.start(...)`` with the arguments of the test's (or module's)
``stack`` marker: ``pytestmark = pytest.mark.stack(REALTIME)``, or
``@pytest.mark.stack(CONTROL_PLANE, public_url="https://video.example.com")`` on one test. Without
a marker it is the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from twilio.rest import Client

from atrium_cli.embedded import EmbeddedServer, free_port, start_nats, start_redis
from atrium_shared.service import ServiceRuntime
from atrium_shared.settings import Settings
from tests.support.processes import ServiceProcess
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

# The services REST Rooms needs (no callbacks). The participant service needs the track service
# (it unpublishes a participant's tracks before disconnecting it).
CONTROL_PLANE = ("room", "participant", "track")
# The control plane and status callbacks.
WITH_CALLBACKS = (*CONTROL_PLANE, "callback")
# Every service of a real-time room, media worker included.
REALTIME = ("room", "participant", "track", "callback", "media")
# Real-time rooms that are recorded.
RECORDED = (*REALTIME, "recording")


# NATS and Redis ---------------------------------------------------------------------------------
@dataclass
class Servers:
    nats: EmbeddedServer
    redis: EmbeddedServer


@contextlib.contextmanager
def start_servers(directory: Path) -> Iterator[Servers]:
    """A NATS (JetStream) and a Redis server on free ports, data under ``directory``."""
    nats = start_nats(directory / "nats")
    try:
        redis = start_redis(directory / "redis")
    except Exception:
        nats.stop()
        raise
    try:
        yield Servers(nats, redis)
    finally:
        nats.stop()
        redis.stop()


@contextlib.contextmanager
def server_down(server: EmbeddedServer) -> Iterator[None]:
    """``server`` stopped for the block (SIGTERM: its data is flushed), then started again on the
    same port with the same data, whatever the block raised: an outage of NATS or Redis."""
    server.stop()
    try:
        yield
    finally:
        server.restart()


def base_settings(servers: Servers) -> Settings:
    """Settings for ``servers``, with the timers of the room lifecycle and callbacks shrunk."""
    return Settings(
        nats_url=servers.nats.url,
        redis_url=servers.redis.url,
        minute_seconds=1.0,
        callback_backoff_initial_seconds=0.1,
        callback_backoff_max_seconds=1.0,
        timer_poll_seconds=0.05,
        log_format="text",
    )


# The same settings for a subprocess -------------------------------------------------------------
_ENVIRONMENT_NAMES = {"nats_url": "NATS_URL", "redis_url": "REDIS_URL"}


def subprocess_env(settings: Settings) -> dict[str, str]:
    """This process's environment with every setting ``settings`` sets explicitly, as the
    variables ``Settings`` reads (``ATRIUM_<NAME>``, ``NATS_URL``, ``REDIS_URL``)."""
    env = dict(os.environ)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    for name in sorted(settings.model_fields_set):
        variable = _ENVIRONMENT_NAMES.get(name, f"ATRIUM_{name.upper()}")
        value = getattr(settings, name)
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = _as_variable(value)
    return env


def _as_variable(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


# A running stack --------------------------------------------------------------------------------
@dataclass
class Stack:
    settings: Settings
    base_url: str  # the gateway's REST base ("" when the stack runs no gateway)
    runtimes: list[ServiceRuntime] = field(default_factory=list)
    gateway: FastAPI | None = None

    @property
    def signaling_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/signaling"

    def rest(self, tenant: Tenant) -> Client:
        """twilio-python for ``tenant`` (Account SID and Auth Token), pointed at this gateway."""
        return self.rest_as(tenant.account.sid, tenant.auth_token)

    def rest_as(self, username: str, password: str, account_sid: str | None = None) -> Client:
        """twilio-python with any credentials: ``client.video.base_url`` is the one change."""
        client = Client(username, password, account_sid)
        client.video.base_url = self.base_url
        return client


def _build(name: str, settings: Settings) -> ServiceRuntime:
    if name == "room":
        from atrium_room.app import build as build_room

        return build_room(settings)
    if name == "participant":
        from atrium_participant.app import build as build_participant

        return build_participant(settings)
    if name == "track":
        from atrium_track.app import build as build_track

        return build_track(settings)
    if name == "media":
        from atrium_media.app import build as build_media

        return build_media(settings)
    if name == "callback":
        from atrium_callback.app import build as build_callback

        return build_callback(settings)
    if name == "recording":
        from atrium_recording.app import build as build_recording

        return build_recording(settings)
    raise ValueError(name)


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings, services: Sequence[str] = CONTROL_PLANE, *, gateway: bool = True
) -> AsyncIterator[Stack]:
    """``services`` (and the gateway, unless ``gateway=False``) in this event loop.

    The gateway listens on 127.0.0.1, or on the ``http_host`` the settings set explicitly (an
    address a client in another network namespace reaches), on a free port."""
    port = free_port()
    host = settings.http_host if "http_host" in settings.model_fields_set else "127.0.0.1"
    settings = settings.model_copy(update={"http_port": port, "http_host": host})
    built = [_build(name, settings) for name in services]
    runtimes: list[ServiceRuntime] = []
    try:
        for runtime in built:
            await runtime.start()
            runtimes.append(runtime)
        if not gateway:
            yield Stack(settings, "", runtimes)
            return
        async with _serving_gateway(settings) as app:
            yield Stack(settings, f"http://{host}:{port}", runtimes, app)
    finally:
        for runtime in reversed(runtimes):
            await runtime.stop()


@contextlib.asynccontextmanager
async def _serving_gateway(settings: Settings) -> AsyncIterator[FastAPI]:
    from atrium_gateway.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    serve = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient() as client:

            async def ready() -> bool:
                if serve.done():
                    serve.result()  # the error it stopped with
                    raise RuntimeError("the gateway stopped while starting")
                try:
                    url = f"http://{settings.http_host}:{settings.http_port}/readyz"
                    return (await client.get(url)).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=10, interval=0.025, message="the gateway's /readyz")
        yield app
    finally:
        server.should_exit = True
        await asyncio.wait_for(serve, 15)


class StackFactory:
    """Starts stacks and service subprocesses on one NATS and Redis; ``aclose`` stops them all."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self._running = AsyncExitStack()
        self._processes: list[ServiceProcess] = []

    def running(
        self, services: Sequence[str] = CONTROL_PLANE, *, gateway: bool = True, **overrides: Any
    ) -> AbstractAsyncContextManager[Stack]:
        """A stack that stops when the ``async with`` block ends."""
        return running_stack(self.settings.model_copy(update=overrides), services, gateway=gateway)

    async def start(
        self, services: Sequence[str] = CONTROL_PLANE, *, gateway: bool = True, **overrides: Any
    ) -> Stack:
        """A stack that stops at the end of the test."""
        return await self._running.enter_async_context(
            self.running(services, gateway=gateway, **overrides)
        )

    def env(self, **overrides: Any) -> dict[str, str]:
        """The environment of a service subprocess: these settings, with ``overrides``."""
        return subprocess_env(self.settings.model_copy(update=overrides))

    def spawn(self, name: str, **overrides: Any) -> ServiceProcess:
        """Start service ``name`` (or a gateway replica) as a subprocess; it is ready on return."""
        process = ServiceProcess(name, self.env(**overrides), self.log_dir)
        self._processes.append(process)
        return process.start()

    async def aclose(self) -> None:
        try:
            for process in reversed(self._processes):
                process.stop()
        finally:
            await self._running.aclose()
