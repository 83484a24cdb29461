"""NATS request handlers: decode, call the use case, reply. Nothing else lives here."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_room.usecases import RoomUseCases
from atrium_shared import subjects
from atrium_shared.events import ParticipantConnected, ParticipantDisconnected
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

    @broker.subscriber(subjects.ROOM_JOIN, queue=queue, title="room.join")
    @reply_handler
    async def join_room(request: JoinRoomRequest) -> JoinRoomResult:
        """The room a signaling client joins (ad hoc if new) and the media worker hosting it."""
        return await rooms.join(request)

    @broker.subscriber(
        subjects.event_subject("*", "*", "participant-connected"),
        # JetStream names a queue consumer after its queue: replicas share this durable.
        queue="atrium-room-presence-connected",
        stream=subjects.events_stream(),
        title="room.presence.connected",
    )
    async def participant_connected(event: ParticipantConnected) -> None:
        """A participant arrived: the room is in use, its unused/empty timers stop."""
        await rooms.participant_connected(event.room_sid, event.participant.sid)

    @broker.subscriber(
        subjects.event_subject("*", "*", "participant-disconnected"),
        # JetStream names a queue consumer after its queue: replicas share this durable.
        queue="atrium-room-presence-disconnected",
        stream=subjects.events_stream(),
        title="room.presence.disconnected",
    )
    async def participant_disconnected(event: ParticipantDisconnected) -> None:
        """A participant left: the last one to leave starts the EmptyRoomTimeout."""
        await rooms.participant_disconnected(event.room_sid, event.participant.sid)
