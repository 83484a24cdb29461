"""Track records in Redis.

Keys (all owned by the track service):
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

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.paging import index_member, member_sid, read_page
from atrium_shared.track_api import SubscribeRule, SubscribeRules

# A left participant's marker outlives any late call from a worker about it.
LEFT_MARKER_SECONDS = 24 * 3600


def track_key(sid: str) -> str:
    return f"atrium:track:{sid}"


def subscribers_key(track_sid: str) -> str:
    return f"atrium:track:{track_sid}:subscribers"


def participant_key(sid: str) -> str:
    return f"atrium:track:participant:{sid}"


def client_ids_key(participant_sid: str) -> str:
    return f"atrium:track:participant:{participant_sid}:client-ids"


def names_key(participant_sid: str) -> str:
    return f"atrium:track:participant:{participant_sid}:names"


def subscribed_key(participant_sid: str) -> str:
    return f"atrium:track:participant:{participant_sid}:subscribed"


def rules_key(participant_sid: str) -> str:
    return f"atrium:track:participant:{participant_sid}:rules"


def left_key(participant_sid: str) -> str:
    return f"atrium:track:participant:{participant_sid}:left"


def room_participants_key(room_sid: str) -> str:
    return f"atrium:track:room:{room_sid}:participants"


def room_tracks_key(room_sid: str) -> str:
    return f"atrium:track:room:{room_sid}:tracks"


def _index_key(participant_sid: str, which: str) -> str:
    return f"atrium:track:participant:{participant_sid}:index:{which}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def member_since(member: str) -> datetime:
    """When the subscription an index member stands for started."""
    return _EPOCH + timedelta(microseconds=int(member.split(":", 1)[0]))


class TrackRepository:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    # Reads; the static ones also read through a WATCHing pipeline -------------------------------
    @staticmethod
    async def load(reader: Redis | Pipeline, sid: str) -> TrackInfo | None:
        raw = await reader.get(track_key(sid))
        return TrackInfo.model_validate_json(raw) if raw else None

    @staticmethod
    async def load_many(reader: Redis | Pipeline, sids: list[str]) -> list[TrackInfo]:
        if not sids:
            return []
        raws = await reader.mget([track_key(sid) for sid in sids])
        return [TrackInfo.model_validate_json(raw) for raw in raws if raw]

    @staticmethod
    async def load_participant(reader: Redis | Pipeline, sid: str) -> ParticipantInfo | None:
        raw = await reader.get(participant_key(sid))
        return ParticipantInfo.model_validate_json(raw) if raw else None

    @staticmethod
    async def client_ids(reader: Redis | Pipeline, participant_sid: str) -> dict[str, str]:
        return dict(await reader.hgetall(client_ids_key(participant_sid)))

    @staticmethod
    async def names(reader: Redis | Pipeline, participant_sid: str) -> dict[str, str]:
        return dict(await reader.hgetall(names_key(participant_sid)))

    @staticmethod
    async def subscriptions(reader: Redis | Pipeline, participant_sid: str) -> dict[str, str]:
        """MT SID -> index member of each track the participant receives."""
        return dict(await reader.hgetall(subscribed_key(participant_sid)))

    @staticmethod
    async def subscription_member(
        reader: Redis | Pipeline, participant_sid: str, track_sid: str
    ) -> str | None:
        value = await reader.hget(subscribed_key(participant_sid), track_sid)
        return str(value) if value is not None else None

    @staticmethod
    async def subscribers(reader: Redis | Pipeline, track_sid: str) -> set[str]:
        return set(await reader.smembers(subscribers_key(track_sid)))

    @staticmethod
    async def room_participants(reader: Redis | Pipeline, room_sid: str) -> set[str]:
        return set(await reader.smembers(room_participants_key(room_sid)))

    @staticmethod
    async def room_tracks(reader: Redis | Pipeline, room_sid: str) -> list[str]:
        return sorted(await reader.smembers(room_tracks_key(room_sid)))

    @staticmethod
    async def rules(reader: Redis | Pipeline, participant_sid: str) -> SubscribeRules | None:
        """The participant's SubscribeRules, or None when never set."""
        raw = await reader.get(rules_key(participant_sid))
        return SubscribeRules.model_validate_json(raw) if raw else None

    @staticmethod
    async def rules_of(
        reader: Redis | Pipeline, participant_sids: list[str]
    ) -> dict[str, tuple[list[SubscribeRule], int]]:
        """Rules and version of each participant that has set rules."""
        if not participant_sids:
            return {}
        raws = await reader.mget([rules_key(sid) for sid in participant_sids])
        found: dict[str, tuple[list[SubscribeRule], int]] = {}
        for sid, raw in zip(participant_sids, raws, strict=True):
            if raw:
                rules = SubscribeRules.model_validate_json(raw)
                found[sid] = (rules.rules, rules.version)
        return found

    @staticmethod
    async def identities(reader: Redis | Pipeline, participant_sids: set[str]) -> dict[str, str]:
        """PA SID -> identity of publishers (their record is written when they publish)."""
        ordered = sorted(participant_sids)
        if not ordered:
            return {}
        raws = await reader.mget([participant_key(sid) for sid in ordered])
        return {
            sid: ParticipantInfo.model_validate_json(raw).identity
            for sid, raw in zip(ordered, raws, strict=True) if raw
        }

    @staticmethod
    async def has_left(reader: Redis | Pipeline, participant_sid: str) -> bool:
        return bool(await reader.exists(left_key(participant_sid)))

    async def get(self, sid: str) -> TrackInfo | None:
        return await self.load(self.redis, sid)

    async def sid_by_name(self, participant_sid: str, name: str) -> str | None:
        value = await self.redis.hget(names_key(participant_sid), name)
        return str(value) if value is not None else None

    async def subscribed_since(self, participant_sid: str, track_sid: str) -> datetime | None:
        member = await self.subscription_member(self.redis, participant_sid, track_sid)
        return member_since(member) if member is not None else None

    async def published_page(
        self, participant_sid: str, **window: object
    ) -> tuple[list[TrackInfo], str | None, str | None]:
        members, next_cursor, prev_cursor = await read_page(
            self.redis, _index_key(participant_sid, "published"), **window  # type: ignore[arg-type]
        )
        found = [await self.get(member_sid(m)) for m in members]
        return [t for t in found if t is not None], next_cursor, prev_cursor

    async def subscribed_page(
        self, participant_sid: str, **window: object
    ) -> tuple[list[str], str | None, str | None]:
        members, next_cursor, prev_cursor = await read_page(
            self.redis, _index_key(participant_sid, "subscribed"), **window  # type: ignore[arg-type]
        )
        return [member_sid(m) for m in members], next_cursor, prev_cursor

    # Writes, queued on the MULTI pipeline of outbox.commit --------------------------------------
    @staticmethod
    def write_participant(pipe: Pipeline, participant: ParticipantInfo) -> None:
        pipe.set(participant_key(participant.sid), participant.model_dump_json())

    @staticmethod
    def write_joined(pipe: Pipeline, room_sid: str, participant_sid: str) -> None:
        pipe.sadd(room_participants_key(room_sid), participant_sid)

    @staticmethod
    def write_published(pipe: Pipeline, track: TrackInfo, client_id: str) -> None:
        pipe.set(track_key(track.sid), track.model_dump_json())
        pipe.hset(client_ids_key(track.participant_sid), client_id, track.sid)
        pipe.hset(names_key(track.participant_sid), track.name, track.sid)
        pipe.zadd(
            _index_key(track.participant_sid, "published"),
            {index_member(track.date_created, track.sid): 0},
        )
        pipe.sadd(room_tracks_key(track.room_sid), track.sid)

    @staticmethod
    def write_updated(pipe: Pipeline, track: TrackInfo) -> None:
        pipe.set(track_key(track.sid), track.model_dump_json())

    @staticmethod
    def write_unpublished(
        pipe: Pipeline,
        track: TrackInfo,
        client_id: str | None,
        subscriptions: dict[str, str],
    ) -> None:
        """Remove a published track and every subscription to it (subscriber -> index member)."""
        pipe.delete(track_key(track.sid), subscribers_key(track.sid))
        if client_id is not None:
            pipe.hdel(client_ids_key(track.participant_sid), client_id)
        pipe.hdel(names_key(track.participant_sid), track.name)
        pipe.zrem(
            _index_key(track.participant_sid, "published"),
            index_member(track.date_created, track.sid),
        )
        pipe.srem(room_tracks_key(track.room_sid), track.sid)
        for subscriber, member in subscriptions.items():
            pipe.hdel(subscribed_key(subscriber), track.sid)
            pipe.zrem(_index_key(subscriber, "subscribed"), member)

    @staticmethod
    def write_subscribed(
        pipe: Pipeline, subscriber_sid: str, track_sid: str, since: datetime
    ) -> None:
        member = index_member(since, track_sid)
        pipe.hset(subscribed_key(subscriber_sid), track_sid, member)
        pipe.zadd(_index_key(subscriber_sid, "subscribed"), {member: 0})
        pipe.sadd(subscribers_key(track_sid), subscriber_sid)

    @staticmethod
    def write_unsubscribed(
        pipe: Pipeline, subscriber_sid: str, track_sid: str, member: str
    ) -> None:
        pipe.hdel(subscribed_key(subscriber_sid), track_sid)
        pipe.zrem(_index_key(subscriber_sid, "subscribed"), member)
        pipe.srem(subscribers_key(track_sid), subscriber_sid)

    @staticmethod
    def write_rules(pipe: Pipeline, rules: SubscribeRules) -> None:
        pipe.set(rules_key(rules.participant_sid), rules.model_dump_json())

    @staticmethod
    def write_left(pipe: Pipeline, room_sid: str, participant_sid: str) -> None:
        """Forget a participant that left (its tracks and subscriptions are removed apart)."""
        pipe.srem(room_participants_key(room_sid), participant_sid)
        pipe.delete(
            participant_key(participant_sid),
            client_ids_key(participant_sid),
            names_key(participant_sid),
            subscribed_key(participant_sid),
            _index_key(participant_sid, "published"),
            _index_key(participant_sid, "subscribed"),
            rules_key(participant_sid),
        )
        pipe.set(left_key(participant_sid), 1, ex=LEFT_MARKER_SECONDS)
