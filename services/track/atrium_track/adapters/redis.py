"""The track service's records in Redis: its keys, its transaction, its queries.

Keys (all owned by the track service; nothing outside this module spells them):
- ``atrium:track:{sid}``: the TrackInfo JSON of a published track (deleted when unpublished);
- ``atrium:track:{sid}:subscribers``: set of PA SIDs that receive it;
- ``atrium:track:participant:{pa}``: the publisher's ParticipantInfo, as events carry it;
- ``atrium:track:participant:{pa}:client-ids``: hash SDK track id -> MT SID (idempotent publish);
- ``atrium:track:participant:{pa}:names``: hash name -> MT SID (unique names, fetch by name);
- ``atrium:track:participant:{pa}:subscribed``: hash MT SID -> its member in the subscribed
  index (which starts with the subscription's start);
- ``atrium:track:participant:{pa}:index:{published|subscribed}``: keyset-paged indexes
  (:mod:`atrium_shared.paging`);
- ``atrium:track:participant:{pa}:left``: a participant that left; it cannot come back;
- ``atrium:track:participant:{pa}:rules``: its SubscribeRules JSON (absent: the default);
- ``atrium:track:room:{room}:participants``: set of PA SIDs that joined and have not left;
- ``atrium:track:room:{room}:tracks``: set of MT SIDs published in the room.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.paging import index_member, member_sid, read_page
from atrium_shared.track_api import SubscribeRules
from atrium_shared.unit_of_work import RedisTransaction
from atrium_track.ports import PageWindow, SidPage, TrackIndex

# A left participant's marker outlives any late call from a worker about it.
LEFT_MARKER_SECONDS = 24 * 3600

ParticipantField = Literal[
    "client-ids", "names", "subscribed", "left", "rules", "index:published", "index:subscribed"
]
_INDEX_FIELD: dict[TrackIndex, ParticipantField] = {
    "published": "index:published",
    "subscribed": "index:subscribed",
}
# What a participant that left no longer has (the left marker is what it gets instead).
_FORGOTTEN_ON_LEAVE: tuple[ParticipantField, ...] = (
    "client-ids",
    "names",
    "subscribed",
    "rules",
    "index:published",
    "index:subscribed",
)


def track_key(sid: str, field: Literal["subscribers"] | None = None) -> str:
    return f"atrium:track:{sid}:{field}" if field else f"atrium:track:{sid}"


def participant_key(sid: str, field: ParticipantField | None = None) -> str:
    base = f"atrium:track:participant:{sid}"
    return f"{base}:{field}" if field else base


def room_key(sid: str, field: Literal["participants", "tracks"]) -> str:
    return f"atrium:track:room:{sid}:{field}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def member_since(member: str) -> datetime:
    """When the subscription an index member stands for started."""
    return _EPOCH + timedelta(microseconds=int(member.split(":", 1)[0]))


# Reads, through the client or through a transaction's pipeline once it watches the keys --------
async def _read_track(reader: Redis | Pipeline, sid: str) -> TrackInfo | None:
    raw = await reader.get(track_key(sid))
    return TrackInfo.model_validate_json(raw) if raw else None


async def _read_tracks(reader: Redis | Pipeline, sids: Sequence[str]) -> list[TrackInfo]:
    if not sids:
        return []
    raws = await reader.mget([track_key(sid) for sid in sids])
    return [TrackInfo.model_validate_json(raw) for raw in raws if raw]


async def _read_rules(reader: Redis | Pipeline, participant_sid: str) -> SubscribeRules | None:
    raw = await reader.get(participant_key(participant_sid, "rules"))
    return SubscribeRules.model_validate_json(raw) if raw else None


async def _read_member(reader: Redis | Pipeline, subscriber_sid: str, track_sid: str) -> str | None:
    value = await reader.hget(participant_key(subscriber_sid, "subscribed"), track_sid)
    return str(value) if value is not None else None


class RedisTrackTransaction(RedisTransaction):
    """Each read WATCHes the keys it reads first (which also puts the pipeline in immediate
    mode, so the read returns its value); each write is queued for the commit's MULTI."""

    def __init__(self, pipe: Pipeline) -> None:
        super().__init__(pipe)
        # The index members of the subscriptions read: ending one removes exactly that member.
        self._members: dict[tuple[str, str], str] = {}

    # Reads --------------------------------------------------------------------------------------
    async def has_left(self, participant_sid: str) -> bool:
        key = participant_key(participant_sid, "left")
        await self.watch(key)
        return bool(await self.pipe.exists(key))

    async def client_ids(self, participant_sid: str) -> dict[str, str]:
        key = participant_key(participant_sid, "client-ids")
        await self.watch(key)
        return dict(await self.pipe.hgetall(key))

    async def track_names(self, participant_sid: str) -> set[str]:
        key = participant_key(participant_sid, "names")
        await self.watch(key)
        return set(await self.pipe.hkeys(key))

    async def track(self, sid: str) -> TrackInfo | None:
        await self.watch(track_key(sid))
        return await _read_track(self.pipe, sid)

    async def tracks(self, sids: Sequence[str]) -> list[TrackInfo]:
        await self.watch(*(track_key(sid) for sid in sids))
        return await _read_tracks(self.pipe, sids)

    async def participant(self, sid: str) -> ParticipantInfo | None:
        await self.watch(participant_key(sid))
        raw = await self.pipe.get(participant_key(sid))
        return ParticipantInfo.model_validate_json(raw) if raw else None

    async def identities(self, participant_sids: Iterable[str]) -> dict[str, str]:
        ordered = sorted(set(participant_sids))
        if not ordered:
            return {}
        keys = [participant_key(sid) for sid in ordered]
        await self.watch(*keys)
        raws = await self.pipe.mget(keys)
        return {
            sid: ParticipantInfo.model_validate_json(raw).identity
            for sid, raw in zip(ordered, raws, strict=True)
            if raw
        }

    async def room_participants(self, room_sid: str) -> set[str]:
        key = room_key(room_sid, "participants")
        await self.watch(key)
        return set(await self.pipe.smembers(key))

    async def room_tracks(self, room_sid: str) -> list[TrackInfo]:
        key = room_key(room_sid, "tracks")
        await self.watch(key)
        return await self.tracks(sorted(await self.pipe.smembers(key)))

    async def rules(self, participant_sid: str) -> SubscribeRules | None:
        await self.watch(participant_key(participant_sid, "rules"))
        return await _read_rules(self.pipe, participant_sid)

    async def rules_of(self, participant_sids: Sequence[str]) -> dict[str, SubscribeRules]:
        if not participant_sids:
            return {}
        keys = [participant_key(sid, "rules") for sid in participant_sids]
        await self.watch(*keys)
        raws = await self.pipe.mget(keys)
        return {
            sid: SubscribeRules.model_validate_json(raw)
            for sid, raw in zip(participant_sids, raws, strict=True)
            if raw
        }

    async def subscriptions(self, participant_sid: str) -> dict[str, datetime]:
        key = participant_key(participant_sid, "subscribed")
        await self.watch(key)
        members: dict[str, str] = dict(await self.pipe.hgetall(key))
        for track_sid, member in members.items():
            self._members[participant_sid, track_sid] = member
        return {track_sid: member_since(member) for track_sid, member in members.items()}

    async def subscribed_since(self, subscriber_sid: str, track_sid: str) -> datetime | None:
        await self.watch(participant_key(subscriber_sid, "subscribed"))
        member = await _read_member(self.pipe, subscriber_sid, track_sid)
        if member is None:
            return None
        self._members[subscriber_sid, track_sid] = member
        return member_since(member)

    async def subscribers(self, track_sid: str) -> set[str]:
        key = track_key(track_sid, "subscribers")
        await self.watch(key)
        return {
            subscriber
            for subscriber in await self.pipe.smembers(key)
            if await self.subscribed_since(subscriber, track_sid) is not None
        }

    # Staged writes ------------------------------------------------------------------------------
    def save_participant(self, participant: ParticipantInfo) -> None:
        self.stage(lambda p: p.set(participant_key(participant.sid), participant.model_dump_json()))

    def enter_room(self, room_sid: str, participant_sid: str) -> None:
        self.stage(lambda p: p.sadd(room_key(room_sid, "participants"), participant_sid))

    def add_track(self, track: TrackInfo, client_id: str) -> None:
        publisher = track.participant_sid

        def write(p: Pipeline) -> None:
            p.set(track_key(track.sid), track.model_dump_json())
            p.hset(participant_key(publisher, "client-ids"), client_id, track.sid)
            p.hset(participant_key(publisher, "names"), track.name, track.sid)
            p.zadd(
                participant_key(publisher, "index:published"),
                {index_member(track.date_created, track.sid): 0},
            )
            p.sadd(room_key(track.room_sid, "tracks"), track.sid)

        self.stage(write)

    def update_track(self, track: TrackInfo) -> None:
        self.stage(lambda p: p.set(track_key(track.sid), track.model_dump_json()))

    def remove_track(self, track: TrackInfo, client_id: str | None) -> None:
        publisher = track.participant_sid

        def write(p: Pipeline) -> None:
            p.delete(track_key(track.sid), track_key(track.sid, "subscribers"))
            if client_id is not None:
                p.hdel(participant_key(publisher, "client-ids"), client_id)
            p.hdel(participant_key(publisher, "names"), track.name)
            p.zrem(
                participant_key(publisher, "index:published"),
                index_member(track.date_created, track.sid),
            )
            p.srem(room_key(track.room_sid, "tracks"), track.sid)

        self.stage(write)

    def subscribe(self, subscriber_sid: str, track_sid: str, since: datetime) -> None:
        member = index_member(since, track_sid)

        def write(p: Pipeline) -> None:
            p.hset(participant_key(subscriber_sid, "subscribed"), track_sid, member)
            p.zadd(participant_key(subscriber_sid, "index:subscribed"), {member: 0})
            p.sadd(track_key(track_sid, "subscribers"), subscriber_sid)

        self.stage(write)

    def unsubscribe(self, subscriber_sid: str, track_sid: str) -> None:
        member = self._members[subscriber_sid, track_sid]

        def write(p: Pipeline) -> None:
            p.hdel(participant_key(subscriber_sid, "subscribed"), track_sid)
            p.zrem(participant_key(subscriber_sid, "index:subscribed"), member)
            p.srem(track_key(track_sid, "subscribers"), subscriber_sid)

        self.stage(write)

    def save_rules(self, rules: SubscribeRules) -> None:
        key = participant_key(rules.participant_sid, "rules")
        self.stage(lambda p: p.set(key, rules.model_dump_json()))

    def forget_participant(self, room_sid: str, participant_sid: str) -> None:
        def write(p: Pipeline) -> None:
            p.srem(room_key(room_sid, "participants"), participant_sid)
            p.delete(
                participant_key(participant_sid),
                *(participant_key(participant_sid, field) for field in _FORGOTTEN_ON_LEAVE),
            )
            p.set(participant_key(participant_sid, "left"), 1, ex=LEFT_MARKER_SECONDS)

        self.stage(write)


class RedisTrackQueries:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def track(self, sid: str) -> TrackInfo | None:
        return await _read_track(self.redis, sid)

    async def tracks(self, sids: Sequence[str]) -> list[TrackInfo]:
        return await _read_tracks(self.redis, sids)

    async def sid_by_name(self, participant_sid: str, name: str) -> str | None:
        value = await self.redis.hget(participant_key(participant_sid, "names"), name)
        return str(value) if value is not None else None

    async def subscribed_since(self, subscriber_sid: str, track_sid: str) -> datetime | None:
        member = await _read_member(self.redis, subscriber_sid, track_sid)
        return member_since(member) if member is not None else None

    async def rules(self, participant_sid: str) -> SubscribeRules | None:
        return await _read_rules(self.redis, participant_sid)

    async def page(self, participant_sid: str, index: TrackIndex, window: PageWindow) -> SidPage:
        members, next_cursor, prev_cursor = await read_page(
            self.redis,
            participant_key(participant_sid, _INDEX_FIELD[index]),
            created_on_or_after=window.created_on_or_after,
            created_before=window.created_before,
            page_size=window.page_size,
            cursor=window.cursor,
        )
        return [member_sid(m) for m in members], next_cursor, prev_cursor
