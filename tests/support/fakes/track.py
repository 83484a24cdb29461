"""In-memory fakes of the track service's ports.

The state is laid out like the Redis adapter's keys (``track:{sid}``, ``participant:{pa}:rules``,
``room:{room}:tracks``...), one value a key, so the unit of work here can do what WATCH does there:
:class:`FakeTrackUnitOfWork` reruns a decision when a key it read was committed by another writer
meanwhile, and commits only the keys a decision wrote. :meth:`FakeTrackUnitOfWork.interleave` puts
another use case between a decision and its commit, which is how a race is written in a unit test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from faststream.nats import NatsBroker

from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.paging import index_member, member_sid
from atrium_shared.settings import Settings
from atrium_shared.track_api import SubscribeRules, SubscriptionsChanged
from atrium_track.bootstrap import TrackService, bootstrap
from atrium_track.ports import PageWindow, SidPage, TrackIndex
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.paging import page_members
from tests.support.fakes.unit_of_work import KeyedFakeTransaction, OptimisticFakeUnitOfWork


def track_key(sid: str) -> str:
    return f"track:{sid}"


def subscribers_key(track_sid: str) -> str:
    return f"track:{track_sid}:subscribers"


def participant_key(sid: str, field: str = "") -> str:
    return f"participant:{sid}:{field}" if field else f"participant:{sid}"


def room_key(sid: str, field: str) -> str:
    return f"room:{sid}:{field}"


class FakeTrackTransaction(KeyedFakeTransaction):
    """TrackTransaction on the working copy."""

    # Like the Redis commands the adapter queues: change one container without reading it.
    def _hset(self, key: str, field: str, value: object) -> None:
        self._put(key, {**self.state.get(key, {}), field: value})

    def _hdel(self, key: str, field: str) -> None:
        self._put(key, {k: v for k, v in self.state.get(key, {}).items() if k != field})

    def _sadd(self, key: str, member: str) -> None:
        self._put(key, self.state.get(key, set()) | {member})

    def _srem(self, key: str, member: str) -> None:
        self._put(key, self.state.get(key, set()) - {member})

    def _delete(self, *keys: str) -> None:
        for key in keys:
            self.written_keys.add(key)
            self.state.pop(key, None)

    # Reads --------------------------------------------------------------------------------------
    async def has_left(self, participant_sid: str) -> bool:
        return self._read(participant_key(participant_sid, "left"), False)

    async def client_ids(self, participant_sid: str) -> dict[str, str]:
        return self._read(participant_key(participant_sid, "client-ids"), {})

    async def track_names(self, participant_sid: str) -> set[str]:
        return set(self._read(participant_key(participant_sid, "names"), {}))

    async def track(self, sid: str) -> TrackInfo | None:
        return self._read(track_key(sid), None)

    async def tracks(self, sids: Sequence[str]) -> list[TrackInfo]:
        found = [await self.track(sid) for sid in sids]
        return [track for track in found if track is not None]

    async def participant(self, sid: str) -> ParticipantInfo | None:
        return self._read(participant_key(sid), None)

    async def identities(self, participant_sids: Iterable[str]) -> dict[str, str]:
        found = {sid: await self.participant(sid) for sid in participant_sids}
        return {sid: p.identity for sid, p in found.items() if p is not None}

    async def room_participants(self, room_sid: str) -> set[str]:
        return self._read(room_key(room_sid, "participants"), set())

    async def room_tracks(self, room_sid: str) -> list[TrackInfo]:
        return await self.tracks(sorted(self._read(room_key(room_sid, "tracks"), set())))

    async def rules(self, participant_sid: str) -> SubscribeRules | None:
        return self._read(participant_key(participant_sid, "rules"), None)

    async def rules_of(self, participant_sids: Sequence[str]) -> dict[str, SubscribeRules]:
        found = {sid: await self.rules(sid) for sid in participant_sids}
        return {sid: rules for sid, rules in found.items() if rules is not None}

    async def subscriptions(self, participant_sid: str) -> dict[str, datetime]:
        return self._read(participant_key(participant_sid, "subscribed"), {})

    async def subscribed_since(self, subscriber_sid: str, track_sid: str) -> datetime | None:
        return (await self.subscriptions(subscriber_sid)).get(track_sid)

    async def subscribers(self, track_sid: str) -> set[str]:
        candidates: set[str] = self._read(subscribers_key(track_sid), set())
        return {s for s in candidates if await self.subscribed_since(s, track_sid) is not None}

    # Staged writes (here: on the working copy, committed by the unit of work) -------------------
    def save_participant(self, participant: ParticipantInfo) -> None:
        self._put(participant_key(participant.sid), participant)

    def enter_room(self, room_sid: str, participant_sid: str) -> None:
        self._sadd(room_key(room_sid, "participants"), participant_sid)

    def add_track(self, track: TrackInfo, client_id: str) -> None:
        self._put(track_key(track.sid), track)
        self._hset(participant_key(track.participant_sid, "client-ids"), client_id, track.sid)
        self._hset(participant_key(track.participant_sid, "names"), track.name, track.sid)
        self._sadd(room_key(track.room_sid, "tracks"), track.sid)

    def update_track(self, track: TrackInfo) -> None:
        self._put(track_key(track.sid), track)

    def remove_track(self, track: TrackInfo, client_id: str | None) -> None:
        self._delete(track_key(track.sid), subscribers_key(track.sid))
        if client_id is not None:
            self._hdel(participant_key(track.participant_sid, "client-ids"), client_id)
        self._hdel(participant_key(track.participant_sid, "names"), track.name)
        self._srem(room_key(track.room_sid, "tracks"), track.sid)

    def subscribe(self, subscriber_sid: str, track_sid: str, since: datetime) -> None:
        self._hset(participant_key(subscriber_sid, "subscribed"), track_sid, since)
        self._sadd(subscribers_key(track_sid), subscriber_sid)

    def unsubscribe(self, subscriber_sid: str, track_sid: str) -> None:
        # The Redis transaction can only end a subscription it read (it removes the index member
        # it read): fail here the same way.
        assert participant_key(subscriber_sid, "subscribed") in self.read_keys, "not read"
        self._hdel(participant_key(subscriber_sid, "subscribed"), track_sid)
        self._srem(subscribers_key(track_sid), subscriber_sid)

    def save_rules(self, rules: SubscribeRules) -> None:
        self._put(participant_key(rules.participant_sid, "rules"), rules)

    def forget_participant(self, room_sid: str, participant_sid: str) -> None:
        self._srem(room_key(room_sid, "participants"), participant_sid)
        self._delete(
            participant_key(participant_sid),
            *(
                participant_key(participant_sid, field)
                for field in ("client-ids", "names", "subscribed", "rules")
            ),
        )
        self._put(participant_key(participant_sid, "left"), True)


class FakeTrackUnitOfWork(OptimisticFakeUnitOfWork[FakeTrackTransaction]):
    def __init__(self) -> None:
        super().__init__(FakeTrackTransaction)


class FakeTrackStore:
    """The track service's storage in memory: ``uow``, and the query port on the same state."""

    def __init__(self) -> None:
        self.uow = FakeTrackUnitOfWork()
        self.queries = FakeTrackQueries(self)

    @property
    def view(self) -> FakeTrackTransaction:
        """The committed state, for reading (and for arranging a test's starting point)."""
        return FakeTrackTransaction(self.uow.state)


