"""What the room service asks of other services, over NATS."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared import subjects
from atrium_shared.errors import AtriumError
from atrium_shared.models import RoomInfo
from atrium_shared.participant_api import DisconnectRoomRequest, DisconnectRoomResult
from atrium_shared.rpc import call
from atrium_shared.signaling_api import AdoptedRoom, AdoptRoom, WorkerPing


class NatsParticipants:
    """:class:`atrium_room.ports.ParticipantsPort` over the participant service's RPC."""

    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def disconnect_everyone(self, account_sid: str, room_sid: str) -> int:
        result = await call(
            self._broker,
            subjects.PARTICIPANT_DISCONNECT_ROOM,
            DisconnectRoomRequest(account_sid=account_sid, room_sid=room_sid),
            DisconnectRoomResult,
            self._timeout,
        )
        return len(result.disconnected)


class NatsMedia:
    """:class:`atrium_room.ports.MediaPort` over each media worker's control subjects."""

    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def responds(self, worker_id: str) -> bool:
        try:
            await call(
                self._broker,
                subjects.worker_control_subject(worker_id, "ping"),
                WorkerPing(worker_id=worker_id),
                WorkerPing,
                self._timeout,
            )
        except AtriumError:
            return False  # no responder (its NATS connection is gone), or no answer in time
        return True

    async def adopt(self, worker_id: str, room: RoomInfo, from_worker: str) -> int:
        result = await call(
            self._broker,
            subjects.worker_control_subject(worker_id, "adopt"),
            AdoptRoom(room=room, from_worker=from_worker),
            AdoptedRoom,
            self._timeout * 4,
        )
        return result.sessions
