"""Room records in Redis: the record, the unique-name claim, list indexes and timers.

Keys (all owned by the room service):
- ``atrium:room:{sid}``: the RoomInfo JSON;
- ``atrium:room:name:{account}:{unique_name}``: the SID of the in-progress room holding the name;
- ``atrium:room:index:{account}:{status}`` and ``...:{status}:name:{digest}``: sorted sets of
  ``{date_created in microseconds}:{sid}`` members, all with score 0, read by lexicographic range so
  pages are keyset-cursored and stay correct while rooms are created;
- ``atrium:room:timers``: sorted set ``{kind}:{sid}`` by due time (epoch seconds).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_shared.models import RoomInfo
from atrium_shared.outbox import sequence_key

TIMERS_KEY = "atrium:room:timers"
UNUSED = "unused"
PURGE = "purge"


def room_key(sid: str) -> str:
    return f"atrium:room:{sid}"


def name_key(account_sid: str, unique_name: str) -> str:
    return f"atrium:room:name:{account_sid}:{unique_name}"


def _index_key(account_sid: str, status: str, unique_name: str | None = None) -> str:
    base = f"atrium:room:index:{account_sid}:{status}"
    if unique_name is None:
        return base
    return f"{base}:name:{hashlib.sha1(unique_name.encode()).hexdigest()}"


def _index_member(room: RoomInfo) -> str:
    return f"{_micros(room.date_created):017d}:{room.sid}"


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def index_keys(room: RoomInfo) -> list[str]:
    return [
        _index_key(room.account_sid, room.status),
        _index_key(room.account_sid, room.status, room.unique_name),
    ]


def timer_member(kind: str, sid: str) -> str:
    return f"{kind}:{sid}"


def encode_cursor(direction: str, member: str) -> str:
    return base64.urlsafe_b64encode(f"{direction}|{member}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str, str]:
    """Raises ValueError on anything that is not a cursor we issued."""
    padded = token + "=" * (-len(token) % 4)
    direction, _, member = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
    if direction not in ("next", "prev") or ":" not in member:
        raise ValueError("bad cursor")
    return direction, member


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
        key = _index_key(account_sid, status, unique_name)
        low = f"[{_micros(created_on_or_after):017d}:" if created_on_or_after else "-"
        high = f"({_micros(created_before):017d}:" if created_before else "+"
        direction, anchor = decode_cursor(cursor) if cursor else ("next", None)

        if direction == "next":
            upper = f"({anchor}" if anchor else high
            if anchor and high != "+" and anchor >= high[1:]:
                upper = high
            members = await self.redis.zrange(
                key, upper, low, desc=True, bylex=True, offset=0, num=page_size + 1
            )
            has_more = len(members) > page_size
            members = members[:page_size]
            has_before = anchor is not None
        else:
            assert anchor is not None
            lower = f"({anchor}"
            members = await self.redis.zrange(
                key, lower, high, bylex=True, offset=0, num=page_size + 1
            )
            has_before = len(members) > page_size
            members = list(reversed(members[:page_size]))
            has_more = True

        rooms: list[RoomInfo] = []
        for member in members:
            room = await self.get(member.split(":", 1)[1])
            if room is not None:
                rooms.append(room)
        next_cursor = encode_cursor("next", members[-1]) if members and has_more else None
        prev_cursor = encode_cursor("prev", members[0]) if members and has_before else None
        return rooms, next_cursor, prev_cursor

    async def due_timers(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        members = await self.redis.zrangebyscore(TIMERS_KEY, 0, now, start=0, num=limit)
        return [(kind, sid) for kind, _, sid in (m.partition(":") for m in members)]

    async def drop_timer(self, kind: str, sid: str) -> None:
        await self.redis.zrem(TIMERS_KEY, timer_member(kind, sid))

    # Writes, queued on a MULTI pipeline by outbox.commit ---------------------------------------
    @staticmethod
    def write_new(pipe: Pipeline, room: RoomInfo, unused_deadline: float) -> None:
        pipe.set(room_key(room.sid), room.model_dump_json())
        pipe.set(name_key(room.account_sid, room.unique_name), room.sid)
        for key in index_keys(room):
            pipe.zadd(key, {_index_member(room): 0})
        pipe.zadd(TIMERS_KEY, {timer_member(UNUSED, room.sid): unused_deadline})

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
        pipe.zrem(TIMERS_KEY, timer_member(UNUSED, after.sid))
        pipe.zadd(TIMERS_KEY, {timer_member(PURGE, after.sid): purge_at})

    @staticmethod
    def write_purged(pipe: Pipeline, room: RoomInfo) -> None:
        pipe.delete(room_key(room.sid), sequence_key(room.sid))
        for key in index_keys(room):
            pipe.zrem(key, _index_member(room))
        pipe.zrem(TIMERS_KEY, timer_member(PURGE, room.sid))
