"""The room service's use cases: read, decide with the domain rules, commit with events.

Every change runs as ``await self.uow.run(decide)``: ``decide`` reads through the transaction,
stages writes and emits events, which commit together. ``decide`` may run again when something it
read changed meanwhile (another replica won the race), so it does nothing but read and stage.
"""

from __future__ import annotations

import logging

from atrium_room import domain
from atrium_room.domain import EMPTY, PURGE, UNUSED, Timer
from atrium_room.failover import Failover
from atrium_room.ports import (
    AccountsPort,
    Clock,
    ParticipantsPort,
    RoomQueries,
    RoomTimers,
    RoomTransaction,
    WorkersPort,
)
from atrium_shared import errors, sids
from atrium_shared.errors import NO_MEDIA_SERVERS, ROOM_NOT_FOUND, AtriumError
from atrium_shared.models import RoomInfo
from atrium_shared.room_api import (
    CreateRoomRequest,
    FetchRoomRequest,
    JoinRoomRequest,
    JoinRoomResult,
    ListRoomsRequest,
    RoomPage,
    UpdateRoomRequest,
)
from atrium_shared.settings import Settings
from atrium_shared.unit_of_work import UnitOfWork

log = logging.getLogger("atrium.room")

# How often a join tries "find the room, else create it" when other joins keep racing it.
JOIN_ATTEMPTS = 3


