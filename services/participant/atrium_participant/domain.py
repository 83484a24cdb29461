"""Participant rules: admission, duplicate identities, disconnection. Pure functions, no I/O."""

from __future__ import annotations

from datetime import datetime

from atrium_shared import errors
from atrium_shared.errors import IDENTITY_INVALID, IDENTITY_TOO_LONG, ROOM_FULL, AtriumError
from atrium_shared.events import (
    ParticipantAnonymized,
    ParticipantConnected,
    ParticipantDisconnected,
)
from atrium_shared.models import ParticipantInfo
from atrium_shared.timefmt import whole_seconds

MAX_IDENTITY_LENGTH = 128


def validate_identity(identity: str) -> str:
    if not identity or not identity.strip():
        raise AtriumError(IDENTITY_INVALID, "Participant identity is invalid", 400)
    if len(identity) > MAX_IDENTITY_LENGTH:
        raise AtriumError(IDENTITY_TOO_LONG, "Participant identity is too long", 400)
    return identity


def check_capacity(connected_count: int, max_participants: int, replacing: bool) -> None:
    """A room is full when it already holds its maximum; a duplicate identity frees its seat."""
    if not replacing and connected_count >= max_participants:
        raise AtriumError(ROOM_FULL, "Room contains too many Participants", 400)


def admit(
    account_sid: str, room_sid: str, identity: str, sid: str, now: datetime
) -> tuple[ParticipantInfo, ParticipantConnected]:
    participant = ParticipantInfo(
        sid=sid,
        room_sid=room_sid,
        account_sid=account_sid,
        identity=validate_identity(identity),
        date_created=now,
        date_updated=now,
        start_time=now,
    )
    return participant, ParticipantConnected(
        account_sid=account_sid, room_sid=room_sid, occurred_at=now, participant=participant
    )


def disconnect(
    participant: ParticipantInfo, now: datetime, reason: str
) -> tuple[ParticipantInfo, ParticipantDisconnected] | None:
    """Disconnect a connected participant; None when it already is (idempotent)."""
    if participant.status == "disconnected":
        return None
    duration = whole_seconds(participant.start_time, now)
    ended = participant.model_copy(
        update={
            "status": "disconnected",
            "end_time": now,
            "duration": duration,
            "date_updated": now,
            "version": participant.version + 1,
        }
    )
    return ended, ParticipantDisconnected(
        account_sid=participant.account_sid,
        room_sid=participant.room_sid,
        occurred_at=now,
        participant=ended,
        reason=reason,
    )


def set_connection_state(
    participant: ParticipantInfo, state: str, now: datetime
) -> ParticipantInfo | None:
    """``connected`` <-> ``reconnecting`` while the media worker waits for a dropped client to
    come back; None when nothing changes (same state, or already disconnected: leaving wins)."""
    if participant.status == "disconnected" or participant.status == state:
        return None
    if state not in ("connected", "reconnecting"):
        raise AtriumError(errors.INVALID_PARAMETER, "Status is invalid", 400)
    return participant.model_copy(
        update={
            "status": state,
            "date_updated": now,
            "version": participant.version + 1,
        }
    )


def anonymize(
    participant: ParticipantInfo, now: datetime
) -> tuple[ParticipantInfo, ParticipantAnonymized] | None:
    """The participant with its identity replaced by its SID (Twilio's Anonymize); None when it
    already is. Only a participant that left: a connected one's identity is still in use (its
    seat, its tracks' events, the media worker's session), so it would come back."""
    if participant.status != "disconnected":
        raise AtriumError(
            errors.INVALID_PARAMETER, "Only a disconnected participant can be anonymized", 400
        )
    if participant.identity == participant.sid:
        return None
    anonymous = participant.model_copy(
        update={
            "identity": participant.sid,
            "date_updated": now,
            "version": participant.version + 1,
        }
    )
    return anonymous, ParticipantAnonymized(
        account_sid=participant.account_sid,
        room_sid=participant.room_sid,
        occurred_at=now,
        participant=anonymous,
    )


def requested_status(status: str | None) -> str:
    """REST may only set Status=disconnected (a kick)."""
    if status != "disconnected":
        raise AtriumError(errors.INVALID_PARAMETER, "Status is invalid", 400)
    return status


def max_duration_deadline(participant: ParticipantInfo, max_seconds: int) -> float:
    return participant.start_time.timestamp() + max_seconds
