"""The participant service's use cases: admission, disconnection, queries, duration limits.

Every change runs as ``await self.uow.run(decide)``: ``decide`` reads through the transaction,
stages writes and emits events, which commit together. ``decide`` may run again when something it
read changed meanwhile (another admission took a seat), so it does nothing but read and stage.
"""

from __future__ import annotations

import asyncio
import logging

from atrium_participant import domain
from atrium_participant.ports import (
    Clock,
    DurationTimers,
    ParticipantQueries,
    ParticipantTransaction,
    TracksPort,
)
from atrium_shared import errors, sids
from atrium_shared.errors import AtriumError
from atrium_shared.models import ParticipantInfo
from atrium_shared.participant_api import (
    AdmitParticipantRequest,
    AdmitParticipantResult,
    AnonymizeParticipantRequest,
    DisconnectParticipantRequest,
    DisconnectRoomRequest,
    DisconnectRoomResult,
    FetchParticipantRequest,
    ListParticipantsRequest,
    ParticipantPage,
    SetConnectionStateRequest,
    UpdateParticipantRequest,
)
from atrium_shared.unit_of_work import UnitOfWork

log = logging.getLogger("atrium.participant")


class ParticipantUseCases:
    def __init__(
        self,
        *,
        uow: UnitOfWork[ParticipantTransaction],
        queries: ParticipantQueries,
        timers: DurationTimers,
        tracks: TracksPort,
        clock: Clock,
    ) -> None:
        self.uow = uow
        self.queries = queries
        self.timers = timers
        self.tracks = tracks
        self.clock = clock

    async def admit(self, request: AdmitParticipantRequest) -> AdmitParticipantResult:
        """Seat ``identity`` if the room has room; a connected duplicate identity gives up its
        seat to it (Twilio's duplicate identity rule). The seat count is read in the transaction,
        so of racing admissions for the last seat exactly one commits."""
        domain.validate_identity(request.identity)
        room_sid, identity = request.room_sid, request.identity
        # A duplicate identity is about to be evicted: its tracks go first (Twilio's order).
        holder_sid = await self.queries.seat_holder(room_sid, identity)
        if holder_sid is not None:
            await self._leave_tracks([holder_sid])
        sid = sids.new_sid(sids.PARTICIPANT)

        async def decide(tx: ParticipantTransaction) -> AdmitParticipantResult:
            now = self.clock.now()
            seated = await tx.seat_count(room_sid)
            holder = await tx.seat_holder(room_sid, identity)
            evicted = await tx.participant(holder) if holder else None
            domain.check_capacity(seated, request.max_participants, replacing=evicted is not None)
            left = domain.disconnect(evicted, now, "duplicate-identity") if evicted else None
            if evicted is not None and left is not None:
                # The new participant takes over the seat, so it is not released.
                tx.update_participant(evicted, left[0])
                tx.cancel_max_duration(evicted.sid)
                tx.emit(left[1])
            participant, joined = domain.admit(request.account_sid, room_sid, identity, sid, now)
            tx.add_participant(participant)
            deadline = domain.max_duration_deadline(participant, request.max_participant_duration)
            tx.schedule_max_duration(participant.sid, deadline)
            tx.emit(joined)
            return AdmitParticipantResult(
                participant=participant, evicted=left[0] if left is not None else None
            )

        return await self.uow.run(decide)

    async def disconnect(self, request: DisconnectParticipantRequest) -> ParticipantInfo:
        participant = await self.queries.get(request.participant_sid)
        if participant is None or participant.account_sid != request.account_sid:
            raise errors.not_found(
                f"/Rooms/{request.room_sid}/Participants/{request.participant_sid}"
            )
        ended = await self._disconnect_many([participant.sid], request.reason)
        return ended[0] if ended else participant

    async def disconnect_room(self, request: DisconnectRoomRequest) -> DisconnectRoomResult:
        seated = await self.queries.seated(request.room_sid)
        ended = await self._disconnect_many(seated, request.reason)
        return DisconnectRoomResult(disconnected=ended)

    async def _disconnect_many(
        self, participant_sids: list[str], reason: str
    ) -> list[ParticipantInfo]:
        """Disconnect several participants in one commit, so their events are adjacent.
        Those already disconnected (or unknown) are left out of the result."""
        if not participant_sids:
            return []
        # Tracks are removed before their publisher is disconnected (Twilio's callback order).
        await self._leave_tracks(participant_sids)

        async def decide(tx: ParticipantTransaction) -> list[ParticipantInfo]:
            now = self.clock.now()
            ended: list[ParticipantInfo] = []
            for sid in participant_sids:
                before = await tx.participant(sid)
                if before is None:
                    continue
                change = domain.disconnect(before, now, reason)
                if change is None:  # already disconnected
                    continue
                after, event = change
                # A newer connection of the same identity may hold the seat by now: keep it.
                if await tx.seat_holder(before.room_sid, before.identity) == after.sid:
                    tx.release_seat(after)
                tx.update_participant(before, after)
                tx.cancel_max_duration(after.sid)
                tx.emit(event)
                ended.append(after)
            return ended

        return await self.uow.run(decide)

    async def _leave_tracks(self, participant_sids: list[str]) -> None:
        """Ask the track service to unpublish the tracks of those still connected."""
        found = [await self.queries.get(sid) for sid in participant_sids]
        leaving = [p for p in found if p is not None and p.status != "disconnected"]
        await asyncio.gather(
            *(self.tracks.leave(p.account_sid, p.room_sid, p.sid) for p in leaving)
        )

    async def resolve(
        self, account_sid: str, room_sid: str, sid_or_identity: str
    ) -> ParticipantInfo:
        """A participant of this room by PA SID, or by identity: the connected one, else the
        newest that left."""
        sid: str | None = sid_or_identity
        if not sids.is_sid(sid_or_identity, sids.PARTICIPANT):
            sid = await self.queries.seat_holder(
                room_sid, sid_or_identity
            ) or await self.queries.latest_with_identity(room_sid, sid_or_identity)
        participant = await self.queries.get(sid) if sid else None
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
        ended = await self._disconnect_many([participant.sid], "kicked")
        return ended[0] if ended else participant

    async def anonymize(self, request: AnonymizeParticipantRequest) -> ParticipantInfo:
        """Replace the identity with the PA SID in the stored participant and its identity
        index (REST no longer finds it by identity); the event tells the services that keep
        copies. Idempotent."""
        found = await self.resolve(request.account_sid, request.room_sid, request.sid_or_identity)

        async def decide(tx: ParticipantTransaction) -> ParticipantInfo:
            before = await tx.participant(found.sid)
            if before is None:
                raise errors.not_found(f"/Rooms/{request.room_sid}/Participants/{found.sid}")
            change = domain.anonymize(before, self.clock.now())
            if change is None:
                return before
            after, event = change
            tx.update_participant(before, after)
            tx.emit(event)
            return after

        return await self.uow.run(decide)

    async def set_connection_state(self, request: SetConnectionStateRequest) -> ParticipantInfo:
        """The worker lost or regained the participant's signaling: REST shows ``reconnecting``
        meanwhile. No event: Twilio sends no status callback for it."""

        async def decide(tx: ParticipantTransaction) -> ParticipantInfo:
            before = await tx.participant(request.participant_sid)
            if (
                before is None
                or before.account_sid != request.account_sid
                or before.room_sid != request.room_sid
            ):
                raise errors.not_found(
                    f"/Rooms/{request.room_sid}/Participants/{request.participant_sid}"
                )
            after = domain.set_connection_state(before, request.state, self.clock.now())
            if after is None:
                return before
            tx.update_participant(before, after)
            return after

        return await self.uow.run(decide)

    async def list(self, request: ListParticipantsRequest) -> ParticipantPage:
        try:
            items, next_cursor, prev_cursor = await self.queries.list_page(
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
        """Disconnect every participant past its MaxParticipantDuration; returns how many.

        Replicas may race on one deadline: the disconnect re-reads the participant in the
        transaction, so one replica disconnects it and the others only drop the timer.
        """
        fired = 0
        for sid in await self.timers.due(self.clock.now().timestamp()):
            if await self.queries.get(sid) is None:
                await self.timers.drop(sid)
                continue
            if await self._disconnect_many([sid], "max-duration"):
                fired += 1
            else:
                await self.timers.drop(sid)
        return fired
