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

from atrium_shared.models import RoomInfo
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


DomainEvent = Annotated[RoomCreated | RoomEnded, Field(discriminator="event_type")]
domain_event_adapter: TypeAdapter[DomainEvent] = TypeAdapter(DomainEvent)


def parse_event(raw: bytes | str) -> DomainEvent:
    return domain_event_adapter.validate_json(raw)
