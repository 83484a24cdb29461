"""Requests the participant service answers over NATS (see :mod:`atrium_shared.subjects`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from atrium_shared.models import Page, ParticipantInfo


class AdmitParticipantRequest(BaseModel):
    """Let ``identity`` into a room, atomically against its capacity.

    A connected participant with the same identity is disconnected first (Twilio's duplicate
    identity rule); the reply names it so the worker can tell that client (53205).
    """

    account_sid: str
    room_sid: str
    identity: str
    max_participants: int
    max_participant_duration: int


class AdmitParticipantResult(BaseModel):
    participant: ParticipantInfo
    evicted: ParticipantInfo | None = None


class DisconnectParticipantRequest(BaseModel):
    account_sid: str
    room_sid: str
    participant_sid: str
    reason: str = "left"


class DisconnectRoomRequest(BaseModel):
    """Disconnect everyone in a room (it is ending): their events precede ``room-ended``."""

    account_sid: str
    room_sid: str
    reason: str = "room-ended"


class DisconnectRoomResult(BaseModel):
    disconnected: list[ParticipantInfo]


class SetConnectionStateRequest(BaseModel):
    """The media worker lost (or regained) a participant's signaling: REST shows the
    participant ``reconnecting`` meanwhile, as Twilio does. No status callback (Twilio has none)."""

    account_sid: str
    room_sid: str
    participant_sid: str
    state: Literal["connected", "reconnecting"]


class FetchParticipantRequest(BaseModel):
    account_sid: str
    room_sid: str
    sid_or_identity: str


class UpdateParticipantRequest(BaseModel):
    account_sid: str
    room_sid: str
    sid_or_identity: str
    status: str | None = None


class AnonymizeParticipantRequest(BaseModel):
    """Replace a disconnected participant's identity with its PA SID, everywhere it is kept."""

    account_sid: str
    room_sid: str
    sid_or_identity: str


class ListParticipantsRequest(BaseModel):
    account_sid: str
    room_sid: str
    status: str = "connected"
    identity: str | None = None
    created_on_or_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class ParticipantPage(Page[ParticipantInfo]):
    pass
