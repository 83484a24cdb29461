"""Redis as the gateway uses it: only through the shared account store, and for readiness.

The account store (``atrium_shared.accounts.AccountStore``) owns every key; the gateway spells
none.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

PING_TIMEOUT_SECONDS = 2


class RedisReadiness:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def ready(self) -> bool:
        await asyncio.wait_for(self._redis.ping(), PING_TIMEOUT_SECONDS)
        return True
