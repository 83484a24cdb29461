"""Wires the room service: settings, telemetry, broker, Redis, handlers, timers, outbox relay."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_room import handlers
from atrium_room.ports import ParticipantsPort
from atrium_room.repository import RoomRepository
from atrium_room.usecases import RoomUseCases
from atrium_shared import telemetry
from atrium_shared.accounts import AccountStore
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.outbox import OutboxRelay
from atrium_shared.service import Poller, ServiceParts, ServiceRuntime
from atrium_shared.settings import Settings, get_settings
from atrium_shared.workers import WorkerRegistry


def build(settings: Settings) -> ServiceRuntime:
    telemetry.setup("room", settings)
    broker = make_broker(settings)
    redis = make_redis(settings)
    rooms = RoomUseCases(
        RoomRepository(redis),
        settings,
        ParticipantsPort(broker, settings.rpc_timeout_seconds),
        WorkerRegistry(redis),
        AccountStore(redis),
    )
    handlers.register(broker, rooms)
    relay = OutboxRelay(redis, broker)
    timers = Poller(rooms.fire_due_timers, settings.timer_poll_seconds)
    return ServiceRuntime(
        ServiceParts(
            name="room",
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
