"""Domain events: one model per event, all sharing one envelope.

Events are written to the outbox in the same atomic step as the state change they describe and
relayed to the JetStream stream ``ATRIUM_EVENTS``. ``sequence_number`` counts per room, starting at
0 with ``RoomCreated``; ``event_id`` is the JetStream de-duplication key (``Nats-Msg-Id``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.recording_api import RecordingInfo
from atrium_shared.timefmt import utcnow


class EventBase(BaseModel):
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    occurred_at: datetime = Field(default_factory=utcnow)
    account_sid: str
    room_sid: str
    # Assigned by the outbox when the event is committed; -1 until then.
    sequence_number: int = -1


class RoomCreated(EventBase):
    event_type: Literal["room-created"] = "room-created"
    room: RoomInfo


class RoomEnded(EventBase):
    event_type: Literal["room-ended"] = "room-ended"
    room: RoomInfo


class ParticipantConnected(EventBase):
    event_type: Literal["participant-connected"] = "participant-connected"
    participant: ParticipantInfo


class ParticipantDisconnected(EventBase):
    event_type: Literal["participant-disconnected"] = "participant-disconnected"
    participant: ParticipantInfo
    # Why the participant left: "left", "kicked", "duplicate-identity", "room-ended",
    # "max-duration", "connection-lost". Workers use it to tell the client.
    reason: str = "left"


class ParticipantAnonymized(EventBase):
    """A participant's identity was replaced by its SID (REST ``Anonymize``). No status
    callback: the services that keep copies of the identity (queued callbacks, recordings)
    replace theirs. The event carries the participant as it is now, never the old identity."""

    event_type: Literal["participant-anonymized"] = "participant-anonymized"
    participant: ParticipantInfo


class TrackAdded(EventBase):
    event_type: Literal["track-added"] = "track-added"
    participant: ParticipantInfo
    track: TrackInfo


class TrackRemoved(EventBase):
    event_type: Literal["track-removed"] = "track-removed"
    participant: ParticipantInfo
    track: TrackInfo


class TrackEnabled(EventBase):
    event_type: Literal["track-enabled"] = "track-enabled"
    participant: ParticipantInfo
    track: TrackInfo


class TrackDisabled(EventBase):
    event_type: Literal["track-disabled"] = "track-disabled"
    participant: ParticipantInfo
    track: TrackInfo


class RecordingStarted(EventBase):
    event_type: Literal["recording-started"] = "recording-started"
    recording: RecordingInfo


class RecordingCompleted(EventBase):
    event_type: Literal["recording-completed"] = "recording-completed"
    recording: RecordingInfo


class RecordingFailed(EventBase):
    event_type: Literal["recording-failed"] = "recording-failed"
    recording: RecordingInfo


DomainEvent = Annotated[
    RoomCreated
    | RoomEnded
    | ParticipantConnected
    | ParticipantDisconnected
    | ParticipantAnonymized
    | TrackAdded
    | TrackRemoved
    | TrackEnabled
    | TrackDisabled
    | RecordingStarted
    | RecordingCompleted
    | RecordingFailed,
    Field(discriminator="event_type"),
]
domain_event_adapter: TypeAdapter[DomainEvent] = TypeAdapter(DomainEvent)


def parse_event(raw: bytes | str) -> DomainEvent:
    return domain_event_adapter.validate_json(raw)
