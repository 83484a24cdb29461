"""In-memory fakes of the participant service's ports.

:class:`FakeParticipantStore` holds one :class:`FakeUnitOfWork` whose state every Redis-backed
port reads: the transaction (:class:`FakeParticipantTransaction`), the queries and the duration
timers, as the real adapters share one Redis. :class:`FakeTracks` is the track service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from faststream.nats import NatsBroker

from atrium_participant.bootstrap import ParticipantService, bootstrap
from atrium_shared.models import ParticipantInfo
from atrium_shared.paging import index_member, member_sid
from atrium_shared.settings import Settings
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.common import FakeRemoteService, FakeStore, FakeTimers
from tests.support.fakes.paging import page_members
from tests.support.fakes.unit_of_work import FakeTransaction


class FakeParticipantTransaction(FakeTransaction):
    """ParticipantTransaction on the working copy: ``participants``, ``seats`` (room -> identity
    -> SID) and ``timers`` (SID -> MaxParticipantDuration deadline), created on first use."""

    @property
    def participants(self) -> dict[str, ParticipantInfo]:
        participants: dict[str, ParticipantInfo] = self.state.setdefault("participants", {})
        return participants

    @property
    def seats(self) -> dict[str, dict[str, str]]:
        seats: dict[str, dict[str, str]] = self.state.setdefault("seats", {})
        return seats

    @property
    def timers(self) -> dict[str, float]:
        timers: dict[str, float] = self.state.setdefault("timers", {})
        return timers

    async def participant(self, sid: str) -> ParticipantInfo | None:
        return self.participants.get(sid)

    async def seat_count(self, room_sid: str) -> int:
        return len(self.seats.get(room_sid, {}))

    async def seat_holder(self, room_sid: str, identity: str) -> str | None:
        return self.seats.get(room_sid, {}).get(identity)

    def add_participant(self, participant: ParticipantInfo) -> None:
        self.participants[participant.sid] = participant
        self.seats.setdefault(participant.room_sid, {})[participant.identity] = participant.sid

    def update_participant(self, before: ParticipantInfo, after: ParticipantInfo) -> None:
        self.participants[after.sid] = after

    def release_seat(self, participant: ParticipantInfo) -> None:
        self.seats.get(participant.room_sid, {}).pop(participant.identity, None)

    def schedule_max_duration(self, participant_sid: str, due_at: float) -> None:
        self.timers[participant_sid] = due_at

    def cancel_max_duration(self, participant_sid: str) -> None:
        self.timers.pop(participant_sid, None)


class FakeParticipantStore(FakeStore[FakeParticipantTransaction]):
    """The participant service's storage: ``uow``, plus the query and timer ports on it."""

    def __init__(self) -> None:
        super().__init__(FakeParticipantTransaction)
        self.queries = FakeParticipantQueries(self)
        self.timers: FakeTimers[str] = FakeTimers(lambda: self.view.timers)


class FakeParticipantQueries:
    def __init__(self, store: FakeParticipantStore) -> None:
        self.store = store

    def _in_room(self, room_sid: str, status: str, identity: str | None) -> list[str]:
        """Index members of the room's participants with this status (and identity)."""
        return [
            index_member(p.date_created, p.sid)
            for p in self.store.view.participants.values()
            if p.room_sid == room_sid
            and p.status == status
            and (identity is None or p.identity == identity)
        ]

    async def get(self, sid: str) -> ParticipantInfo | None:
        return self.store.view.participants.get(sid)

    async def seat_holder(self, room_sid: str, identity: str) -> str | None:
        return await self.store.view.seat_holder(room_sid, identity)

    async def seated(self, room_sid: str) -> list[str]:
        return list(self.store.view.seats.get(room_sid, {}).values())

    async def latest_with_identity(self, room_sid: str, identity: str) -> str | None:
        for status in ("connected", "disconnected"):
            members = self._in_room(room_sid, status, identity)
            if members:
                return member_sid(max(members))
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
        members, next_cursor, prev_cursor = page_members(
            self._in_room(room_sid, status, identity),
            created_on_or_after=created_on_or_after,
            created_before=created_before,
            page_size=page_size,
            cursor=cursor,
        )
        participants = self.store.view.participants
        return [participants[member_sid(m)] for m in members], next_cursor, prev_cursor


class FakeTracks(FakeRemoteService):
    """The track service; ``calls`` are the SIDs of the participants whose tracks it removed."""

    async def leave(self, account_sid: str, room_sid: str, participant_sid: str) -> int:
        await self.answer(participant_sid)
        return 0


@dataclass
class ParticipantFakes:
    """Every port of the participant service in memory; ``service()`` wires one replica on them
    (call it again for another replica sharing the same storage and track service)."""

    store: FakeParticipantStore = field(default_factory=FakeParticipantStore)
    tracks: FakeTracks = field(default_factory=FakeTracks)
    clock: FakeClock = field(default_factory=FakeClock)

    def service(self, settings: Settings) -> ParticipantService:
        return bootstrap(
            settings,
            broker=NatsBroker(),
            uow=self.store.uow,
            queries=self.store.queries,
            timers=self.store.timers,
            tracks=self.tracks,
            clock=self.clock,
        )

    @property
    def committed_types(self) -> list[str]:
        return [event.event_type for event in self.store.uow.committed]
