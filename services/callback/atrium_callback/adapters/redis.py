"""Redis: the callback service's keys (all under ``atrium:cb:``) and the atomic steps on them.

Per room: its projection (one :class:`RoomProjection` JSON value, kept only for rooms with a
StatusCallback), a queue of pending callbacks ordered by sequence number (a sorted set of event
ids) and the pending callbacks themselves (one :class:`PendingCallback` JSON value each: event,
trace and attempt state). Across rooms: a schedule (``due``: room -> when its head may be tried),
per-room leases so one dispatcher at a time delivers a room, and capped logs of finished
deliveries and dead letters.

Every step that must not be torn by a crash is one Lua script. The scripts move the JSON values
as they are and never look inside them; what to store is decided in Python.

This layout replaced an earlier one (room fields in a hash, each queued item carrying a copy of
them and the event as a string, attempt states apart). No deployment ever kept data in the
earlier layout, so nothing reads it: a Redis written by an older build is to be flushed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast, get_args

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import WatchError

from atrium_callback.domain import (
    IntakeOutcome,
    PendingCallback,
    ProjectionUpdate,
    QueueHead,
    anonymized,
    matches,
    projection_json,
)
from atrium_shared.callbacks import DeliveryQuery, DeliveryRecord

PREFIX = "atrium:cb:"
DUE_KEY = PREFIX + "due"
LOG_KEY = PREFIX + "log"
DEAD_KEY = PREFIX + "dead"
# Remember consumed event ids this long: JetStream redelivers within seconds to minutes.
SEEN_TTL_SECONDS = 7 * 24 * 3600
# An ended room's projection stays this long after its last event or try: late events (the
# participants' disconnections) and the retries of its queued callbacks still need it.
ENDED_ROOM_TTL_SECONDS = 24 * 3600


def seen_key(event_id: str) -> str:
    return f"{PREFIX}seen:{event_id}"


def room_key(room_sid: str) -> str:
    return f"{PREFIX}room:{room_sid}"


def queue_key(room_sid: str) -> str:
    return f"{PREFIX}queue:{room_sid}"


def pending_key(room_sid: str) -> str:
    return f"{PREFIX}pending:{room_sid}"


def lease_key(room_sid: str) -> str:
    return f"{PREFIX}lease:{room_sid}"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# Intake -------------------------------------------------------------------------------------

# KEYS: seen, room, queue, pending, due
# ARGV: event_id, sequence, pending_json, due_ms, seen_ttl, room_sid,
#       mode ('define' | 'fill' | ''), room_json ('' for none), ended ('1' | '0'), ended_ttl
# ProjectionUpdate.apply in Redis terms: 'define' sets the projection, or forgets it if the room
# has no StatusCallback; 'fill' sets it only where none is known.
_TAKE_IN = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[5]) then
  return 'duplicate'
end
if ARGV[7] == 'define' then
  if ARGV[8] == '' then
    redis.call('DEL', KEYS[2])
  else
    redis.call('SET', KEYS[2], ARGV[8])
  end
elseif ARGV[7] == 'fill' and ARGV[8] ~= '' then
  redis.call('SET', KEYS[2], ARGV[8], 'NX')
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 'no-callback'
end
if ARGV[9] == '1' then
  redis.call('EXPIRE', KEYS[2], ARGV[10])
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[5], 'NX', ARGV[4], ARGV[6])
return 'queued'
"""


class RedisIntakeStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._take_in = redis.register_script(_TAKE_IN)

    async def take_in(
        self, pending: PendingCallback, update: ProjectionUpdate, due_at: datetime
    ) -> IntakeOutcome:
        event = pending.event
        room = update.remembered
        mode = "define" if update.defines else ("fill" if room is not None else "")
        keys = [
            seen_key(event.event_id),
            room_key(event.room_sid),
            queue_key(event.room_sid),
            pending_key(event.room_sid),
            DUE_KEY,
        ]
        args: list[Any] = [
            event.event_id,
            event.sequence_number,
            pending.model_dump_json(),
            _ms(due_at),
            SEEN_TTL_SECONDS,
            event.room_sid,
            mode,
            projection_json.dump_json(room).decode() if room is not None else "",
            "1" if update.ended else "0",
            ENDED_ROOM_TTL_SECONDS,
        ]
        outcome = str(await self._take_in(keys=keys, args=args))
        if outcome not in get_args(IntakeOutcome):
            raise RuntimeError(f"unexpected intake outcome {outcome!r}")
        return cast(IntakeOutcome, outcome)

    async def anonymize(self, room_sid: str, participant_sid: str) -> int:
        # Decided in Python (the scripts never look inside the values): WATCH the room's
        # pending callbacks, so a retry rescheduled meanwhile is rewritten, not overwritten.
        key = pending_key(room_sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    changed: dict[str, str] = {}
                    for event_id, raw in (await pipe.hgetall(key)).items():
                        try:
                            pending = PendingCallback.model_validate_json(raw)
                        except ValidationError:
                            continue  # unreadable: the dispatcher drops it
                        renamed = anonymized(pending, participant_sid)
                        if renamed is not None:
                            changed[str(event_id)] = renamed.model_dump_json()
                    if not changed:
                        await pipe.reset()
                        return 0
                    pipe.multi()
                    pipe.hset(key, mapping=changed)
                    await pipe.execute()
                    return len(changed)
                except WatchError:
                    continue


# Dispatching --------------------------------------------------------------------------------

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

# KEYS: queue, pending, room.  The head's event id, its pending callback and its room's
# projection (false where missing).
_HEAD = """
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
if #first == 0 then
  return nil
end
return {first[1], redis.call('HGET', KEYS[2], first[1]), redis.call('GET', KEYS[3])}
"""

# An ended room's projection (the only ones with a time to live) lives on while its callbacks
# are tried. KEYS[room_index]: room.  ARGV[ttl_index]: ended_ttl
_KEEP_ENDED_ROOM = """
if redis.call('TTL', KEYS[{room}]) > 0 then
  redis.call('EXPIRE', KEYS[{room}], ARGV[{ttl}])
end
"""

# KEYS: lease, queue, pending, log, dead, due, room
# ARGV: owner, event_id, record_json ('' for none: a dropped head), is_dead, log_max, now_ms,
#       room_sid, ended_ttl
_FINISH = (
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[3])
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)
  if ARGV[4] == '1' then
    redis.call('LPUSH', KEYS[5], ARGV[3])
    redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[5]) - 1)
  end
