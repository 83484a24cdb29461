"""The track service process: settings, telemetry, and the service that bootstrap() wires."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared.service import ServiceRuntime, service_runtime
from atrium_shared.settings import Settings, get_settings
from atrium_track.bootstrap import bootstrap


def build(settings: Settings) -> ServiceRuntime:
    return service_runtime(
        "track", settings, lambda s, broker, redis: bootstrap(s, broker=broker, redis=redis)
    )


def build_broker() -> NatsBroker:
    """The broker with every subscriber registered, for the AsyncAPI document."""
    return build(Settings()).parts.broker


def main() -> None:
    build(get_settings()).run()


if __name__ == "__main__":
    main()