class FakeTrackQueries:
    def __init__(self, store: FakeTrackStore) -> None:
        self.store = store

    async def track(self, sid: str) -> TrackInfo | None:
        return await self.store.view.track(sid)

    async def tracks(self, sids: Sequence[str]) -> list[TrackInfo]:
        return await self.store.view.tracks(sids)

    async def sid_by_name(self, participant_sid: str, name: str) -> str | None:
        key = participant_key(participant_sid, "names")
        names: dict[str, str] = self.store.uow.state.get(key, {})
        return names.get(name)

    async def subscribed_since(self, subscriber_sid: str, track_sid: str) -> datetime | None:
        return await self.store.view.subscribed_since(subscriber_sid, track_sid)

    async def rules(self, participant_sid: str) -> SubscribeRules | None:
        return await self.store.view.rules(participant_sid)

    async def page(self, participant_sid: str, index: TrackIndex, window: PageWindow) -> SidPage:
        view = self.store.view
        if index == "published":
            published = await view.tracks(list((await view.client_ids(participant_sid)).values()))
            members = [index_member(t.date_created, t.sid) for t in published]
        else:
            since = await view.subscriptions(participant_sid)
            members = [index_member(start, sid) for sid, start in since.items()]
        found, next_cursor, prev_cursor = page_members(
            members,
            created_on_or_after=window.created_on_or_after,
            created_before=window.created_before,
            page_size=window.page_size,
            cursor=window.cursor,
        )
        return [member_sid(m) for m in found], next_cursor, prev_cursor


class FakePublisher:
    """Records what would go to the media workers."""

    def __init__(self) -> None:
        self.changes: list[SubscriptionsChanged] = []

    async def subscriptions_changed(self, change: SubscriptionsChanged) -> None:
        self.changes.append(change)


@dataclass
class TrackFakes:
    """Every port of the track service in memory; ``service()`` wires one replica on them."""

    store: FakeTrackStore = field(default_factory=FakeTrackStore)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    clock: FakeClock = field(default_factory=FakeClock)

    def service(
        self, settings: Settings | None = None, *, broker: NatsBroker | None = None
    ) -> TrackService:
        return bootstrap(
            settings if settings is not None else Settings(),
            broker=broker if broker is not None else NatsBroker(),
            uow=self.store.uow,
            queries=self.store.queries,
            publisher=self.publisher,
            clock=self.clock,
        )

    @property
    def committed_types(self) -> list[str]:
        return [event.event_type for event in self.store.uow.committed]
