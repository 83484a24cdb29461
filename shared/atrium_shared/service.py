"""How every Atrium service process is put together and run.

A service hands over its broker (subscribers already registered), its Redis client and its
background loops; this module wraps them into a FastStream application with a health server,
telemetry, and a graceful shutdown: SIGTERM stops taking work, drains, then exits 0.

Draining starts on SIGTERM or on ``POST /drain`` at the health port (Kubernetes' preStop hook,
``python -m atrium_shared.probe drain``): readiness turns false at once, then the service's own
``drain`` step (a media worker: take no new rooms, wait until its rooms are empty) runs with the
broker still serving, bounded by ``ATRIUM_DRAIN_TIMEOUT_SECONDS`` (default 0: no wait) counted from
the moment draining started. Only then do loops stop and connections close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from faststream import FastStream
from faststream.nats import NatsBroker
from nats.errors import Error as NatsError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from atrium_shared import metrics, telemetry
from atrium_shared.health import HealthServer
from atrium_shared.infra import UNREACHABLE, is_connected, make_broker, make_redis
from atrium_shared.settings import Settings

log = logging.getLogger("atrium.service")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


BackgroundLoop = Callable[[], Awaitable[None]]


@dataclass
class ServiceParts:
    name: str
    settings: Settings
    broker: NatsBroker
    redis: Redis
    # Long-running loops (timers, relays, dispatchers), started after the broker is up.
    loops: Sequence[BackgroundLoop] = ()
    # Called first on shutdown, to ask the loops to finish their current work.
    on_drain: Sequence[Callable[[], None]] = ()
    on_stopped: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Awaited when draining starts, while the broker still serves: returns once the in-flight
    # work is finished (media worker: no session left). Cut off at the drain timeout.
    drain: Callable[[], Awaitable[None]] | None = None


class ServiceRuntime:
    def __init__(self, parts: ServiceParts) -> None:
        self.parts = parts
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []
        self._drain_task: asyncio.Task[None] | None = None
        port = parts.settings.health_port
        self.health = HealthServer("0.0.0.0", port, self.ready, self.drain_status) if port else None
        self.app = FastStream(
            parts.broker,
            on_startup=[self._on_startup],
            after_startup=[self._after_startup],
            on_shutdown=[self._on_shutdown],
            after_shutdown=[self._after_shutdown],
            logger=logging.getLogger(f"atrium.{parts.name}"),
        )

    async def ready(self) -> bool:
        if self.draining:
            return False
        await self.parts.redis.ping()
        return is_connected(self.parts.broker)

    def begin_drain(self) -> asyncio.Task[None]:
        """Start draining (idempotent): readiness false now, the service's drain step after."""
        if self._drain_task is None:
            self.draining = True
            metrics.service_draining.labels(self.parts.name).set(1)
            self._drain_task = asyncio.create_task(self._drain())
        return self._drain_task

    async def drain_status(self) -> bool:
        """For ``POST /drain``: start draining if needed; True once the drain step finished."""
        return self.begin_drain().done()

    async def _drain(self) -> None:
        timeout = self.parts.settings.drain_timeout_seconds
        if self.parts.drain is None or timeout <= 0:
            return
        log.info("%s service draining (at most %.0f s)", self.parts.name, timeout)
        try:
            await asyncio.wait_for(self.parts.drain(), timeout)
            log.info("%s service drained", self.parts.name)
        except TimeoutError:
            log.warning("%s service drain timed out after %.0f s", self.parts.name, timeout)
        except Exception:
            log.exception("%s service drain failed", self.parts.name)

    async def _on_startup(self) -> None:
        metrics.service_draining.labels(self.parts.name).set(0)
        await self.parts.redis.ping()
        if self.health is not None:
            await self.health.start()

    async def _after_startup(self) -> None:
        for loop in self.parts.loops:
            self._tasks.append(asyncio.create_task(self._supervise(loop)))
        log.info("%s service started", self.parts.name)

    async def _supervise(self, loop: BackgroundLoop) -> None:
        while not self.draining:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                # Redis or NATS restarting: expected, and the traceback would say nothing new.
                log.warning("background loop %s: %s; restarting", loop, exc)
            except Exception:
                log.exception("background loop %s crashed; restarting", loop)
            await asyncio.sleep(0.5)

    async def _on_shutdown(self) -> None:
        await self.begin_drain()
        for drain in self.parts.on_drain:
            drain()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _after_shutdown(self) -> None:
        for hook in self.parts.on_stopped:
            await hook()
        if self.health is not None:
            await self.health.stop()
        with contextlib.suppress(KeyError):  # two runtimes of one name in a test process
            metrics.service_draining.remove(self.parts.name)
        await self.parts.redis.aclose()
        log.info("%s service stopped", self.parts.name)

    async def start(self) -> None:
        """Start in the current event loop (tests run several services in one process)."""
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()

    def run(self) -> None:
        """Run until SIGINT/SIGTERM; FastStream installs the signal handlers.

        A NATS or Redis that cannot be reached at start is a one-line error and exit code 1,
        not a traceback: the supervisor (or Kubernetes) restarts the process.
        """
        try:
            asyncio.run(self.app.run())
        except (RedisError, OSError, NatsError) as exc:
            settings = self.parts.settings
            log.error(
                "%s service cannot start: %s (NATS %s, Redis %s)",
                self.parts.name,
                exc,
                settings.nats_url,
                _without_password(settings.redis_url),
            )
            raise SystemExit(1) from None


class Poller:
    """Calls ``work`` every ``interval`` seconds until stopped (timers, sweeps)."""

    def __init__(self, work: Callable[[], Awaitable[object]], interval: float) -> None:
        self._work = work
        self._interval = interval
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        while not self._stopping.is_set():
            await self._work()
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()


class WiredService(Protocol):
    """What a service's ``bootstrap()`` returns, as far as its process needs it."""

    loops: list[BackgroundLoop]
    on_drain: list[Callable[[], None]]


def service_runtime(
    name: str,
    settings: Settings,
    wire: Callable[[Settings, NatsBroker, Redis], WiredService],
) -> ServiceRuntime:
    """The process of a control-plane service: telemetry for ``atrium-<name>``, the broker and
    Redis client from ``settings``, the service ``wire`` builds on them (its ``bootstrap``),
    its loops and drain hooks under one runtime."""
    telemetry.setup(name, settings)
    broker = make_broker(settings)
    redis = make_redis(settings)
    service = wire(settings, broker, redis)
    return ServiceRuntime(
        ServiceParts(
            name=name,
            settings=settings,
            broker=broker,
            redis=redis,
            loops=service.loops,
            on_drain=service.on_drain,
            # Hooks after the broker stopped (the callback service flushes its dispatcher).
            on_stopped=list(getattr(service, "on_stopped", ())),
        )
    )