class RoomUseCases:
    def __init__(
        self,
        *,
        uow: UnitOfWork[RoomTransaction],
        queries: RoomQueries,
        timers: RoomTimers,
        participants: ParticipantsPort,
        workers: WorkersPort,
        failover: Failover,
        accounts: AccountsPort,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.uow = uow
        self.queries = queries
        self.timers = timers
        self.participants = participants
        self.workers = workers
        self.failover = failover
        self.accounts = accounts
        self.clock = clock
        self.settings = settings

    async def create(self, request: CreateRoomRequest, created_by: str = "rest") -> RoomInfo:
        room, event = domain.create_room(
            request, sids.new_sid(sids.ROOM), self.clock.now(), created_by
        )
        timer, due_at = domain.first_timer(room, self.settings.minute_seconds)

        async def decide(tx: RoomTransaction) -> None:
            holder = await tx.room_holding_name(room.account_sid, room.unique_name)
            if holder is not None and holder.status == "in-progress":
                raise AtriumError(errors.ROOM_EXISTS, "Room exists", 400)
            tx.add_room(room)
            tx.schedule(timer, due_at)
            tx.emit(event)

        await self.uow.run(decide)
        log.info("room created", extra={"fields": {"room_sid": room.sid}})
        return room

    async def resolve(self, account_sid: str, sid_or_name: str) -> RoomInfo:
        """A room of this account by SID, or by the unique name of an in-progress room."""
        room: RoomInfo | None = None
        if sids.is_sid(sid_or_name, sids.ROOM):
            room = await self.queries.get(sid_or_name)
        if room is None:
            named = await self.queries.holding_name(account_sid, sid_or_name)
            room = named if named is not None and named.status == "in-progress" else None
        if room is None or room.account_sid != account_sid:
            raise errors.not_found(f"/Rooms/{sid_or_name}")
        return room

    async def fetch(self, request: FetchRoomRequest) -> RoomInfo:
        return await self.resolve(request.account_sid, request.sid_or_name)

    async def list(self, request: ListRoomsRequest) -> RoomPage:
        try:
            rooms, next_cursor, prev_cursor = await self.queries.list_page(
                request.account_sid,
                request.status,
                request.unique_name,
                created_on_or_after=request.created_on_or_after,
                created_before=request.created_before,
                page_size=request.page_size,
                cursor=request.cursor,
            )
        except ValueError as exc:
            raise AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400) from exc
        return RoomPage(items=rooms, next_cursor=next_cursor, previous_cursor=prev_cursor)

    async def update(self, request: UpdateRoomRequest) -> RoomInfo:
        domain.requested_status(request.status)
        room = await self.resolve(request.account_sid, request.sid_or_name)
        completed = await self.complete(room.sid, strict=True)
        assert completed is not None  # strict: completes or raises
        return completed

    async def join(self, request: JoinRoomRequest) -> JoinRoomResult:
        """The room a signaling client joins (created ad hoc if needed) and its media worker."""
        room = await self._room_to_join(request.account_sid, request.room)
        worker_id = await self._place(room.sid)
        return JoinRoomResult(room=domain.joinable(room), worker_id=worker_id)

    async def _room_to_join(self, account_sid: str, name_or_sid: str) -> RoomInfo:
        if sids.is_sid(name_or_sid, sids.ROOM):
            room = await self.queries.get(name_or_sid)
            if room is None or room.account_sid != account_sid:
                raise AtriumError(ROOM_NOT_FOUND, "Room not found", 404)
            return room
        ad_hoc: CreateRoomRequest | None = None
        for _ in range(JOIN_ATTEMPTS):
            try:
                return await self.resolve(account_sid, name_or_sid)
            except AtriumError as exc:
                if exc.code != errors.NOT_FOUND:
                    raise
            if ad_hoc is None:
                ad_hoc = await self._ad_hoc_request(account_sid, name_or_sid)
                if ad_hoc is None:
                    raise AtriumError(ROOM_NOT_FOUND, "Room not found", 404)
            try:
                return await self.create(ad_hoc, created_by="signaling")
            except AtriumError as exc:
                if exc.code != errors.ROOM_EXISTS:  # another join created it first: use it
                    raise
        raise AtriumError(errors.ROOM_CREATE_FAILED, "Unable to create Room", 400)

    async def _ad_hoc_request(self, account_sid: str, unique_name: str) -> CreateRoomRequest | None:
        """An ad-hoc room reports to its account's default StatusCallback, if it has one;
        None when the account turned client-side room creation off."""
        account = await self.accounts.get_account(account_sid)
        if account is not None and not account.ad_hoc_rooms:
            return None
        request = domain.ad_hoc_room_request(account_sid, unique_name, account)
        if account is not None and account.default_status_callback and not request.status_callback:
            log.warning(
                "ignoring the account's invalid default StatusCallback",
                extra={"fields": {"account_sid": account_sid}},
            )
        return request

    async def _place(self, room_sid: str) -> str:
        """The room's media worker: where it is while that worker lives; a room whose worker is
        gone moves with its sessions (failover) before the newcomer joins it; a new room goes to
        the least loaded worker."""
        current = await self.queries.placement(room_sid)
        if current is not None:
            if not await self.failover.is_gone(current):
                return current
            moved = await self.failover.move(room_sid, current)
            if moved is not None:
                return moved
            now = await self.queries.placement(room_sid)
            if now is not None and now != current:
                return now  # another replica moved it first
            raise _no_media_servers()
        candidate = await self.workers.least_loaded()
        if candidate is None:
            raise _no_media_servers()
        chosen = candidate.worker_id

        async def decide(tx: RoomTransaction) -> str:
            placed = await tx.placement(room_sid)
            if placed is not None and placed != current:
                return placed  # another join placed it first: one worker per room
            tx.place(room_sid, chosen)
            return chosen

        return await self.uow.run(decide)

    # Presence, learned from participant events -------------------------------------------------
    async def participant_connected(self, room_sid: str, participant_sid: str) -> None:
        """The room is in use: its unused and empty timers stop."""

        async def decide(tx: RoomTransaction) -> None:
            tx.add_present(room_sid, participant_sid)
            tx.cancel(Timer(UNUSED, room_sid), Timer(EMPTY, room_sid))

        await self.uow.run(decide)

    async def participant_disconnected(self, room_sid: str, participant_sid: str) -> None:
        """The last participant to leave an in-progress room starts its EmptyRoomTimeout."""

        async def decide(tx: RoomTransaction) -> None:
            remaining = await tx.present(room_sid) - {participant_sid}
            room = await tx.room(room_sid)
            tx.remove_present(room_sid, participant_sid)
            if not remaining and room is not None and room.status == "in-progress":
                since = self.clock.now().timestamp()
                due_at = domain.empty_room_deadline(room, since, self.settings.minute_seconds)
                tx.schedule(Timer(EMPTY, room_sid), due_at)

        await self.uow.run(decide)

    async def complete(self, sid: str, *, strict: bool) -> RoomInfo | None:
        """Complete a room. ``strict``: a room that is not in progress is an error (REST);
        otherwise (timers) it is None, and so is a room another replica completed first."""
        current = await self.queries.get(sid)
        if current is not None and current.status == "in-progress":
            # Participants leave first, so their events (and callbacks) precede room-ended.
            await self.participants.disconnect_everyone(current.account_sid, sid)

        async def decide(tx: RoomTransaction) -> RoomInfo | None:
            before = await tx.room(sid)
            if before is None:
                raise errors.not_found(f"/Rooms/{sid}")
            if before.status != "in-progress" and not strict:
                return None
            now = self.clock.now()
            after, event = domain.complete_room(before, now)
            tx.end_room(before, after)
            tx.cancel(Timer(UNUSED, sid), Timer(EMPTY, sid))
            purge_at = now.timestamp() + self.settings.completed_room_retention_seconds
            tx.schedule(Timer(PURGE, sid), purge_at)
            tx.emit(event)
            return after

        return await self.uow.run(decide)

    async def purge(self, sid: str) -> None:
        """Forget a completed room whose retention is over."""

        async def decide(tx: RoomTransaction) -> None:
            room = await tx.room(sid)
            if room is not None:
                tx.delete_room(room)
            tx.cancel(Timer(PURGE, sid))

        await self.uow.run(decide)

    # Timers -----------------------------------------------------------------------------------
    async def fire_due_timers(self) -> int:
        """Run every due timer once; returns how many rooms timed out.

        Replicas may race on one timer: completing re-reads the room in the transaction, so one
        replica ends it and the others find it completed and only drop the timer.
        """
        fired = 0
        for timer in await self.timers.due(self.clock.now().timestamp()):
            try:
                if timer.kind in (UNUSED, EMPTY):
                    ended = await self.complete(timer.room_sid, strict=False)
                    if ended is None:
                        await self.timers.drop(timer)
                    else:
                        fired += 1
                        log.info(
                            "room timed out",
                            extra={"fields": {"room_sid": timer.room_sid, "timer": timer.kind}},
                        )
                elif timer.kind == PURGE:
                    await self.purge(timer.room_sid)
                else:
                    await self.timers.drop(timer)
            except AtriumError as exc:
                if exc.status >= 500:
                    # A service we depend on is down: keep the timer, try on the next poll.
                    log.warning(
                        "timer %s for %s postponed: %s", timer.kind, timer.room_sid, exc.message
                    )
                    continue
                await self.timers.drop(timer)
        return fired


def _no_media_servers() -> AtriumError:
    return AtriumError(
        NO_MEDIA_SERVERS, "There are no media servers available in the MediaRegion", 503
    )
