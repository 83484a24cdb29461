"""Session records in Redis (:mod:`atrium_media.signaling.handover`).

Keys (owned by the media workers):
- ``atrium:media:room:{sid}:sessions``: hash, participant SID -> SessionRecord JSON;
- ``atrium:media:session:{id}``: the worker hosting the session (:mod:`atrium_shared.workers`,
  which the gateway reads to route a ``sync``).

Both expire a while after their last write, so the records of a room nobody adopted (every
worker gone) do not stay forever.
"""

from __future__ import annotations

from redis.asyncio import Redis

from atrium_media.signaling.handover import SessionRecord
from atrium_shared.workers import session_worker_key

RECORD_TTL_SECONDS = 24 * 3600


def room_sessions_key(room_sid: str) -> str:
    return f"atrium:media:room:{room_sid}:sessions"


class RedisSessionStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def save(self, record: SessionRecord) -> None:
        key = room_sessions_key(record.participant.room_sid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(key, record.participant.sid, record.model_dump_json())
            pipe.expire(key, RECORD_TTL_SECONDS)
            await pipe.execute()

    async def claim(self, record: SessionRecord) -> None:
        await self.redis.set(
            session_worker_key(record.session_id), record.worker_id, ex=RECORD_TTL_SECONDS
        )

    async def delete(self, room_sid: str, participant_sid: str, session_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hdel(room_sessions_key(room_sid), participant_sid)
            pipe.delete(session_worker_key(session_id))
            await pipe.execute()

    async def room(self, room_sid: str) -> list[SessionRecord]:
        raw = await self.redis.hgetall(room_sessions_key(room_sid))
        return [SessionRecord.model_validate_json(value) for value in raw.values()]
