"""Wires the participant service: real adapters by default, any port replaced by what the caller
passes.

``bootstrap(settings)`` is the running service (Redis, NATS); the unit tier passes in-memory fakes
for every port and a broker it wraps in FastStream's ``TestNatsBroker``, so no Redis or NATS is
needed. Cosmic Python's ``bootstrap.py`` is the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_participant import handlers
from atrium_participant.adapters.nats import NatsTracks
from atrium_participant.adapters.redis import (
    RedisDurationTimers,
    RedisParticipantQueries,
    RedisParticipantTransaction,
)
from atrium_participant.ports import (
    Clock,
    DurationTimers,
    ParticipantQueries,
    ParticipantTransaction,
    TracksPort,
)
from atrium_participant.usecases import ParticipantUseCases
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.outbox import OutboxRelay
from atrium_shared.service import BackgroundLoop, Poller
from atrium_shared.settings import Settings
from atrium_shared.timefmt import SystemClock
from atrium_shared.unit_of_work import RedisUnitOfWork, UnitOfWork


@dataclass
class ParticipantService:
    participants: ParticipantUseCases
    broker: NatsBroker
    # None when every Redis-backed port was replaced (the unit tier).
    redis: Redis | None
    # Started once the broker is up: the duration-timer poller, and the outbox relay when the
    # unit of work writes the Redis outbox. ``on_drain`` asks them to stop.
    loops: list[BackgroundLoop] = field(default_factory=list)
    on_drain: list[Callable[[], None]] = field(default_factory=list)


def bootstrap(
    settings: Settings,
    *,
    broker: NatsBroker | None = None,
    redis: Redis | None = None,
    uow: UnitOfWork[ParticipantTransaction] | None = None,
    queries: ParticipantQueries | None = None,
    timers: DurationTimers | None = None,
    tracks: TracksPort | None = None,
    clock: Clock | None = None,
) -> ParticipantService:
    broker = broker if broker is not None else make_broker(settings)
    if redis is None and None in (uow, queries, timers):
        redis = make_redis(settings)
    participants = ParticipantUseCases(
        uow=uow if uow is not None else RedisUnitOfWork(redis, RedisParticipantTransaction),
        queries=queries if queries is not None else RedisParticipantQueries(redis),
        timers=timers if timers is not None else RedisDurationTimers(redis),
        tracks=tracks if tracks is not None else NatsTracks(broker, settings.rpc_timeout_seconds),
        clock=clock if clock is not None else SystemClock(),
    )
    handlers.register(broker, participants)
    poller = Poller(participants.fire_due_timers, settings.timer_poll_seconds)
    service = ParticipantService(participants, broker, redis, [poller.run], [poller.stop])
    if uow is None:
        # The Redis unit of work commits events to the outbox; the relay takes them to JetStream.
        relay = OutboxRelay(redis, broker)
        service.loops.append(relay.run)
        service.on_drain.append(relay.stop)
    return service
