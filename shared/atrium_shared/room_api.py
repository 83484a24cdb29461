"""Requests the room service answers over NATS (subjects in :mod:`atrium_shared.subjects`).

The gateway turns Twilio's form parameters into these typed requests (parsing booleans, integers
and JSON); the room service applies the domain rules (ranges, enums, uniqueness). ``None`` means
the caller left the parameter out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from atrium_shared.models import Page, RoomInfo


class CreateRoomRequest(BaseModel):
    account_sid: str
    type: str | None = None
    unique_name: str | None = None
    status_callback: str | None = None
    status_callback_method: str | None = None
    max_participants: int | None = None
    record_participants_on_connect: bool | None = None
    transcribe_participants_on_connect: bool | None = None
    transcriptions_configuration: dict[str, Any] | None = None
    video_codecs: list[str] | None = None
    media_region: str | None = None
    recording_rules: Any = None
    audio_only: bool | None = None
    max_participant_duration: int | None = None
    empty_room_timeout: int | None = None
    unused_room_timeout: int | None = None
    large_room: bool | None = None
    enable_turn: bool | None = None


class FetchRoomRequest(BaseModel):
    account_sid: str
    sid_or_name: str


class UpdateRoomRequest(BaseModel):
    account_sid: str
    sid_or_name: str
    status: str | None = None


class ListRoomsRequest(BaseModel):
    account_sid: str
    status: str = "in-progress"
    unique_name: str | None = None
    created_on_or_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class RoomPage(Page[RoomInfo]):
    pass


class JoinRoomRequest(BaseModel):
    """A client is joining ``room`` (a unique name or an RM SID) over signaling.

    A name no in-progress room holds creates an ad-hoc group room, as Twilio does.
    """

    account_sid: str
    room: str


class JoinRoomResult(BaseModel):
    room: RoomInfo
    worker_id: str
