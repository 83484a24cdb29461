"""What the recording service sends over NATS besides domain events: the commands every media
worker hears, and its questions to the room service."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared import errors, subjects
from atrium_shared.errors import AtriumError
from atrium_shared.models import RoomInfo
from atrium_shared.recording_api import RecordingCommand
from atrium_shared.room_api import FetchRoomRequest
from atrium_shared.rpc import call


class NatsRecordingPublisher:
    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def command(self, command: RecordingCommand) -> None:
        # A broadcast, not a queue group: only the worker hosting the room acts on it.
        await self._broker.publish(command, subjects.MEDIA_RECORDINGS)


class NatsRooms:
    """:class:`atrium_recording.ports.RoomsPort` over the room service's RPC."""

    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def fetch(self, account_sid: str, room_sid: str) -> RoomInfo | None:
        try:
            return await call(
                self._broker,
                subjects.ROOM_FETCH,
                FetchRoomRequest(account_sid=account_sid, sid_or_name=room_sid),
                RoomInfo,
                self._timeout,
            )
        except AtriumError as exc:
            if exc.code == errors.NOT_FOUND or exc.code == errors.ROOM_NOT_FOUND:
                return None
            raise
