"""Wires the callback service: real adapters by default, any port replaced by what the caller
passes.

``bootstrap(settings)`` is the running service (Redis, NATS, HTTP); the unit tier passes in-memory
fakes for every port and a broker it wraps in FastStream's ``TestNatsBroker``, so no Redis, NATS
or webhook is needed. Cosmic Python's ``bootstrap.py`` is the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_callback import handlers
from atrium_callback.adapters.http import HttpCallbackSender
from atrium_callback.adapters.redis import RedisCallbackQueue, RedisDeliveryLog, RedisIntakeStore
from atrium_callback.adapters.telemetry import OpenTelemetryTracing
from atrium_callback.ports import (
    AccountsPort,
    CallbackQueue,
    CallbackSender,
    Clock,
    DeliveryLogReader,
    IntakeStore,
    Tracing,
)
from atrium_callback.usecases import Delivery, DeliveryLog, Dispatcher, Intake
from atrium_shared.accounts import AccountStore
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.service import BackgroundLoop
from atrium_shared.settings import Settings
from atrium_shared.timefmt import SystemClock


@dataclass
class CallbackService:
    intake: Intake
    deliveries: DeliveryLog
    delivery: Delivery
    dispatcher: Dispatcher
    broker: NatsBroker
    # None when every Redis-backed port was replaced (the unit tier).
    redis: Redis | None
    # Started once the broker is up; ``on_drain`` asks them to stop, ``on_stopped`` closes.
    loops: list[BackgroundLoop] = field(default_factory=list)
    on_drain: list[Callable[[], None]] = field(default_factory=list)
    on_stopped: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def bootstrap(
    settings: Settings,
    *,
    broker: NatsBroker | None = None,
    redis: Redis | None = None,
    intake_store: IntakeStore | None = None,
    queue: CallbackQueue | None = None,
    delivery_log: DeliveryLogReader | None = None,
    accounts: AccountsPort | None = None,
    sender: CallbackSender | None = None,
    tracing: Tracing | None = None,
    clock: Clock | None = None,
) -> CallbackService:
    broker = broker if broker is not None else make_broker(settings)
    if redis is None and None in (intake_store, queue, delivery_log, accounts):
        redis = make_redis(settings)
    clock = clock if clock is not None else SystemClock()
    tracing = tracing if tracing is not None else OpenTelemetryTracing()
    on_stopped: list[Callable[[], Awaitable[None]]] = []
    if sender is None:
        http = HttpCallbackSender()
        on_stopped.append(http.close)
        sender = http
    queue = (
        queue if queue is not None else RedisCallbackQueue(redis, settings.callback_log_max_entries)
    )
    delivery = Delivery(
        queue=queue,
        accounts=accounts if accounts is not None else AccountStore(redis),
        sender=sender,
        settings=settings,
        clock=clock,
        tracing=tracing,
    )
    dispatcher = Dispatcher(
        queue,
        delivery,
        clock,
        concurrency=settings.callback_concurrency,
        poll_seconds=settings.timer_poll_seconds,
    )
    intake = Intake(
        intake_store if intake_store is not None else RedisIntakeStore(redis),
        clock,
        tracing,
        on_queued=dispatcher.wake,
    )
    deliveries = DeliveryLog(
        delivery_log
        if delivery_log is not None
        else RedisDeliveryLog(redis, settings.callback_log_max_entries)
    )
    handlers.register(broker, intake, deliveries)
    return CallbackService(
        intake,
        deliveries,
        delivery,
        dispatcher,
        broker,
        redis,
        loops=[dispatcher.run],
        on_drain=[dispatcher.stop],
        on_stopped=on_stopped,
    )
