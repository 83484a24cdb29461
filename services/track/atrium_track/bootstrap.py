"""Wires the track service: real adapters by default, any port replaced by what the caller passes.

``bootstrap(settings)`` is the running service (Redis, NATS); the unit tier passes in-memory fakes
for every port and a broker it wraps in FastStream's ``TestNatsBroker``, so no Redis or NATS is
needed. Cosmic Python's ``bootstrap.py`` is the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_shared.infra import make_broker, make_redis
from atrium_shared.outbox import OutboxRelay
from atrium_shared.service import BackgroundLoop
from atrium_shared.settings import Settings
from atrium_shared.timefmt import SystemClock
from atrium_shared.unit_of_work import RedisUnitOfWork, UnitOfWork
from atrium_track import handlers
from atrium_track.adapters.nats import NatsTrackPublisher
from atrium_track.adapters.redis import RedisTrackQueries, RedisTrackTransaction
from atrium_track.ports import Clock, Publisher, TrackQueries, TrackTransaction
from atrium_track.usecases import TrackUseCases


@dataclass
class TrackService:
    tracks: TrackUseCases
    broker: NatsBroker
    # None when every Redis-backed port was replaced (the unit tier).
    redis: Redis | None
    # Started once the broker is up: the outbox relay when the unit of work writes the Redis
    # outbox. ``on_drain`` asks it to stop.
    loops: list[BackgroundLoop] = field(default_factory=list)
    on_drain: list[Callable[[], None]] = field(default_factory=list)


def bootstrap(
    settings: Settings,
    *,
    broker: NatsBroker | None = None,
    redis: Redis | None = None,
    uow: UnitOfWork[TrackTransaction] | None = None,
    queries: TrackQueries | None = None,
    publisher: Publisher | None = None,
    clock: Clock | None = None,
) -> TrackService:
    broker = broker if broker is not None else make_broker(settings)
    if redis is None and None in (uow, queries):
        redis = make_redis(settings)
    tracks = TrackUseCases(
        uow=uow if uow is not None else RedisUnitOfWork(redis, RedisTrackTransaction),
        queries=queries if queries is not None else RedisTrackQueries(redis),
        publisher=publisher if publisher is not None else NatsTrackPublisher(broker),
        clock=clock if clock is not None else SystemClock(),
    )
    handlers.register(broker, tracks)
    service = TrackService(tracks, broker, redis)
    if uow is None:
        # The Redis unit of work commits events to the outbox; the relay takes them to JetStream.
        relay = OutboxRelay(redis, broker)
        service.loops.append(relay.run)
        service.on_drain.append(relay.stop)
    return service
