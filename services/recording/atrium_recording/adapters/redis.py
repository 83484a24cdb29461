"""The recording service's records in Redis: its keys, its transaction, its queries.

Keys (all owned by the recording service; nothing outside this module spells them):
- ``atrium:recording:{RT}``: the RecordingInfo JSON of a recording (kept after DELETE, as Twilio
  keeps a deleted recording's metadata);
- ``atrium:recording:index:{account|room|participant|track}:{sid}``: keyset-paged indexes of the
  recordings of an account, room, participant (grouping SIDs) and track (source SID)
  (:mod:`atrium_shared.paging`);
- ``atrium:recording:processing``: set of the RT SIDs in ``processing`` (what the sweep reads);
- ``atrium:recording:room:{RM}``: the room as ``room-created`` (or the room service) told it;
- ``atrium:recording:room:{RM}:rules``: its RecordingRules JSON once set through REST;
- ``atrium:recording:room:{RM}:tracks``: hash MT SID -> LiveTrack JSON of its live tracks;
- ``atrium:recording:room:{RM}:active``: hash MT SID -> RT SID of the recordings writing now;
- ``atrium:recording:room:{RM}:version``: the version of its last RecordingCommand;
- ``atrium:recording:settings:{AC}``: an account's RecordingSettings JSON;
- ``atrium:recording:seen:{event id}``: a consumed event that was applied (expires).

A room's keys expire ``room_retention_seconds`` after it ended; recordings never expire.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_recording.domain import LiveTrack
from atrium_recording.ports import IndexScope
from atrium_shared.models import RoomInfo
from atrium_shared.paging import decode_cursor, encode_cursor, index_member, member_sid
from atrium_shared.recording_api import (
    ListRecordingsRequest,
    RecordingInfo,
    RecordingPage,
    RecordingRules,
    RecordingSettings,
)
from atrium_shared.unit_of_work import RedisTransaction

PREFIX = "atrium:recording:"
PROCESSING_KEY = f"{PREFIX}processing"
# A consumed event is redelivered within seconds (ack wait); a day is far beyond that.
SEEN_SECONDS = 24 * 3600
DEFAULT_ROOM_RETENTION_SECONDS = 7 * 24 * 3600
# How many index members a filtered page reads at a time.
SCAN_CHUNK = 200

RoomField = Literal["rules", "tracks", "active", "version"]
_ROOM_FIELDS: tuple[RoomField, ...] = ("rules", "tracks", "active", "version")


def recording_key(sid: str) -> str:
    return f"{PREFIX}{sid}"


def index_key(scope: IndexScope) -> str:
    kind, sid = scope
    return f"{PREFIX}index:{kind}:{sid}"


def room_key(sid: str, field: RoomField | None = None) -> str:
    base = f"{PREFIX}room:{sid}"
    return f"{base}:{field}" if field else base


def settings_key(account_sid: str) -> str:
    return f"{PREFIX}settings:{account_sid}"


def seen_key(event_id: str) -> str:
    return f"{PREFIX}seen:{event_id}"


def scopes_of(recording: RecordingInfo) -> list[IndexScope]:
    return [
        ("account", recording.account_sid),
        ("room", recording.room_sid),
        ("participant", recording.participant_sid),
        ("track", recording.source_sid),
    ]


# Reads, through the client or through a transaction's pipeline once it watches the keys --------
async def _read_recordings(reader: Redis | Pipeline, sids: Sequence[str]) -> list[RecordingInfo]:
    if not sids:
        return []
    raws = await reader.mget([recording_key(sid) for sid in sids])
    return [RecordingInfo.model_validate_json(raw) for raw in raws if raw]


async def _read_room(reader: Redis | Pipeline, sid: str) -> RoomInfo | None:
    raw = await reader.get(room_key(sid))
    return RoomInfo.model_validate_json(raw) if raw else None


async def _read_rules(reader: Redis | Pipeline, sid: str) -> RecordingRules | None:
    raw = await reader.get(room_key(sid, "rules"))
    return RecordingRules.model_validate_json(raw) if raw else None


async def _read_settings(reader: Redis | Pipeline, account_sid: str) -> RecordingSettings | None:
    raw = await reader.get(settings_key(account_sid))
    return RecordingSettings.model_validate_json(raw) if raw else None


class RedisRecordingTransaction(RedisTransaction):
    """Each read WATCHes the keys it reads first (which also puts the pipeline in immediate
    mode, so the read returns its value); each write is queued for the commit's MULTI."""

    def __init__(
        self, pipe: Pipeline, room_retention_seconds: int = DEFAULT_ROOM_RETENTION_SECONDS
    ) -> None:
        super().__init__(pipe)
        self._retention = room_retention_seconds

    # Reads --------------------------------------------------------------------------------------
    async def seen(self, event_id: str) -> bool:
        key = seen_key(event_id)
        await self.watch(key)
        return bool(await self.pipe.exists(key))

    async def room(self, room_sid: str) -> RoomInfo | None:
        await self.watch(room_key(room_sid))
        return await _read_room(self.pipe, room_sid)

    async def rules(self, room_sid: str) -> RecordingRules | None:
        await self.watch(room_key(room_sid, "rules"))
        return await _read_rules(self.pipe, room_sid)

    async def live_tracks(self, room_sid: str) -> dict[str, LiveTrack]:
        key = room_key(room_sid, "tracks")
        await self.watch(key)
        raws: dict[str, str] = await self.pipe.hgetall(key)
        return {sid: LiveTrack.model_validate_json(raw) for sid, raw in raws.items()}

    async def active(self, room_sid: str) -> dict[str, str]:
        key = room_key(room_sid, "active")
        await self.watch(key)
        return dict(await self.pipe.hgetall(key))

    async def recording(self, sid: str) -> RecordingInfo | None:
        found = await self.recordings([sid])
        return found[0] if found else None

    async def recordings(self, sids: Sequence[str]) -> list[RecordingInfo]:
        await self.watch(*(recording_key(sid) for sid in sids))
        return await _read_recordings(self.pipe, sids)

    async def settings(self, account_sid: str) -> RecordingSettings | None:
        await self.watch(settings_key(account_sid))
        return await _read_settings(self.pipe, account_sid)

    async def next_version(self, room_sid: str) -> int:
        key = room_key(room_sid, "version")
        await self.watch(key)
        current = await self.pipe.get(key)
        version = (int(current) if current is not None else 0) + 1
        self.stage(lambda p: p.set(key, version))
        return version

    # Staged writes ------------------------------------------------------------------------------
    def mark_seen(self, event_id: str) -> None:
        self.stage(lambda p: p.set(seen_key(event_id), 1, ex=SEEN_SECONDS))

    def save_room(self, room: RoomInfo) -> None:
        self.stage(lambda p: p.set(room_key(room.sid), room.model_dump_json()))

    def end_room(self, room: RoomInfo) -> None:
        retention = self._retention

        def write(p: Pipeline) -> None:
            p.set(room_key(room.sid), room.model_dump_json(), ex=retention)
            p.delete(room_key(room.sid, "tracks"), room_key(room.sid, "active"))
            for field in ("rules", "version"):
                p.expire(room_key(room.sid, field), retention)

        self.stage(write)

    def save_rules(self, rules: RecordingRules) -> None:
        key = room_key(rules.room_sid, "rules")
        self.stage(lambda p: p.set(key, rules.model_dump_json()))

    def add_live_track(self, live: LiveTrack) -> None:
        key = room_key(live.track.room_sid, "tracks")
        self.stage(lambda p: p.hset(key, live.track.sid, live.model_dump_json()))

    def remove_live_tracks(self, room_sid: str, track_sids: Sequence[str]) -> None:
        if track_sids:
            key = room_key(room_sid, "tracks")
            sids = list(track_sids)
            self.stage(lambda p: p.hdel(key, *sids))

    def activate(self, room_sid: str, track_sid: str, recording_sid: str) -> None:
        key = room_key(room_sid, "active")
        self.stage(lambda p: p.hset(key, track_sid, recording_sid))

    def deactivate(self, room_sid: str, track_sids: Sequence[str]) -> None:
        if track_sids:
            key = room_key(room_sid, "active")
            sids = list(track_sids)
            self.stage(lambda p: p.hdel(key, *sids))

    def add_recording(self, recording: RecordingInfo) -> None:
        member = index_member(recording.date_created, recording.sid)

        def write(p: Pipeline) -> None:
            p.set(recording_key(recording.sid), recording.model_dump_json())
            for scope in scopes_of(recording):
                p.zadd(index_key(scope), {member: 0})
            if recording.status == "processing":
                p.sadd(PROCESSING_KEY, recording.sid)

        self.stage(write)

    def save_recording(self, recording: RecordingInfo, previous: RecordingInfo) -> None:
        def write(p: Pipeline) -> None:
            p.set(recording_key(recording.sid), recording.model_dump_json())
            if recording.status != "processing" and previous.status == "processing":
                p.srem(PROCESSING_KEY, recording.sid)

        self.stage(write)

    def save_settings(self, settings: RecordingSettings) -> None:
        key = settings_key(settings.account_sid)
        self.stage(lambda p: p.set(key, settings.model_dump_json()))


