"""What the room service asks of other services, over NATS."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared import subjects
from atrium_shared.participant_api import DisconnectRoomRequest, DisconnectRoomResult
from atrium_shared.rpc import call


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
