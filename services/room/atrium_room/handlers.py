"""NATS request handlers: decode, call the use case, reply. Nothing else lives here."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_room.usecases import RoomUseCases
from atrium_shared import subjects
from atrium_shared.models import RoomInfo
from atrium_shared.room_api import (
    CreateRoomRequest,
    FetchRoomRequest,
    ListRoomsRequest,
    RoomPage,
    UpdateRoomRequest,
)
from atrium_shared.rpc import reply_handler


def register(broker: NatsBroker, rooms: RoomUseCases) -> None:
    queue = subjects.queue_group("room")

    @broker.subscriber(subjects.ROOM_CREATE, queue=queue, title="room.create")
    @reply_handler
    async def create_room(request: CreateRoomRequest) -> RoomInfo:
        """Create a room; replies with the Room or a Twilio error."""
        return await rooms.create(request)

    @broker.subscriber(subjects.ROOM_FETCH, queue=queue, title="room.fetch")
    @reply_handler
    async def fetch_room(request: FetchRoomRequest) -> RoomInfo:
        """Fetch a room by SID or by the unique name of an in-progress room."""
        return await rooms.fetch(request)

    @broker.subscriber(subjects.ROOM_LIST, queue=queue, title="room.list")
    @reply_handler
    async def list_rooms(request: ListRoomsRequest) -> RoomPage:
        """One page of an account's rooms, newest first."""
        return await rooms.list(request)

    @broker.subscriber(subjects.ROOM_UPDATE, queue=queue, title="room.update")
    @reply_handler
    async def update_room(request: UpdateRoomRequest) -> RoomInfo:
        """Complete a room (the only update Twilio allows)."""
        return await rooms.update(request)
