"""The callback service's Redis keys (all under ``atrium:cb:``) and the atomic steps on them.

Per room: a projection of the room (where its callbacks go), a queue of pending callbacks ordered
by sequence number, the pending items themselves and their attempt state. Across rooms: a
schedule (``due``: room -> when its head may be tried), per-room leases so one dispatcher at a
time delivers a room, and capped logs of finished deliveries and dead letters.

Every step that must not be torn by a crash is one Lua script.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from atrium_callback.domain import Method, RoomProjection
from atrium_shared.callbacks import DeliveryQuery, DeliveryRecord

PREFIX = "atrium:cb:"
DUE_KEY = PREFIX + "due"
LOG_KEY = PREFIX + "log"
DEAD_KEY = PREFIX + "dead"
# Remember consumed event ids this long: JetStream redelivers within seconds to minutes.
SEEN_TTL_SECONDS = 7 * 24 * 3600
# A finished room's projection stays while late events or retries may still need it.
ENDED_ROOM_TTL_SECONDS = 24 * 3600


def seen_key(event_id: str) -> str:
    return f"{PREFIX}seen:{event_id}"


def room_key(room_sid: str) -> str:
    return f"{PREFIX}room:{room_sid}"


def queue_key(room_sid: str) -> str:
    return f"{PREFIX}queue:{room_sid}"


def items_key(room_sid: str) -> str:
    return f"{PREFIX}items:{room_sid}"


def attempts_key(room_sid: str) -> str:
    return f"{PREFIX}attempts:{room_sid}"


def lease_key(room_sid: str) -> str:
    return f"{PREFIX}lease:{room_sid}"


class QueuedCallback(BaseModel):
    """One pending callback: the event, its trace context, and where it goes (from the projection
    at the time it was recorded)."""

    event: str  # the event's JSON, exactly as consumed
    trace: dict[str, str] = Field(default_factory=dict)
    account_sid: str
    url: str
    method: Method = "POST"
    room_name: str = ""
    room_type: str = "group"

    def room(self) -> RoomProjection:
        return RoomProjection(
            account_sid=self.account_sid,
            url=self.url,
            method=self.method,
            room_name=self.room_name,
            room_type=self.room_type,
        )


class AttemptState(BaseModel):
    attempts: int = 0
    first_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None


# KEYS: seen, room, queue, items, due
# ARGV: event_id, sequence, item_json, now_ms, seen_ttl, room_sid, projection_mode, account_sid,
#       url, method, name, type, room_ended, ended_ttl
# projection_mode: 'set' (the room's creation defines it), 'fill' (only if none is known), ''.
_RECORD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then
  return 'duplicate'
end
if ARGV[7] == 'set' or (ARGV[7] == 'fill' and redis.call('EXISTS', KEYS[2]) == 0) then
  redis.call('HSET', KEYS[2], 'account_sid', ARGV[8], 'url', ARGV[9], 'method', ARGV[10],
             'room_name', ARGV[11], 'room_type', ARGV[12])
end
if ARGV[13] == '1' then
  redis.call('EXPIRE', KEYS[2], ARGV[14])
end
local room = redis.call('HMGET', KEYS[2], 'account_sid', 'url', 'method', 'room_name', 'room_type')
if not room[2] or room[2] == '' then
  return 'no-callback'
end
local item = cjson.decode(ARGV[3])
item['account_sid'] = room[1]
item['url'] = room[2]
item['method'] = room[3]
item['room_name'] = room[4]
item['room_type'] = room[5]
redis.call('HSET', KEYS[4], ARGV[1], cjson.encode(item))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], 'NX', ARGV[4], ARGV[6])
return 'queued'
"""

# KEYS: lease.  ARGV: owner, ttl_ms.  Take a free lease or extend our own.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: lease.  ARGV: owner
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: lease, queue, items, attempts, log, dead, due
# ARGV: owner, event_id, record_json, is_dead, log_max, now_ms, room_sid
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('LPUSH', KEYS[5], ARGV[3])
redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[5]) - 1)
if ARGV[4] == '1' then
  redis.call('LPUSH', KEYS[6], ARGV[3])
  redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[5]) - 1)
end
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[7], ARGV[7])
else
  redis.call('ZADD', KEYS[7], ARGV[6], ARGV[7])
end
return 1
"""

# KEYS: lease, attempts, due.  ARGV: owner, event_id, state_json, due_ms, room_sid
# Remember the failed try, schedule the next one, and free the room for whoever is due first.
_RESCHEDULE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: lease, queue, items, due.  ARGV: owner, event_id, now_ms, room_sid
# Drop a queue entry whose item is unreadable (it was logged), keeping the room's schedule right.
_DROP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[4], ARGV[4])
else
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
end
return 1
"""


