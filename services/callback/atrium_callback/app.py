"""Wires the callback service: settings, telemetry, broker, Redis, intake, dispatcher."""

from __future__ import annotations

import asyncio
import logging

from faststream.nats import NatsBroker

from atrium_callback import handlers
from atrium_callback.adapters.http_sender import HttpSender
from atrium_callback.adapters.redis_store import CallbackStore
from atrium_callback.usecases import DeliveryLog, Dispatcher, Intake
from atrium_shared import telemetry
from atrium_shared.accounts import AccountStore
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.service import ServiceParts, ServiceRuntime
from atrium_shared.settings import Settings, get_settings


def build(settings: Settings) -> ServiceRuntime:
    telemetry.setup("callback", settings)
    # httpx logs every request URL at INFO; GET callbacks carry their parameters in it, and the
    # client span already records each request.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    broker = make_broker(settings)
    redis = make_redis(settings)
    store = CallbackStore(redis, settings.callback_log_max_entries)
    wake = asyncio.Event()  # intake -> dispatcher: "a room has something new"
    sender = HttpSender()
    dispatcher = Dispatcher(store, AccountStore(redis), sender, settings, wake)
    handlers.register(broker, Intake(store, wake), DeliveryLog(store))
    return ServiceRuntime(
        ServiceParts(
            name="callback",
            settings=settings,
            broker=broker,
            redis=redis,
            loops=[dispatcher.run],
            on_drain=[dispatcher.stop],
            on_stopped=[sender.close],
        )
    )


def build_broker() -> NatsBroker:
    """The broker with every subscriber registered, for the AsyncAPI document."""
    return build(Settings()).parts.broker


def main() -> None:
    build(get_settings()).run()


if __name__ == "__main__":
    main()
