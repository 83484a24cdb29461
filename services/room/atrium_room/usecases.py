"""The room service's use cases: load, decide with the domain rules, commit with events."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.asyncio.client import Pipeline

from atrium_room import domain
from atrium_room.repository import PURGE, UNUSED, RoomRepository, name_key, room_key
from atrium_shared import errors, outbox, sids
from atrium_shared.errors import AtriumError
from atrium_shared.models import RoomInfo
from atrium_shared.room_api import (
    CreateRoomRequest,
    FetchRoomRequest,
    ListRoomsRequest,
    RoomPage,
    UpdateRoomRequest,
)
from atrium_shared.settings import Settings
from atrium_shared.timefmt import utcnow

log = logging.getLogger("atrium.room")


class RoomUseCases:
    def __init__(self, repository: RoomRepository, settings: Settings) -> None:
        self.rooms = repository
        self.settings = settings
        self._stopping = asyncio.Event()

    async def create(self, request: CreateRoomRequest) -> RoomInfo:
        now = utcnow()
        room, event = domain.create_room(request, sids.new_sid(sids.ROOM), now)
        claim = name_key(room.account_sid, room.unique_name)

        async def decide(pipe: Pipeline) -> outbox.Change:
            holder = await pipe.get(claim)
            if holder is not None:
                existing = await RoomRepository.load(pipe, holder)
                if existing is not None and existing.status == "in-progress":
                    raise AtriumError(errors.ROOM_EXISTS, "Room exists", 400)
            deadline = domain.unused_room_deadline(room, self.settings.minute_seconds)
            return outbox.Change(
                write=lambda p: RoomRepository.write_new(p, room, deadline), events=[event]
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

    async def complete(self, sid: str, *, strict: bool) -> RoomInfo | None:
        """Complete a room. ``strict``: a room that is not in progress is an error (REST)."""
        result: list[RoomInfo] = []

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
                if kind == UNUSED:
                    ended = await self.complete(sid, strict=False)
                    if ended is None:
                        await self.rooms.drop_timer(kind, sid)
                    else:
                        fired += 1
                        log.info("unused room timed out", extra={"fields": {"room_sid": sid}})
                elif kind == PURGE:
                    await self.purge(sid)
                else:
                    await self.rooms.drop_timer(kind, sid)
            except AtriumError:
                await self.rooms.drop_timer(kind, sid)
        return fired

    async def run_timers(self) -> None:
        while not self._stopping.is_set():
            await self.fire_due_timers()
            try:
                await asyncio.wait_for(self._stopping.wait(), self.settings.timer_poll_seconds)
            except TimeoutError:
                pass

    def stop(self) -> None:
        self._stopping.set()
