"""Wires the track service: broker, Redis, handlers, outbox relay."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared import subjects, telemetry
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.outbox import OutboxRelay
from atrium_shared.service import ServiceParts, ServiceRuntime
from atrium_shared.settings import Settings, get_settings
from atrium_shared.track_api import SubscriptionsChanged
from atrium_track import handlers
from atrium_track.repository import TrackRepository
from atrium_track.usecases import TrackUseCases


def build(settings: Settings) -> ServiceRuntime:
    telemetry.setup("track", settings)
    broker = make_broker(settings)
    redis = make_redis(settings)

    async def notify(change: SubscriptionsChanged) -> None:
        await broker.publish(change, subjects.MEDIA_SUBSCRIPTIONS)

    tracks = TrackUseCases(TrackRepository(redis), notify)
    handlers.register(broker, tracks)
    relay = OutboxRelay(redis, broker)
    return ServiceRuntime(
        ServiceParts(
            name="track",
            settings=settings,
            broker=broker,
            redis=redis,
            loops=[relay.run],
            on_drain=[relay.stop],
        )
    )


def build_broker() -> NatsBroker:
    """The broker with every subscriber registered, for the AsyncAPI document."""
    return build(Settings()).parts.broker


def main() -> None:
    build(get_settings()).run()


if __name__ == "__main__":
    main()
