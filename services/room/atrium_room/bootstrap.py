"""Wires the room service: real adapters by default, any port replaced by what the caller passes.

``bootstrap(settings)`` is the running service (Redis, NATS); the unit tier passes in-memory fakes
for every port and a broker it wraps in FastStream's ``TestNatsBroker``, so no Redis or NATS is
needed. Cosmic Python's ``bootstrap.py`` is the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_room import handlers
from atrium_room.adapters.nats import NatsMedia, NatsParticipants
from atrium_room.adapters.redis import RedisRoomQueries, RedisRoomTimers, RedisRoomTransaction
from atrium_room.failover import Failover
from atrium_room.ports import (
    AccountsPort,
    Clock,
    MediaPort,
    ParticipantsPort,
    RoomQueries,
    RoomTimers,
    RoomTransaction,
    WorkersPort,
)
from atrium_room.usecases import RoomUseCases
from atrium_shared.accounts import AccountStore
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.outbox import OutboxRelay
from atrium_shared.service import BackgroundLoop, Poller
from atrium_shared.settings import Settings
from atrium_shared.timefmt import SystemClock
from atrium_shared.unit_of_work import RedisUnitOfWork, UnitOfWork
from atrium_shared.workers import WorkerRegistry


@dataclass
class RoomService:
    rooms: RoomUseCases
    broker: NatsBroker
    # None when every Redis-backed port was replaced (the unit tier).
    redis: Redis | None
    # Started once the broker is up: the timer poller, and the outbox relay when the unit of work
    # writes the Redis outbox. ``on_drain`` asks them to stop.
    loops: list[BackgroundLoop] = field(default_factory=list)
    on_drain: list[Callable[[], None]] = field(default_factory=list)


def bootstrap(
    settings: Settings,
    *,
    broker: NatsBroker | None = None,
    redis: Redis | None = None,
    uow: UnitOfWork[RoomTransaction] | None = None,
    queries: RoomQueries | None = None,
    timers: RoomTimers | None = None,
    participants: ParticipantsPort | None = None,
    workers: WorkersPort | None = None,
    media: MediaPort | None = None,
    accounts: AccountsPort | None = None,
    clock: Clock | None = None,
) -> RoomService:
    broker = broker if broker is not None else make_broker(settings)
    if redis is None and None in (uow, queries, timers, workers, accounts):
        redis = make_redis(settings)
    uow = uow if uow is not None else RedisUnitOfWork(redis, RedisRoomTransaction)
    queries = queries if queries is not None else RedisRoomQueries(redis)
    workers = workers if workers is not None else WorkerRegistry(redis)
    clock = clock if clock is not None else SystemClock()
    failover = Failover(
        uow=uow,
        queries=queries,
        workers=workers,
        media=media if media is not None else NatsMedia(broker, settings.failover_timeout_seconds),
        clock=clock,
    )
    rooms = RoomUseCases(
        uow=uow,
        queries=queries,
        timers=timers if timers is not None else RedisRoomTimers(redis),
        participants=participants
        if participants is not None
        else NatsParticipants(broker, settings.rpc_timeout_seconds),
        workers=workers,
        failover=failover,
        accounts=accounts if accounts is not None else AccountStore(redis),
        clock=clock,
        settings=settings,
    )
    handlers.register(broker, rooms)
    timers_poller = Poller(rooms.fire_due_timers, settings.timer_poll_seconds)
    sweeper = Poller(failover.sweep, settings.failover_poll_seconds)
    service = RoomService(
        rooms,
        broker,
        redis,
        [timers_poller.run, sweeper.run],
        [timers_poller.stop, sweeper.stop],
    )
    if uow is None:
        relay = OutboxRelay(redis, broker)
        service.loops.append(relay.run)
        service.on_drain.append(relay.stop)
    return service
