"""The recording service process: settings, telemetry, and the service that bootstrap() wires."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_recording.bootstrap import bootstrap
from atrium_shared import telemetry
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.service import ServiceParts, ServiceRuntime
from atrium_shared.settings import Settings, get_settings


def build(settings: Settings) -> ServiceRuntime:
    telemetry.setup("recording", settings)
    broker = make_broker(settings)
    redis = make_redis(settings)
    service = bootstrap(settings, broker=broker, redis=redis)
    return ServiceRuntime(
        ServiceParts(
            name="recording",
            settings=settings,
            broker=broker,
            redis=redis,
            loops=service.loops,
            on_drain=service.on_drain,
        )
    )


def build_broker() -> NatsBroker:
    """The broker with every subscriber registered, for the AsyncAPI document."""
    return build(Settings()).parts.broker


def main() -> None:
    build(get_settings()).run()


if __name__ == "__main__":
    main()
