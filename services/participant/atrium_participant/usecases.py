"""The participant service's use cases: admission, disconnection, queries, duration limits."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio.client import Pipeline

from atrium_participant import domain
from atrium_participant.ports import TracksPort
from atrium_participant.repository import (
    ParticipantRepository,
    connected_key,
    participant_key,
)
from atrium_shared import errors, outbox, sids
from atrium_shared.errors import AtriumError
from atrium_shared.events import DomainEvent
from atrium_shared.models import ParticipantInfo
from atrium_shared.participant_api import (
    AdmitParticipantRequest,
    AdmitParticipantResult,
    DisconnectParticipantRequest,
    DisconnectRoomRequest,
    DisconnectRoomResult,
    FetchParticipantRequest,
    ListParticipantsRequest,
    ParticipantPage,
    UpdateParticipantRequest,
)
from atrium_shared.settings import Settings
from atrium_shared.timefmt import utcnow

log = logging.getLogger("atrium.participant")


class ParticipantUseCases:
    def __init__(
        self, repository: ParticipantRepository, settings: Settings, tracks: TracksPort
    ) -> None:
        self.participants = repository
        self.settings = settings
        self.tracks = tracks

    async def admit(self, request: AdmitParticipantRequest) -> AdmitParticipantResult:
        domain.validate_identity(request.identity)
        seats = connected_key(request.room_sid)
        # A duplicate identity is about to be evicted: its tracks go first (Twilio's order).
        holder_sid = await self.participants.connected_sid(request.room_sid, request.identity)
        if holder_sid is not None:
            await self._leave_tracks([holder_sid])
        outcome: list[AdmitParticipantResult] = []

        async def decide(pipe: Pipeline) -> outbox.Change:
            outcome.clear()
            now = utcnow()
            count = int(await pipe.hlen(seats))
            holder = await pipe.hget(seats, request.identity)
            evicted = await ParticipantRepository.load(pipe, holder) if holder else None
            domain.check_capacity(count, request.max_participants, replacing=evicted is not None)
            events: list[DomainEvent] = []
            left = domain.disconnect(evicted, now, "duplicate-identity") if evicted else None
            if left is not None:
                events.append(left[1])
            participant, joined = domain.admit(
                request.account_sid, request.room_sid, request.identity,
                sids.new_sid(sids.PARTICIPANT), now,
            )
            events.append(joined)
            deadline = domain.max_duration_deadline(participant, request.max_participant_duration)
            outcome.append(AdmitParticipantResult(
                participant=participant, evicted=left[0] if left else None
            ))

            def write(p: Pipeline) -> None:
                if evicted is not None and left is not None:
                    # The new participant takes the seat: no HDEL for the old one.
                    ParticipantRepository.write_disconnected(p, evicted, left[0], None)
                ParticipantRepository.write_admitted(p, participant, deadline)

            return outbox.Change(write=write, events=events)

        await outbox.commit(self.participants.redis, [seats], decide)
        return outcome[-1]

    async def disconnect(self, request: DisconnectParticipantRequest) -> ParticipantInfo:
        participant = await self.participants.get(request.participant_sid)
        if participant is None or participant.account_sid != request.account_sid:
            raise errors.not_found(
                f"/Rooms/{request.room_sid}/Participants/{request.participant_sid}"
            )
        ended = await self._disconnect_many(participant.room_sid, [participant.sid],
                                            request.reason)
        return ended[0] if ended else participant

    async def disconnect_room(self, request: DisconnectRoomRequest) -> DisconnectRoomResult:
        connected = await self.participants.redis.hvals(connected_key(request.room_sid))
        ended = await self._disconnect_many(request.room_sid, list(connected), request.reason)
        return DisconnectRoomResult(disconnected=ended)

    async def _disconnect_many(
        self, room_sid: str, participant_sids: list[str], reason: str
    ) -> list[ParticipantInfo]:
        """Disconnect several participants in one commit, so their events are adjacent."""
        if not participant_sids:
            return []
        # Tracks are removed before their publisher is disconnected (Twilio's callback order).
        await self._leave_tracks(participant_sids)
        seats = connected_key(room_sid)
        ended: list[ParticipantInfo] = []

        async def decide(pipe: Pipeline) -> outbox.Change | None:
            ended.clear()
            now = utcnow()
            writes = []
            events: list[DomainEvent] = []
            for sid in participant_sids:
                before = await ParticipantRepository.load(pipe, sid)
                if before is None:
                    continue
                change = domain.disconnect(before, now, reason)
                if change is None:
                    continue
                holder = await pipe.hget(seats, before.identity)
                writes.append((before, change[0], holder))
                events.append(change[1])
                ended.append(change[0])
            if not events:
                return None

            def write(p: Pipeline) -> None:
                for before, after, holder in writes:
                    ParticipantRepository.write_disconnected(p, before, after, holder)

            return outbox.Change(write=write, events=events)

        watch = [seats, *(participant_key(sid) for sid in participant_sids)]
        await outbox.commit(self.participants.redis, watch, decide)
        return list(ended)

    async def _leave_tracks(self, participant_sids: list[str]) -> None:
        """Ask the track service to unpublish the tracks of those still connected."""
        found = [await self.participants.get(sid) for sid in participant_sids]
        leaving = [p for p in found if p is not None and p.status != "disconnected"]
        await asyncio.gather(
            *(self.tracks.leave(p.account_sid, p.room_sid, p.sid) for p in leaving)
        )

    async def resolve(
        self, account_sid: str, room_sid: str, sid_or_identity: str
    ) -> ParticipantInfo:
        sid: str | None = sid_or_identity
        if not sids.is_sid(sid_or_identity, sids.PARTICIPANT):
            sid = await self.participants.connected_sid(room_sid, sid_or_identity)
            sid = sid or await self.participants.latest_sid_for_identity(room_sid, sid_or_identity)
        participant = await self.participants.get(sid) if sid else None
        if (
            participant is None
            or participant.account_sid != account_sid
            or participant.room_sid != room_sid
        ):
            raise errors.not_found(f"/Rooms/{room_sid}/Participants/{sid_or_identity}")
        return participant

    async def fetch(self, request: FetchParticipantRequest) -> ParticipantInfo:
        return await self.resolve(request.account_sid, request.room_sid, request.sid_or_identity)

    async def update(self, request: UpdateParticipantRequest) -> ParticipantInfo:
        domain.requested_status(request.status)
        participant = await self.resolve(
            request.account_sid, request.room_sid, request.sid_or_identity
        )
        ended = await self._disconnect_many(participant.room_sid, [participant.sid], "kicked")
        return ended[0] if ended else participant

    async def list(self, request: ListParticipantsRequest) -> ParticipantPage:
        try:
            items, next_cursor, prev_cursor = await self.participants.list_page(
                request.room_sid,
                request.status,
                request.identity,
                created_on_or_after=request.created_on_or_after,
                created_before=request.created_before,
                page_size=request.page_size,
                cursor=request.cursor,
            )
        except ValueError as exc:
            raise AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400) from exc
        items = [p for p in items if p.account_sid == request.account_sid]
        return ParticipantPage(items=items, next_cursor=next_cursor, previous_cursor=prev_cursor)

    # MaxParticipantDuration ---------------------------------------------------------------------
    async def fire_due_timers(self) -> int:
        fired = 0
        for sid in await self.participants.due_timers(time.time()):
            participant = await self.participants.get(sid)
            if participant is None:
                await self.participants.drop_timer(sid)
                continue
            ended = await self._disconnect_many(participant.room_sid, [sid], "max-duration")
            if ended:
                fired += 1
            else:
                await self.participants.drop_timer(sid)
        return fired

