"""Participant records in Redis.

Keys (all owned by the participant service):
- ``atrium:participant:{sid}``: the ParticipantInfo JSON;
- ``atrium:participant:room:{room}:connected``: hash identity -> SID of the connected participant,
  the seat count that admission checks atomically;
- ``atrium:participant:room:{room}:index:{status}`` (and ``...:identity:{digest}``): keyset-paged
  indexes (:mod:`atrium_shared.paging`);
- ``atrium:participant:timers``: sorted set of SIDs by MaxParticipantDuration deadline.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_shared.models import ParticipantInfo
from atrium_shared.paging import index_member, member_sid, read_page

TIMERS_KEY = "atrium:participant:timers"


def participant_key(sid: str) -> str:
    return f"atrium:participant:{sid}"


def connected_key(room_sid: str) -> str:
    return f"atrium:participant:room:{room_sid}:connected"


def _index_key(room_sid: str, status: str, identity: str | None = None) -> str:
    base = f"atrium:participant:room:{room_sid}:index:{status}"
    if identity is None:
        return base
    return f"{base}:identity:{hashlib.sha1(identity.encode()).hexdigest()}"


def _index_keys(participant: ParticipantInfo) -> list[str]:
    return [
        _index_key(participant.room_sid, participant.status),
        _index_key(participant.room_sid, participant.status, participant.identity),
    ]


def _member(participant: ParticipantInfo) -> str:
    return index_member(participant.date_created, participant.sid)


class ParticipantRepository:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    async def load(reader: Redis | Pipeline, sid: str) -> ParticipantInfo | None:
        raw = await reader.get(participant_key(sid))
        return ParticipantInfo.model_validate_json(raw) if raw else None

    async def get(self, sid: str) -> ParticipantInfo | None:
        return await self.load(self.redis, sid)

    async def connected_sid(self, room_sid: str, identity: str) -> str | None:
        value = await self.redis.hget(connected_key(room_sid), identity)
        return str(value) if value is not None else None

    async def latest_sid_for_identity(self, room_sid: str, identity: str) -> str | None:
        for status in ("connected", "disconnected"):
            members = await self.redis.zrange(
                _index_key(room_sid, status, identity), "+", "-", desc=True, bylex=True,
                offset=0, num=1,
            )
            if members:
                return member_sid(members[0])
        return None

    async def list_page(
        self,
        room_sid: str,
        status: str,
        identity: str | None,
        **window: object,
    ) -> tuple[list[ParticipantInfo], str | None, str | None]:
        members, next_cursor, prev_cursor = await read_page(
            self.redis, _index_key(room_sid, status, identity), **window  # type: ignore[arg-type]
        )
        found = [await self.get(member_sid(m)) for m in members]
        return [p for p in found if p is not None], next_cursor, prev_cursor

    async def due_timers(self, now: float, limit: int = 100) -> list[str]:
        return list(await self.redis.zrangebyscore(TIMERS_KEY, 0, now, start=0, num=limit))

    async def drop_timer(self, sid: str) -> None:
        await self.redis.zrem(TIMERS_KEY, sid)

    # Writes, queued on the MULTI pipeline of outbox.commit --------------------------------------
    @staticmethod
    def write_admitted(pipe: Pipeline, participant: ParticipantInfo, deadline: float) -> None:
        pipe.set(participant_key(participant.sid), participant.model_dump_json())
        pipe.hset(connected_key(participant.room_sid), participant.identity, participant.sid)
        for key in _index_keys(participant):
            pipe.zadd(key, {_member(participant): 0})
        pipe.zadd(TIMERS_KEY, {participant.sid: deadline})

    @staticmethod
    def write_disconnected(
        pipe: Pipeline, before: ParticipantInfo, after: ParticipantInfo, seat_holder: str | None
    ) -> None:
        pipe.set(participant_key(after.sid), after.model_dump_json())
        if seat_holder == after.sid:
            pipe.hdel(connected_key(after.room_sid), after.identity)
        for key in _index_keys(before):
            pipe.zrem(key, _member(before))
        for key in _index_keys(after):
            pipe.zadd(key, {_member(after): 0})
        pipe.zrem(TIMERS_KEY, after.sid)
