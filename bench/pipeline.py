"""Is Atrium's event pipeline idle? (Redis outbox empty, no JetStream consumer with work left.)

Every room created emits ``room-created`` through outbox -> relay -> JetStream -> callback service,
whether or not it has a StatusCallback. Waiting for that backlog to drain between phases keeps
one phase's leftover work from slowing the next one (or the floor measured after it).
"""

from __future__ import annotations

import asyncio
import time

import nats
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from redis.asyncio import Redis

from atrium_shared.outbox import OUTBOX_STREAM
from atrium_shared.subjects import EVENTS_STREAM_NAME


class PipelineProbe:
    def __init__(self, nats_url: str, redis_url: str) -> None:
        self._nats_url = nats_url
        self._redis = Redis.from_url(redis_url, decode_responses=True)
        self._nc: NatsClient | None = None

    async def start(self) -> None:
        self._nc = await nats.connect(self._nats_url, connect_timeout=5, max_reconnect_attempts=3)

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
        await self._redis.aclose()

    async def backlog(self) -> int:
        """Outbox entries not yet relayed plus events not yet consumed or acknowledged."""
        assert self._nc is not None, "start() first"
        pending = int(await self._redis.xlen(OUTBOX_STREAM))
        try:
            consumers = await self._nc.jsm().consumers_info(EVENTS_STREAM_NAME)
        except NotFoundError:
            consumers = []
        for consumer in consumers:
            pending += (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
        return pending

    async def wait_idle(self, timeout: float) -> float | None:
        """Seconds it took to become idle, or None if it still had work after ``timeout``."""
        started = time.perf_counter()
        while True:
            if await self.backlog() == 0:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                return None
            await asyncio.sleep(0.05)
