"""Wires the recording service: real adapters by default, any port replaced by what the caller
passes.

``bootstrap(settings)`` is the running service (Redis, NATS, the recordings folder, S3 buckets
through aiobotocore); the unit tier passes in-memory fakes for every port and a broker it wraps
in FastStream's ``TestNatsBroker``, so no Redis or NATS is needed. Cosmic Python's
``bootstrap.py`` is the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from faststream.nats import NatsBroker
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_recording import handlers
from atrium_recording.adapters.media import LocalMediaStore, MediaStores
from atrium_recording.adapters.nats import NatsRecordingPublisher, NatsRooms
from atrium_recording.adapters.redis import RedisRecordingQueries, RedisRecordingTransaction
from atrium_recording.adapters.s3 import S3MediaStore
from atrium_recording.ports import (
    Clock,
    MediaStore,
    Publisher,
    RecordingQueries,
    RecordingTransaction,
    RoomsPort,
    Workers,
)
from atrium_recording.usecases import RecordingUseCases, StorageDefaults, Timing
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.outbox import OutboxRelay
from atrium_shared.service import BackgroundLoop, Poller
from atrium_shared.settings import Settings
from atrium_shared.timefmt import SystemClock
from atrium_shared.unit_of_work import RedisUnitOfWork, UnitOfWork
from atrium_shared.workers import WorkerRegistry

# How often the sweep looks for recordings no worker will finish.
SWEEP_SECONDS = 1.0


@dataclass
class RecordingService:
    recordings: RecordingUseCases
    broker: NatsBroker
    # None when every Redis-backed port was replaced (the unit tier).
    redis: Redis | None
    # Started once the broker is up: the sweep, and the outbox relay when the unit of work
    # writes the Redis outbox. ``on_drain`` asks them to stop.
    loops: list[BackgroundLoop] = field(default_factory=list)
    on_drain: list[Callable[[], None]] = field(default_factory=list)


def bootstrap(
    settings: Settings,
    *,
    broker: NatsBroker | None = None,
    redis: Redis | None = None,
    uow: UnitOfWork[RecordingTransaction] | None = None,
    queries: RecordingQueries | None = None,
    rooms: RoomsPort | None = None,
    publisher: Publisher | None = None,
    media: MediaStore | None = None,
    s3: MediaStore | None = None,
    workers: Workers | None = None,
    clock: Clock | None = None,
    timing: Timing | None = None,
) -> RecordingService:
    """``s3``: the store of recordings kept in a bucket (default: :class:`S3MediaStore`, on
    the deployment's endpoint and region; an account's RecordingSettings can name a bucket even
    when the deployment has none, so it is always there); ``media`` replaces the whole routing
    store."""
    broker = broker if broker is not None else make_broker(settings)
    if redis is None and None in (uow, queries, workers):
        redis = make_redis(settings)
    retention = int(settings.completed_room_retention_seconds)

    def transaction(pipe: Pipeline) -> RedisRecordingTransaction:
        return RedisRecordingTransaction(pipe, retention)

    recordings = RecordingUseCases(
        uow=uow if uow is not None else RedisUnitOfWork(redis, transaction),
        queries=queries if queries is not None else RedisRecordingQueries(redis),
        rooms=rooms if rooms is not None else NatsRooms(broker, settings.rpc_timeout_seconds),
        publisher=publisher if publisher is not None else NatsRecordingPublisher(broker),
        media=media
        if media is not None
        else MediaStores(
            LocalMediaStore(settings.recordings_dir),
            s3
            if s3 is not None
            else S3MediaStore(
                default_endpoint_url=settings.recordings_s3_endpoint_url,
                default_region=settings.recordings_s3_region,
            ),
        ),
        workers=workers if workers is not None else WorkerRegistry(redis),
        clock=clock if clock is not None else SystemClock(),
        storage=StorageDefaults(
            settings.recordings_s3_url,
            settings.recordings_s3_endpoint_url,
            settings.recordings_s3_region,
        ),
        timing=timing,
    )
    handlers.register(broker, recordings)
    sweep = Poller(recordings.sweep, SWEEP_SECONDS)
    service = RecordingService(recordings, broker, redis, [sweep.run], [sweep.stop])
    if uow is None:
        # The Redis unit of work commits events to the outbox; the relay takes them to JetStream.
        relay = OutboxRelay(redis, broker)
        service.loops.append(relay.run)
        service.on_drain.append(relay.stop)
    return service
