"""Participant records in Redis.

Keys (all owned by the participant service, spelled only here):
- ``atrium:participant:{sid}``: the ParticipantInfo JSON;
- ``atrium:participant:room:{room}:connected``: hash identity -> SID of the connected participant,
  the seats that admission counts under WATCH;
- ``atrium:participant:room:{room}:index:{status}`` (and ``...:identity:{digest}``): keyset-paged
  indexes (:mod:`atrium_shared.paging`);
- ``atrium:participant:timers``: sorted set of SIDs by MaxParticipantDuration deadline.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_shared.models import ParticipantInfo
from atrium_shared.paging import index_member, member_sid, read_page
from atrium_shared.unit_of_work import RedisTransaction

TIMERS_KEY = "atrium:participant:timers"


def participant_key(sid: str) -> str:
    return f"atrium:participant:{sid}"


def seats_key(room_sid: str) -> str:
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


def _index_member(participant: ParticipantInfo) -> str:
    return index_member(participant.date_created, participant.sid)


def _index(pipe: Pipeline, participant: ParticipantInfo) -> None:
    for key in _index_keys(participant):
        pipe.zadd(key, {_index_member(participant): 0})


def _unindex(pipe: Pipeline, participant: ParticipantInfo) -> None:
    for key in _index_keys(participant):
        pipe.zrem(key, _index_member(participant))


async def _load(reader: Redis | Pipeline, sid: str) -> ParticipantInfo | None:
    raw = await reader.get(participant_key(sid))
    return ParticipantInfo.model_validate_json(raw) if raw else None


def _optional_str(value: object) -> str | None:
    return str(value) if value is not None else None


class RedisParticipantTransaction(RedisTransaction):
    """:class:`atrium_participant.ports.ParticipantTransaction` under WATCH/MULTI."""

    async def participant(self, sid: str) -> ParticipantInfo | None:
        await self.watch(participant_key(sid))
        return await _load(self.pipe, sid)

    async def seat_count(self, room_sid: str) -> int:
        await self.watch(seats_key(room_sid))
        return int(await self.pipe.hlen(seats_key(room_sid)))

    async def seat_holder(self, room_sid: str, identity: str) -> str | None:
        await self.watch(seats_key(room_sid))
        return _optional_str(await self.pipe.hget(seats_key(room_sid), identity))

    def add_participant(self, participant: ParticipantInfo) -> None:
        def write(pipe: Pipeline) -> None:
            pipe.set(participant_key(participant.sid), participant.model_dump_json())
            pipe.hset(seats_key(participant.room_sid), participant.identity, participant.sid)
            _index(pipe, participant)

        self.stage(write)

    def update_participant(self, before: ParticipantInfo, after: ParticipantInfo) -> None:
        def write(pipe: Pipeline) -> None:
            pipe.set(participant_key(after.sid), after.model_dump_json())
            _unindex(pipe, before)
            _index(pipe, after)

        self.stage(write)

    def release_seat(self, participant: ParticipantInfo) -> None:
        self.stage(lambda pipe: pipe.hdel(seats_key(participant.room_sid), participant.identity))

    def schedule_max_duration(self, participant_sid: str, due_at: float) -> None:
        self.stage(lambda pipe: pipe.zadd(TIMERS_KEY, {participant_sid: due_at}))

    def cancel_max_duration(self, participant_sid: str) -> None:
        self.stage(lambda pipe: pipe.zrem(TIMERS_KEY, participant_sid))


class RedisParticipantQueries:
    """:class:`atrium_participant.ports.ParticipantQueries` on the same keys."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, sid: str) -> ParticipantInfo | None:
        return await _load(self.redis, sid)

    async def seat_holder(self, room_sid: str, identity: str) -> str | None:
        return _optional_str(await self.redis.hget(seats_key(room_sid), identity))

    async def seated(self, room_sid: str) -> list[str]:
        return [str(sid) for sid in await self.redis.hvals(seats_key(room_sid))]

    async def latest_with_identity(self, room_sid: str, identity: str) -> str | None:
        for status in ("connected", "disconnected"):
            members = await self.redis.zrange(
                _index_key(room_sid, status, identity),
                "+",
                "-",
                desc=True,
                bylex=True,
                offset=0,
                num=1,
            )
            if members:
                return member_sid(members[0])
        return None

    async def list_page(
        self,
        room_sid: str,
        status: str,
        identity: str | None,
        *,
        created_on_or_after: datetime | None,
        created_before: datetime | None,
        page_size: int,
        cursor: str | None,
    ) -> tuple[list[ParticipantInfo], str | None, str | None]:
        members, next_cursor, prev_cursor = await read_page(
            self.redis,
            _index_key(room_sid, status, identity),
            created_on_or_after=created_on_or_after,
            created_before=created_before,
            page_size=page_size,
            cursor=cursor,
        )
        found = [await self.get(member_sid(member)) for member in members]
        return [p for p in found if p is not None], next_cursor, prev_cursor


class RedisDurationTimers:
    """:class:`atrium_participant.ports.DurationTimers` on the timers sorted set."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def due(self, now: float, limit: int = 100) -> list[str]:
        members = await self.redis.zrangebyscore(TIMERS_KEY, 0, now, start=0, num=limit)
        return [str(sid) for sid in members]

    async def drop(self, participant_sid: str) -> None:
        await self.redis.zrem(TIMERS_KEY, participant_sid)