class CallbackStore:
    def __init__(self, redis: Redis, log_max_entries: int) -> None:
        self._redis = redis
        self._log_max = max(1, log_max_entries)
        self._record = redis.register_script(_RECORD)
        self._lease = redis.register_script(_LEASE)
        self._release = redis.register_script(_RELEASE)
        self._finish = redis.register_script(_FINISH)
        self._reschedule = redis.register_script(_RESCHEDULE)
        self._drop = redis.register_script(_DROP)

    # Consuming --------------------------------------------------------------------------------
    async def record(
        self,
        *,
        event_id: str,
        room_sid: str,
        sequence_number: int,
        event_json: str,
        trace: dict[str, str],
        projection: RoomProjection | None,
        defines_room: bool,
        room_ended: bool,
        now_ms: int,
    ) -> str:
        """Queue a consumed event for delivery, once per event id.

        ``projection`` is the room as the event describes it; it replaces what is known when
        ``defines_room`` (the room's creation), otherwise it only fills in for a room not seen yet.
        Returns ``queued``, ``duplicate`` (seen before) or ``no-callback`` (the room has none).
        """
        item = json.dumps({"event": event_json, "trace": trace})
        args: list[Any] = [
            event_id,
            sequence_number,
            item,
            now_ms,
            SEEN_TTL_SECONDS,
            room_sid,
            ("set" if defines_room else "fill") if projection is not None else "",
            projection.account_sid if projection else "",
            (projection.url or "") if projection else "",
            projection.method if projection else "",
            projection.room_name if projection else "",
            projection.room_type if projection else "",
            "1" if room_ended else "0",
            ENDED_ROOM_TTL_SECONDS,
        ]
        keys = [
            seen_key(event_id),
            room_key(room_sid),
            queue_key(room_sid),
            items_key(room_sid),
            DUE_KEY,
        ]
        return str(await self._record(keys=keys, args=args))

    # Dispatching ------------------------------------------------------------------------------
    async def due_rooms(self, now_ms: int, limit: int) -> list[str]:
        rooms = await self._redis.zrangebyscore(DUE_KEY, "-inf", now_ms, start=0, num=limit)
        return [str(room) for room in rooms]

    async def next_due_ms(self) -> int | None:
        first = await self._redis.zrange(DUE_KEY, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def acquire(self, room_sid: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self._lease(keys=[lease_key(room_sid)], args=[owner, ttl_ms]))

    async def release(self, room_sid: str, owner: str) -> None:
        await self._release(keys=[lease_key(room_sid)], args=[owner])

    async def head(self, room_sid: str) -> tuple[str, str | None, AttemptState] | None:
        """The room's next callback: event id, raw item (None if missing), attempt state."""
        first = await self._redis.zrange(queue_key(room_sid), 0, 0)
        if not first:
            return None
        event_id = str(first[0])
        raw_item = await self._redis.hget(items_key(room_sid), event_id)
        raw_state = await self._redis.hget(attempts_key(room_sid), event_id)
        state = AttemptState.model_validate_json(raw_state) if raw_state else AttemptState()
        return event_id, (str(raw_item) if raw_item is not None else None), state

    async def finish(
        self, room_sid: str, owner: str, record: DeliveryRecord, now_ms: int
    ) -> bool:
        """Pop the head and log how it ended; False if the lease was lost meanwhile."""
        keys = [
            lease_key(room_sid),
            queue_key(room_sid),
            items_key(room_sid),
            attempts_key(room_sid),
            LOG_KEY,
            DEAD_KEY,
            DUE_KEY,
        ]
        args: list[Any] = [
            owner,
            record.event_id,
            record.model_dump_json(),
            "1" if record.outcome == "dead-letter" else "0",
            self._log_max,
            now_ms,
            room_sid,
        ]
        return bool(await self._finish(keys=keys, args=args))

    async def reschedule(
        self, room_sid: str, owner: str, event_id: str, state: AttemptState, due_ms: int
    ) -> bool:
        keys = [lease_key(room_sid), attempts_key(room_sid), DUE_KEY]
        args: list[Any] = [owner, event_id, state.model_dump_json(), due_ms, room_sid]
        return bool(await self._reschedule(keys=keys, args=args))

    async def drop(self, room_sid: str, owner: str, event_id: str, now_ms: int) -> bool:
        keys = [lease_key(room_sid), queue_key(room_sid), items_key(room_sid), DUE_KEY]
        return bool(await self._drop(keys=keys, args=[owner, event_id, now_ms, room_sid]))

    # Reading the log --------------------------------------------------------------------------
    async def deliveries(self, query: DeliveryQuery) -> list[DeliveryRecord]:
        """Newest first, filtered by account and room."""
        key = DEAD_KEY if query.kind == "dead-letters" else LOG_KEY
        limit = max(0, min(query.limit, self._log_max))
        found: list[DeliveryRecord] = []
        if limit == 0:
            return found
        for raw in await self._redis.lrange(key, 0, -1):
            record = DeliveryRecord.model_validate_json(raw)
            if query.account_sid and record.account_sid != query.account_sid:
                continue
            if query.room_sid and record.room_sid != query.room_sid:
                continue
            found.append(record)
            if len(found) >= limit:
                break
        return found
