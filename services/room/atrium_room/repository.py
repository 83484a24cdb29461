"""Room records in Redis: the record, the unique-name claim, list indexes and timers.

Keys (all owned by the room service):
- ``atrium:room:{sid}``: the RoomInfo JSON;
- ``atrium:room:name:{account}:{unique_name}``: the SID of the in-progress room holding the name;
- ``atrium:room:index:{account}:{status}`` and ``...:{status}:name:{digest}``: keyset-paged indexes
  (:mod:`atrium_shared.paging`);
- ``atrium:room:timers``: sorted set ``{kind}:{sid}`` by due time (epoch seconds).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from atrium_shared.models import RoomInfo
from atrium_shared.outbox import sequence_key
from atrium_shared.paging import index_member, member_sid, read_page

TIMERS_KEY = "atrium:room:timers"
UNUSED = "unused"
EMPTY = "empty"
PURGE = "purge"


def room_key(sid: str) -> str:
    return f"atrium:room:{sid}"


def presence_key(sid: str) -> str:
    """SIDs of the participants connected to a room, as the room service learned from events."""
    return f"atrium:room:{sid}:present"


def placement_key(sid: str) -> str:
    """The media worker hosting a room."""
    return f"atrium:room:{sid}:worker"


def name_key(account_sid: str, unique_name: str) -> str:
    return f"atrium:room:name:{account_sid}:{unique_name}"


def _index_key(account_sid: str, status: str, unique_name: str | None = None) -> str:
    base = f"atrium:room:index:{account_sid}:{status}"
    if unique_name is None:
        return base
    return f"{base}:name:{hashlib.sha1(unique_name.encode()).hexdigest()}"


def _index_member(room: RoomInfo) -> str:
    return index_member(room.date_created, room.sid)


def index_keys(room: RoomInfo) -> list[str]:
    return [
        _index_key(room.account_sid, room.status),
        _index_key(room.account_sid, room.status, room.unique_name),
    ]


def timer_member(kind: str, sid: str) -> str:
    return f"{kind}:{sid}"


class RoomRepository:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    # Reads ------------------------------------------------------------------------------------
    @staticmethod
    async def load(reader: Redis | Pipeline, sid: str) -> RoomInfo | None:
        raw = await reader.get(room_key(sid))
        return RoomInfo.model_validate_json(raw) if raw else None

    async def get(self, sid: str) -> RoomInfo | None:
        return await self.load(self.redis, sid)

    async def sid_for_name(self, account_sid: str, unique_name: str) -> str | None:
        value = await self.redis.get(name_key(account_sid, unique_name))
        return str(value) if value is not None else None

    async def list_page(
        self,
        account_sid: str,
        status: str,
        unique_name: str | None,
        created_on_or_after: datetime | None,
        created_before: datetime | None,
        page_size: int,
        cursor: str | None,
    ) -> tuple[list[RoomInfo], str | None, str | None]:
        """Newest first. Returns (rooms, next cursor, previous cursor)."""
        members, next_cursor, prev_cursor = await read_page(
            self.redis,
            _index_key(account_sid, status, unique_name),
            created_on_or_after=created_on_or_after,
            created_before=created_before,
            page_size=page_size,
            cursor=cursor,
        )
        rooms: list[RoomInfo] = []
        for member in members:
            room = await self.get(member_sid(member))
            if room is not None:
                rooms.append(room)
        return rooms, next_cursor, prev_cursor

    async def due_timers(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        members = await self.redis.zrangebyscore(TIMERS_KEY, 0, now, start=0, num=limit)
        return [(kind, sid) for kind, _, sid in (m.partition(":") for m in members)]

    async def drop_timer(self, kind: str, sid: str) -> None:
        await self.redis.zrem(TIMERS_KEY, timer_member(kind, sid))

    # Writes, queued on a MULTI pipeline by outbox.commit ---------------------------------------
    @staticmethod
    def write_new(pipe: Pipeline, room: RoomInfo, timer: tuple[str, float]) -> None:
        pipe.set(room_key(room.sid), room.model_dump_json())
        pipe.set(name_key(room.account_sid, room.unique_name), room.sid)
        for key in index_keys(room):
            pipe.zadd(key, {_index_member(room): 0})
        kind, deadline = timer
        pipe.zadd(TIMERS_KEY, {timer_member(kind, room.sid): deadline})

    async def place(self, sid: str, worker_id: str, previous: str | None) -> str:
        """Record the room's worker unless another replica placed it first; returns the winner."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(placement_key(sid))
                current = await pipe.get(placement_key(sid))
                if current is not None and current != previous:
                    await pipe.reset()
                    return str(current)
                pipe.multi()
                pipe.set(placement_key(sid), worker_id)
                await pipe.execute()
                return worker_id
            except WatchError:
                return str(await self.redis.get(placement_key(sid)))

    async def placement(self, sid: str) -> str | None:
        value = await self.redis.get(placement_key(sid))
        return str(value) if value is not None else None

    async def participant_arrived(self, sid: str, participant_sid: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(presence_key(sid), participant_sid)
            pipe.zrem(TIMERS_KEY, timer_member(UNUSED, sid), timer_member(EMPTY, sid))
            await pipe.execute()

    async def participant_left(self, sid: str, participant_sid: str) -> int:
        """Forget a participant; returns how many remain connected."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.srem(presence_key(sid), participant_sid)
            pipe.scard(presence_key(sid))
            _, remaining = await pipe.execute()
        return int(remaining)

    async def set_timer(self, kind: str, sid: str, deadline: float) -> None:
        await self.redis.zadd(TIMERS_KEY, {timer_member(kind, sid): deadline})

    @staticmethod
    def write_completed(
        pipe: Pipeline, before: RoomInfo, after: RoomInfo, purge_at: float
    ) -> None:
        pipe.set(room_key(after.sid), after.model_dump_json())
        pipe.delete(name_key(before.account_sid, before.unique_name))
        for key in index_keys(before):
            pipe.zrem(key, _index_member(before))
        for key in index_keys(after):
            pipe.zadd(key, {_index_member(after): 0})
        pipe.zrem(TIMERS_KEY, timer_member(UNUSED, after.sid), timer_member(EMPTY, after.sid))
        pipe.zadd(TIMERS_KEY, {timer_member(PURGE, after.sid): purge_at})
        pipe.delete(presence_key(after.sid), placement_key(after.sid))

    @staticmethod
    def write_purged(pipe: Pipeline, room: RoomInfo) -> None:
        pipe.delete(room_key(room.sid), sequence_key(room.sid))
        for key in index_keys(room):
            pipe.zrem(key, _index_member(room))
        pipe.zrem(TIMERS_KEY, timer_member(PURGE, room.sid))
