"""The media-worker registry in Redis: workers write their entry, the room service reads it.

Each worker keeps ``atrium:media:worker:{id}`` (JSON, with a TTL a few heartbeats long) and its
load in the ``atrium:media:workers`` sorted set. A worker whose entry expired, or whose heartbeat is
stale and which answers no ping, is dead: rooms are never placed on it, and the room service's
failover sweep moves its rooms to a live worker, which adopts their sessions from the records the
dead worker kept (``atrium:media:room:{sid}:sessions``). A draining worker (``draining=True``) gets
no new rooms; when it exits it hands its rooms over the same way.

``atrium:media:session:{id}`` names the worker hosting a signaling session now, so a client's
``sync`` reaches the worker that adopted its session rather than the one its session string names.
"""

from __future__ import annotations

import time

from pydantic import BaseModel
from redis.asyncio import Redis

WORKERS_KEY = "atrium:media:workers"
HEARTBEAT_SECONDS = 1.0
EXPIRY_SECONDS = 6 * HEARTBEAT_SECONDS
# A heartbeat older than this makes the failover sweep ping the worker: kill -9 closes its NATS
# connection, so a dead worker has no responder and is known dead at once, while a live worker
# that is only slow to write Redis answers and keeps its rooms.
STALE_SECONDS = 1.5 * HEARTBEAT_SECONDS


def session_worker_key(session_id: str) -> str:
    """The worker hosting signaling session ``session_id`` (written by that worker)."""
    return f"atrium:media:session:{session_id}"


class SessionDirectory:
    """Which worker hosts a session now (read by the gateway to route a ``sync``)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def worker_of(self, session_id: str) -> str | None:
        value = await self.redis.get(session_worker_key(session_id))
        return str(value) if value is not None else None


def worker_key(worker_id: str) -> str:
    return f"atrium:media:worker:{worker_id}"


class WorkerInfo(BaseModel):
    worker_id: str
    rooms: int = 0
    participants: int = 0
    capacity: int = 200  # participants this worker accepts
    draining: bool = False
    heartbeat_at: float = 0.0

    @property
    def load(self) -> float:
        return self.participants / max(self.capacity, 1)

    def is_stale(self, now: float) -> bool:
        """Its heartbeat is late: dying, or dead with its entry not expired yet."""
        return now - self.heartbeat_at > STALE_SECONDS


class WorkerRegistry:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def heartbeat(self, info: WorkerInfo) -> None:
        info.heartbeat_at = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(
                worker_key(info.worker_id), info.model_dump_json(), px=int(EXPIRY_SECONDS * 1000)
            )
            if info.draining:
                pipe.zrem(WORKERS_KEY, info.worker_id)
            else:
                pipe.zadd(WORKERS_KEY, {info.worker_id: info.load})
            await pipe.execute()

    async def leave(self, worker_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(worker_key(worker_id))
            pipe.zrem(WORKERS_KEY, worker_id)
            await pipe.execute()

    async def get(self, worker_id: str) -> WorkerInfo | None:
        raw = await self.redis.get(worker_key(worker_id))
        return WorkerInfo.model_validate_json(raw) if raw else None

    async def is_live(self, worker_id: str) -> bool:
        """Whether the worker's entry has not expired (a draining worker's has not: it hands
        its rooms over before it leaves the registry)."""
        return await self.get(worker_id) is not None

    async def least_loaded(self) -> WorkerInfo | None:
        """The live worker with the lowest load that still has room; expired entries are
        pruned, and a worker whose heartbeat is stale (dying, or dead and not expired yet) is
        passed over."""
        now = time.time()
        for worker_id in await self.redis.zrange(WORKERS_KEY, 0, -1):
            info = await self.get(worker_id)
            if info is None:
                await self.redis.zrem(WORKERS_KEY, worker_id)
                continue
            if info.is_stale(now):
                continue
            if not info.draining and info.participants < info.capacity:
                return info
        return None
