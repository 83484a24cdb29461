"""Wires a media worker: the control plane and registry adapters (or the fakes given), the
worker, and its NATS handlers. ``app.py`` runs it as a process."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_media import handlers
from atrium_media.adapters.nats import NatsControlPlane
from atrium_media.adapters.redis import RedisSessionStore
from atrium_media.ports import ControlPlane
from atrium_media.signaling.worker import MediaWorker
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.settings import Settings
from atrium_shared.workers import WorkerRegistry


@dataclass
class MediaService:
    worker: MediaWorker
    broker: NatsBroker
    redis: Redis


def bootstrap(
    settings: Settings,
    *,
    broker: NatsBroker | None = None,
    redis: Redis | None = None,
    control: ControlPlane | None = None,
    registry: WorkerRegistry | None = None,
    worker_id: str | None = None,
) -> MediaService:
    broker = broker if broker is not None else make_broker(settings)
    redis = redis if redis is not None else make_redis(settings)
    worker = MediaWorker(
        worker_id or settings.media_worker_id or uuid.uuid4().hex[:12],
        broker,
        control if control is not None else NatsControlPlane(broker, settings.rpc_timeout_seconds),
        registry if registry is not None else WorkerRegistry(redis),
        capacity=settings.media_capacity,
        announced_address=settings.media_announced_address or None,
        recordings_dir=settings.recordings_dir,
        recordings_s3_endpoint_url=settings.recordings_s3_endpoint_url,
        store=RedisSessionStore(redis),
    )
    handlers.register(broker, worker)
    return MediaService(worker, broker, redis)
