"""The room service's use cases: load, decide with the domain rules, commit with events."""

from __future__ import annotations

import logging
import time

from redis.asyncio.client import Pipeline

from atrium_room import domain
from atrium_room.ports import ParticipantsPort
from atrium_room.repository import EMPTY, PURGE, UNUSED, RoomRepository, name_key, room_key
from atrium_shared import errors, outbox, sids
from atrium_shared.accounts import AccountStore
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
from atrium_shared.timefmt import utcnow
from atrium_shared.workers import WorkerRegistry

log = logging.getLogger("atrium.room")



class RoomUseCases:
    def __init__(
        self,
        repository: RoomRepository,
        settings: Settings,
        participants: ParticipantsPort,
        workers: WorkerRegistry,
        accounts: AccountStore,
    ) -> None:
        self.rooms = repository
        self.settings = settings
        self.participants = participants
        self.workers = workers
        self.accounts = accounts

    async def create(self, request: CreateRoomRequest, created_by: str = "rest") -> RoomInfo:
        now = utcnow()
        room, event = domain.create_room(request, sids.new_sid(sids.ROOM), now, created_by)
        claim = name_key(room.account_sid, room.unique_name)
        minute = self.settings.minute_seconds
        # A REST room nobody joins ends after UnusedRoomTimeout; an ad-hoc room is created by
        # its first joiner, so if that join fails it ends like an emptied room.
        timer = (
            (UNUSED, domain.unused_room_deadline(room, minute))
            if created_by == "rest"
            else (EMPTY, domain.empty_room_deadline(room, now.timestamp(), minute))
        )

        async def decide(pipe: Pipeline) -> outbox.Change:
            holder = await pipe.get(claim)
            if holder is not None:
                existing = await RoomRepository.load(pipe, holder)
                if existing is not None and existing.status == "in-progress":
                    raise AtriumError(errors.ROOM_EXISTS, "Room exists", 400)
            return outbox.Change(
                write=lambda p: RoomRepository.write_new(p, room, timer), events=[event]
            )

        await outbox.commit(self.rooms.redis, [claim], decide)
        log.info("room created", extra={"fields": {"room_sid": room.sid}})
        return room

    async def resolve(self, account_sid: str, sid_or_name: str) -> RoomInfo:
        """A room of this account by SID, or by the unique name of an in-progress room."""
        room: RoomInfo | None = None
        if sids.is_sid(sid_or_name, sids.ROOM):
            room = await self.rooms.get(sid_or_name)
        if room is None:
            sid = await self.rooms.sid_for_name(account_sid, sid_or_name)
            room = await self.rooms.get(sid) if sid else None
            if room is not None and room.status != "in-progress":
                room = None
        if room is None or room.account_sid != account_sid:
            raise errors.not_found(f"/Rooms/{sid_or_name}")
        return room

    async def fetch(self, request: FetchRoomRequest) -> RoomInfo:
        return await self.resolve(request.account_sid, request.sid_or_name)

    async def list(self, request: ListRoomsRequest) -> RoomPage:
        try:
            rooms, next_cursor, prev_cursor = await self.rooms.list_page(
                request.account_sid,
                request.status,
                request.unique_name,
                request.created_on_or_after,
                request.created_before,
                request.page_size,
                request.cursor,
            )
        except ValueError as exc:
            raise AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400) from exc
        return RoomPage(items=rooms, next_cursor=next_cursor, previous_cursor=prev_cursor)

    async def update(self, request: UpdateRoomRequest) -> RoomInfo:
        domain.requested_status(request.status)
        room = await self.resolve(request.account_sid, request.sid_or_name)
        completed = await self.complete(room.sid, strict=True)
        assert completed is not None
        return completed

    async def join(self, request: JoinRoomRequest) -> JoinRoomResult:
        """The room a signaling client joins (created ad hoc if needed) and its media worker."""
        room = await self._room_to_join(request.account_sid, request.room)
        worker_id = await self._place(room.sid)
        return JoinRoomResult(room=domain.joinable(room), worker_id=worker_id)

    async def _room_to_join(self, account_sid: str, name_or_sid: str) -> RoomInfo:
        if sids.is_sid(name_or_sid, sids.ROOM):
            room = await self.rooms.get(name_or_sid)
            if room is None or room.account_sid != account_sid:
                raise AtriumError(ROOM_NOT_FOUND, "Room not found", 404)
            return room
        ad_hoc: CreateRoomRequest | None = None
        for _ in range(3):
            try:
                return await self.resolve(account_sid, name_or_sid)
            except AtriumError as exc:
                if exc.code != errors.NOT_FOUND:
                    raise
            if ad_hoc is None:
                ad_hoc = await self._ad_hoc_request(account_sid, name_or_sid)
            try:
                return await self.create(ad_hoc, created_by="signaling")
            except AtriumError as exc:
                if exc.code != errors.ROOM_EXISTS:  # another join created it first: use it
                    raise
        raise AtriumError(errors.ROOM_CREATE_FAILED, "Unable to create Room", 400)

    async def _ad_hoc_request(self, account_sid: str, unique_name: str) -> CreateRoomRequest:
        """An ad-hoc room reports to its account's default StatusCallback, if it has one."""
        account = await self.accounts.get_account(account_sid)
        request = domain.ad_hoc_room_request(account_sid, unique_name, account)
        if account is not None and account.default_status_callback and not request.status_callback:
            log.warning(
                "ignoring the account's invalid default StatusCallback",
                extra={"fields": {"account_sid": account_sid}},
            )
        return request

    async def _place(self, room_sid: str) -> str:
        current = await self.rooms.placement(room_sid)
        if current is not None and await self.workers.is_live(current):
            return current
        candidate = await self.workers.least_loaded()
        if candidate is None:
            raise AtriumError(
                NO_MEDIA_SERVERS, "There are no media servers available in the MediaRegion", 503
            )
        return await self.rooms.place(room_sid, candidate.worker_id, previous=current)

    # Presence, learned from participant events -------------------------------------------------
    async def participant_connected(self, room_sid: str, participant_sid: str) -> None:
        await self.rooms.participant_arrived(room_sid, participant_sid)

    async def participant_disconnected(self, room_sid: str, participant_sid: str) -> None:
        remaining = await self.rooms.participant_left(room_sid, participant_sid)
        room = await self.rooms.get(room_sid)
        if remaining == 0 and room is not None and room.status == "in-progress":
            deadline = domain.empty_room_deadline(room, time.time(), self.settings.minute_seconds)
            await self.rooms.set_timer(EMPTY, room_sid, deadline)

    async def complete(self, sid: str, *, strict: bool) -> RoomInfo | None:
        """Complete a room. ``strict``: a room that is not in progress is an error (REST)."""
        result: list[RoomInfo] = []
        current = await self.rooms.get(sid)
        if current is not None and current.status == "in-progress":
            # Participants leave first, so their events (and callbacks) precede room-ended.
            await self.participants.disconnect_everyone(current.account_sid, sid)

        async def decide(pipe: Pipeline) -> outbox.Change | None:
            before = await RoomRepository.load(pipe, sid)
            if before is None:
                raise errors.not_found(f"/Rooms/{sid}")
            if before.status != "in-progress" and not strict:
                return None
            after, event = domain.complete_room(before, utcnow())
            purge_at = time.time() + self.settings.completed_room_retention_seconds
            result.append(after)
            return outbox.Change(
                write=lambda p: RoomRepository.write_completed(p, before, after, purge_at),
                events=[event],
            )

        result.clear()
        change = await outbox.commit(self.rooms.redis, [room_key(sid)], decide)
        return result[-1] if change is not None else None

    async def purge(self, sid: str) -> None:
        async def decide(pipe: Pipeline) -> outbox.Change | None:
            room = await RoomRepository.load(pipe, sid)
            if room is None:
                return outbox.Change(write=lambda p: p.zrem("atrium:room:timers", f"{PURGE}:{sid}"))
            return outbox.Change(write=lambda p: RoomRepository.write_purged(p, room))

        await outbox.commit(self.rooms.redis, [room_key(sid)], decide)

    # Timers -----------------------------------------------------------------------------------
    async def fire_due_timers(self) -> int:
        """Run every due timer once. Replicas may race: the WATCH in commit lets one win."""
        fired = 0
        for kind, sid in await self.rooms.due_timers(time.time()):
            try:
                if kind in (UNUSED, EMPTY):
                    ended = await self.complete(sid, strict=False)
                    if ended is None:
                        await self.rooms.drop_timer(kind, sid)
                    else:
                        fired += 1
                        log.info("room timed out", extra={"fields": {"room_sid": sid,
                                                                     "timer": kind}})
                elif kind == PURGE:
                    await self.purge(sid)
                else:
                    await self.rooms.drop_timer(kind, sid)
            except AtriumError as exc:
                if exc.status >= 500:
                    # A service we depend on is down: keep the timer, try on the next poll.
                    log.warning("timer %s for %s postponed: %s", kind, sid, exc.message)
                    continue
                await self.rooms.drop_timer(kind, sid)
        return fired