class RedisRecordingQueries:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def recording(self, sid: str) -> RecordingInfo | None:
        found = await _read_recordings(self.redis, [sid])
        return found[0] if found else None

    async def room(self, room_sid: str) -> RoomInfo | None:
        return await _read_room(self.redis, room_sid)

    async def rules(self, room_sid: str) -> RecordingRules | None:
        return await _read_rules(self.redis, room_sid)

    async def settings(self, account_sid: str) -> RecordingSettings | None:
        return await _read_settings(self.redis, account_sid)

    async def processing(self) -> list[RecordingInfo]:
        sids = sorted(await self.redis.smembers(PROCESSING_KEY))
        found = await _read_recordings(self.redis, sids)
        return [r for r in found if r.status == "processing"]

    async def page(
        self,
        scope: IndexScope,
        request: ListRecordingsRequest,
        keep: Callable[[RecordingInfo], bool],
    ) -> RecordingPage:
        found, next_cursor, prev_cursor = await read_filtered_page(
            self.redis,
            index_key(scope),
            keep,
            created_on_or_after=request.created_after,
            created_before=request.created_before,
            page_size=request.page_size,
            cursor=request.cursor,
        )
        return RecordingPage(items=found, next_cursor=next_cursor, previous_cursor=prev_cursor)


