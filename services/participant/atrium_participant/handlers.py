"""NATS request handlers of the participant service: decode, call the use case, reply."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_participant.usecases import ParticipantUseCases
from atrium_shared import subjects
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
from atrium_shared.rpc import reply_handler


def register(broker: NatsBroker, participants: ParticipantUseCases) -> None:
    queue = subjects.queue_group("participant")

    @broker.subscriber(subjects.PARTICIPANT_ADMIT, queue=queue, title="participant.admit")
    @reply_handler
    async def admit(request: AdmitParticipantRequest) -> AdmitParticipantResult:
        """Admit an identity into a room against its capacity; evicts a duplicate identity."""
        return await participants.admit(request)

    @broker.subscriber(subjects.PARTICIPANT_DISCONNECT, queue=queue, title="participant.disconnect")
    @reply_handler
    async def disconnect(request: DisconnectParticipantRequest) -> ParticipantInfo:
        """A participant left (or its connection was lost for good)."""
        return await participants.disconnect(request)

    @broker.subscriber(
        subjects.PARTICIPANT_DISCONNECT_ROOM, queue=queue, title="participant.disconnect-room"
    )
    @reply_handler
    async def disconnect_room(request: DisconnectRoomRequest) -> DisconnectRoomResult:
        """Disconnect everyone in a room that is ending."""
        return await participants.disconnect_room(request)

    @broker.subscriber(subjects.PARTICIPANT_FETCH, queue=queue, title="participant.fetch")
    @reply_handler
    async def fetch(request: FetchParticipantRequest) -> ParticipantInfo:
        """Fetch a participant by PA SID or identity."""
        return await participants.fetch(request)

    @broker.subscriber(subjects.PARTICIPANT_LIST, queue=queue, title="participant.list")
    @reply_handler
    async def list_participants(request: ListParticipantsRequest) -> ParticipantPage:
        """One page of a room's participants, newest first."""
        return await participants.list(request)

    @broker.subscriber(subjects.PARTICIPANT_SET_STATE, queue=queue, title="participant.set-state")
    @reply_handler
    async def set_state(request: SetConnectionStateRequest) -> ParticipantInfo:
        """Connected <-> reconnecting, as the media worker sees the participant's signaling."""
        return await participants.set_connection_state(request)

    @broker.subscriber(subjects.PARTICIPANT_ANONYMIZE, queue=queue, title="participant.anonymize")
    @reply_handler
    async def anonymize(request: AnonymizeParticipantRequest) -> ParticipantInfo:
        """Replace a disconnected participant's identity with its SID (REST Anonymize)."""
        return await participants.anonymize(request)

    @broker.subscriber(subjects.PARTICIPANT_UPDATE, queue=queue, title="participant.update")
    @reply_handler
    async def update(request: UpdateParticipantRequest) -> ParticipantInfo:
        """Kick a participant (Status=disconnected)."""
        return await participants.update(request)
