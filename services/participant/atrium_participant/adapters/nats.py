"""What the participant service asks of other services, over NATS."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared import subjects
from atrium_shared.rpc import call
from atrium_shared.track_api import LeaveTracksRequest, LeaveTracksResult


class NatsTracks:
    """:class:`atrium_participant.ports.TracksPort` over the track service's RPC."""

    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def leave(self, account_sid: str, room_sid: str, participant_sid: str) -> int:
        result = await call(
            self._broker,
            subjects.TRACK_LEAVE,
            LeaveTracksRequest(
                account_sid=account_sid, room_sid=room_sid, participant_sid=participant_sid
            ),
            LeaveTracksResult,
            self._timeout,
        )
        return len(result.removed)
