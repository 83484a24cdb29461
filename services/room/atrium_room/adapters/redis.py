"""Room records in Redis: the record, the unique-name claim, list indexes, presence and timers.

Keys (all owned by the room service, spelled only here):
- ``atrium:room:{sid}``: the RoomInfo JSON;
- ``atrium:room:name:{account}:{unique_name}``: the SID of the in-progress room holding the name;
- ``atrium:room:index:{account}:{status}`` and ``...:{status}:name:{digest}``: keyset-paged indexes
  (:mod:`atrium_shared.paging`);
- ``atrium:room:{sid}:present``: SIDs of the connected participants, learned from their events;
- ``atrium:room:{sid}:worker``: the media worker hosting the room;
- ``atrium:room:placements``: hash, room SID -> worker, and ``atrium:room:placed-workers``: the
  workers it names (what the failover sweep watches);
- ``atrium:room:timers``: sorted set ``{kind}:{sid}`` by due time (epoch seconds).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_room.domain import Timer
from atrium_shared.models import RoomInfo
from atrium_shared.outbox import sequence_key
from atrium_shared.paging import index_member, member_sid, read_page
from atrium_shared.unit_of_work import RedisTransaction

TIMERS_KEY = "atrium:room:timers"
PLACEMENTS_KEY = "atrium:room:placements"
PLACED_WORKERS_KEY = "atrium:room:placed-workers"


def room_key(sid: str) -> str:
    return f"atrium:room:{sid}"


def presence_key(sid: str) -> str:
    return f"atrium:room:{sid}:present"


def placement_key(sid: str) -> str:
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


def _index_keys(room: RoomInfo) -> list[str]:
    return [
        _index_key(room.account_sid, room.status),
        _index_key(room.account_sid, room.status, room.unique_name),
    ]


def _timer_member(timer: Timer) -> str:
    return f"{timer.kind}:{timer.room_sid}"


def _index(pipe: Pipeline, room: RoomInfo) -> None:
    for key in _index_keys(room):
        pipe.zadd(key, {_index_member(room): 0})


def _unindex(pipe: Pipeline, room: RoomInfo) -> None:
    for key in _index_keys(room):
        pipe.zrem(key, _index_member(room))


def _rooms_on(placements: dict[object, object], worker_id: str) -> list[str]:
    return sorted(str(room) for room, worker in placements.items() if str(worker) == worker_id)


async def _load(reader: Redis | Pipeline, sid: str) -> RoomInfo | None:
    raw = await reader.get(room_key(sid))
    return RoomInfo.model_validate_json(raw) if raw else None


class RedisRoomTransaction(RedisTransaction):
    """:class:`atrium_room.ports.RoomTransaction` under WATCH/MULTI."""

    async def room(self, sid: str) -> RoomInfo | None:
        await self.watch(room_key(sid))
        return await _load(self.pipe, sid)

    async def room_holding_name(self, account_sid: str, unique_name: str) -> RoomInfo | None:
        claim = name_key(account_sid, unique_name)
        await self.watch(claim)
        holder = await self.pipe.get(claim)
        return await self.room(str(holder)) if holder is not None else None

    async def present(self, room_sid: str) -> set[str]:
        await self.watch(presence_key(room_sid))
        return {str(sid) for sid in await self.pipe.smembers(presence_key(room_sid))}

    async def placement(self, room_sid: str) -> str | None:
        await self.watch(placement_key(room_sid))
        value = await self.pipe.get(placement_key(room_sid))
        return str(value) if value is not None else None

    def add_room(self, room: RoomInfo) -> None:
        def write(pipe: Pipeline) -> None:
            pipe.set(room_key(room.sid), room.model_dump_json())
            pipe.set(name_key(room.account_sid, room.unique_name), room.sid)
            _index(pipe, room)

        self.stage(write)

    def end_room(self, before: RoomInfo, after: RoomInfo) -> None:
        def write(pipe: Pipeline) -> None:
            pipe.set(room_key(after.sid), after.model_dump_json())
            pipe.delete(name_key(before.account_sid, before.unique_name))
            _unindex(pipe, before)
            _index(pipe, after)
            pipe.delete(presence_key(after.sid), placement_key(after.sid))
            pipe.hdel(PLACEMENTS_KEY, after.sid)

        self.stage(write)

    def delete_room(self, room: RoomInfo) -> None:
        def write(pipe: Pipeline) -> None:
            pipe.delete(room_key(room.sid), sequence_key(room.sid))
            _unindex(pipe, room)

        self.stage(write)

    def add_present(self, room_sid: str, participant_sid: str) -> None:
        self.stage(lambda pipe: pipe.sadd(presence_key(room_sid), participant_sid))

    def remove_present(self, room_sid: str, participant_sid: str) -> None:
        self.stage(lambda pipe: pipe.srem(presence_key(room_sid), participant_sid))

    def place(self, room_sid: str, worker_id: str) -> None:
        def write(pipe: Pipeline) -> None:
            pipe.set(placement_key(room_sid), worker_id)
            pipe.hset(PLACEMENTS_KEY, room_sid, worker_id)
            pipe.sadd(PLACED_WORKERS_KEY, worker_id)

        self.stage(write)

    async def rooms_on(self, worker_id: str) -> list[str]:
        await self.watch(PLACEMENTS_KEY)
        return _rooms_on(await self.pipe.hgetall(PLACEMENTS_KEY), worker_id)

    def forget_worker(self, worker_id: str) -> None:
        self.stage(lambda pipe: pipe.srem(PLACED_WORKERS_KEY, worker_id))

    def schedule(self, timer: Timer, due_at: float) -> None:
        self.stage(lambda pipe: pipe.zadd(TIMERS_KEY, {_timer_member(timer): due_at}))

    def cancel(self, *timers: Timer) -> None:
        members = [_timer_member(timer) for timer in timers]
        if members:
            self.stage(lambda pipe: pipe.zrem(TIMERS_KEY, *members))


class RedisRoomQueries:
    """:class:`atrium_room.ports.RoomQueries` on the same keys."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def get(self, sid: str) -> RoomInfo | None:
        return await _load(self.redis, sid)

    async def holding_name(self, account_sid: str, unique_name: str) -> RoomInfo | None:
        sid = await self.redis.get(name_key(account_sid, unique_name))
        return await self.get(str(sid)) if sid is not None else None

    async def placement(self, room_sid: str) -> str | None:
        value = await self.redis.get(placement_key(room_sid))
        return str(value) if value is not None else None

    async def placed_workers(self) -> list[str]:
        return sorted(str(w) for w in await self.redis.smembers(PLACED_WORKERS_KEY))

    async def rooms_on(self, worker_id: str) -> list[str]:
        return _rooms_on(await self.redis.hgetall(PLACEMENTS_KEY), worker_id)

    async def list_page(
        self,
        account_sid: str,
        status: str,
        unique_name: str | None,
        *,
        created_on_or_after: datetime | None,
        created_before: datetime | None,
        page_size: int,
        cursor: str | None,
    ) -> tuple[list[RoomInfo], str | None, str | None]:
        members, next_cursor, prev_cursor = await read_page(
            self.redis,
            _index_key(account_sid, status, unique_name),
            created_on_or_after=created_on_or_after,
            created_before=created_before,
            page_size=page_size,
            cursor=cursor,
        )
        found = [await self.get(member_sid(member)) for member in members]
        return [room for room in found if room is not None], next_cursor, prev_cursor


class RedisRoomTimers:
    """:class:`atrium_room.ports.RoomTimers` on the timers sorted set."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def due(self, now: float, limit: int = 100) -> list[Timer]:
        members = await self.redis.zrangebyscore(TIMERS_KEY, 0, now, start=0, num=limit)
        return [Timer(kind, sid) for kind, _, sid in (str(m).partition(":") for m in members)]

    async def drop(self, timer: Timer) -> None:
        await self.redis.zrem(TIMERS_KEY, _timer_member(timer))
