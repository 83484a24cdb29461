"""Wires the participant service: broker, Redis, handlers, duration timers, outbox relay."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_participant import handlers
from atrium_participant.ports import TracksPort
from atrium_participant.repository import ParticipantRepository
from atrium_participant.usecases import ParticipantUseCases
from atrium_shared import telemetry
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.outbox import OutboxRelay
from atrium_shared.service import Poller, ServiceParts, ServiceRuntime
from atrium_shared.settings import Settings, get_settings


def build(settings: Settings) -> ServiceRuntime:
    telemetry.setup("participant", settings)
    broker = make_broker(settings)
    redis = make_redis(settings)
    participants = ParticipantUseCases(
        ParticipantRepository(redis),
        settings,
        TracksPort(broker, settings.rpc_timeout_seconds),
    )
    handlers.register(broker, participants)
    relay = OutboxRelay(redis, broker)
    timers = Poller(participants.fire_due_timers, settings.timer_poll_seconds)
    return ServiceRuntime(
        ServiceParts(
            name="participant",
            settings=settings,
            broker=broker,
            redis=redis,
            loops=[timers.run, relay.run],
            on_drain=[timers.stop, relay.stop],
        )
    )


def build_broker() -> NatsBroker:
    """The broker with every subscriber registered, for the AsyncAPI document."""
    return build(Settings()).parts.broker


def main() -> None:
    build(get_settings()).run()


if __name__ == "__main__":
    main()