end
if redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[6], ARGV[7])
else
  redis.call('ZADD', KEYS[6], ARGV[6], ARGV[7])
end
"""
    + _KEEP_ENDED_ROOM.format(room=7, ttl=8)
    + "return 1\n"
)

# KEYS: lease, pending, due, room.  ARGV: owner, event_id, pending_json, due_ms, room_sid,
# ended_ttl.  Remember the failed try, schedule the next one, and free the room for whoever is
# due first.
_RESCHEDULE = (
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('DEL', KEYS[1])
"""
    + _KEEP_ENDED_ROOM.format(room=4, ttl=6)
    + "return 1\n"
)


class RedisCallbackQueue:
    def __init__(self, redis: Redis, log_max_entries: int) -> None:
        self._redis = redis
        self._log_max = max(1, log_max_entries)
        self._lease = redis.register_script(_LEASE)
        self._release = redis.register_script(_RELEASE)
        self._head = redis.register_script(_HEAD)
        self._finish = redis.register_script(_FINISH)
        self._reschedule = redis.register_script(_RESCHEDULE)

    async def due_rooms(self, now: datetime, limit: int) -> list[str]:
        rooms = await self._redis.zrangebyscore(DUE_KEY, "-inf", _ms(now), start=0, num=limit)
        return [str(room) for room in rooms]

    async def acquire(self, room_sid: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self._lease(keys=[lease_key(room_sid)], args=[owner, ttl_ms]))

    async def release(self, room_sid: str, owner: str) -> None:
        await self._release(keys=[lease_key(room_sid)], args=[owner])

    async def head(self, room_sid: str) -> QueueHead | None:
        found = await self._head(
            keys=[queue_key(room_sid), pending_key(room_sid), room_key(room_sid)]
        )
        if not found:
            return None
        raw_id, raw_pending, raw_room = found
        event_id = str(raw_id)
        if raw_room is None:
            return QueueHead(event_id, None, None, "the room's projection is gone")
        if raw_pending is None:
            return QueueHead(event_id, None, None, "pending callback missing")
        try:
            pending = PendingCallback.model_validate_json(raw_pending)
            room = projection_json.validate_json(raw_room)
        except ValidationError as exc:
            return QueueHead(event_id, None, None, str(exc)[:500])
        return QueueHead(event_id, pending, room)

    async def finish(
        self, room_sid: str, owner: str, record: DeliveryRecord, now: datetime
    ) -> bool:
        dead = record.outcome == "dead-letter"
        value = record.model_dump_json()
        return await self._pop(room_sid, owner, record.event_id, value, dead, now)

    async def drop(self, room_sid: str, owner: str, event_id: str, now: datetime) -> bool:
        return await self._pop(room_sid, owner, event_id, "", False, now)

    async def _pop(
        self, room_sid: str, owner: str, event_id: str, record: str, dead: bool, now: datetime
    ) -> bool:
        keys = [
            lease_key(room_sid),
            queue_key(room_sid),
            pending_key(room_sid),
            LOG_KEY,
            DEAD_KEY,
            DUE_KEY,
            room_key(room_sid),
        ]
        args: list[Any] = [
            owner,
            event_id,
            record,
            "1" if dead else "0",
            self._log_max,
            _ms(now),
            room_sid,
            ENDED_ROOM_TTL_SECONDS,
        ]
        return bool(await self._finish(keys=keys, args=args))

    async def reschedule(
        self, room_sid: str, owner: str, pending: PendingCallback, due_at: datetime
    ) -> bool:
        keys = [lease_key(room_sid), pending_key(room_sid), DUE_KEY, room_key(room_sid)]
        args: list[Any] = [
            owner,
            pending.event.event_id,
            pending.model_dump_json(),
            _ms(due_at),
            room_sid,
            ENDED_ROOM_TTL_SECONDS,
        ]
        return bool(await self._reschedule(keys=keys, args=args))


# Reading the log ----------------------------------------------------------------------------


class RedisDeliveryLog:
    def __init__(self, redis: Redis, log_max_entries: int) -> None:
        self._redis = redis
        self._log_max = max(1, log_max_entries)

    async def deliveries(self, query: DeliveryQuery) -> list[DeliveryRecord]:
        key = DEAD_KEY if query.kind == "dead-letters" else LOG_KEY
        limit = max(0, min(query.limit, self._log_max))
        found: list[DeliveryRecord] = []
        if limit == 0:
            return found
        for raw in await self._redis.lrange(key, 0, -1):
            record = DeliveryRecord.model_validate_json(raw)
            if matches(record, query):
                found.append(record)
                if len(found) >= limit:
                    break
        return found