async def read_filtered_page(
    redis: Redis,
    key: str,
    keep: Callable[[RecordingInfo], bool],
    *,
    created_on_or_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
    cursor: str | None,
) -> tuple[list[RecordingInfo], str | None, str | None]:
    """:func:`atrium_shared.paging.read_page` with a filter: the index is read a chunk at a time
    until a page of kept records is found, and the cursors are the page's edge members, so a page
    never depends on what was filtered out before it."""
    low = f"[{index_member(created_on_or_after, '')}" if created_on_or_after else "-"
    high = f"({index_member(created_before, '')}" if created_before else "+"
    direction, anchor = decode_cursor(cursor) if cursor else ("next", None)
    wanted = page_size + 1
    kept: list[tuple[str, RecordingInfo]] = []

    async def take(members: list[str]) -> None:
        records = {
            r.sid: r for r in await _read_recordings(redis, [member_sid(m) for m in members])
        }
        for member in members:
            record = records.get(member_sid(member))
            if record is not None and keep(record) and len(kept) < wanted:
                kept.append((member, record))

    if direction == "next":
        upper = high
        if anchor is not None and (high == "+" or anchor < high[1:]):
            upper = f"({anchor}"
        while len(kept) < wanted:
            members = await redis.zrange(
                key, upper, low, desc=True, bylex=True, offset=0, num=SCAN_CHUNK
            )
            await take(members)
            if len(members) < SCAN_CHUNK:
                break
            upper = f"({members[-1]}"
        has_more = len(kept) > page_size
        kept = kept[:page_size]
        has_before = anchor is not None
    else:
        lower = f"({anchor}"
        while len(kept) < wanted:
            members = await redis.zrange(key, lower, high, bylex=True, offset=0, num=SCAN_CHUNK)
            await take(members)
            if len(members) < SCAN_CHUNK:
                break
            lower = f"({members[-1]}"
        has_before = len(kept) > page_size
        kept = list(reversed(kept[:page_size]))
        has_more = True

    next_cursor = encode_cursor("next", kept[-1][0]) if kept and has_more else None
    prev_cursor = encode_cursor("prev", kept[0][0]) if kept and has_before else None
    return [record for _, record in kept], next_cursor, prev_cursor
