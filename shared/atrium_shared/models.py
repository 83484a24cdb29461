"""Records that cross service boundaries: what RPC replies and events carry.

These are Atrium's own shapes (typed, UTC datetimes); the gateway turns them into Twilio's JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

RoomStatus = Literal["in-progress", "completed", "failed"]
RoomType = Literal["group", "go", "peer-to-peer", "group-small"]
CallbackMethod = Literal["GET", "POST"]
VideoCodec = Literal["VP8", "H264"]
DEFAULT_VIDEO_CODECS: tuple[VideoCodec, ...] = ("VP8", "H264")


class RoomInfo(BaseModel):
    """A Room as the room service owns it. ``version`` grows on every change."""

    sid: str
    account_sid: str
    unique_name: str
    status: RoomStatus = "in-progress"
    type: RoomType = "group"
    date_created: datetime
    date_updated: datetime
    end_time: datetime | None = None
    duration: int | None = None
    status_callback: str | None = None
    status_callback_method: CallbackMethod = "POST"
    max_participants: int = 50
    max_participant_duration: int = 14400
    max_concurrent_published_tracks: int | None = 170
    record_participants_on_connect: bool = False
    transcribe_participants_on_connect: bool = False
    transcriptions_configuration: dict[str, Any] | None = None
    video_codecs: list[VideoCodec] = Field(default_factory=lambda: list(DEFAULT_VIDEO_CODECS))
    media_region: str = "us1"
    audio_only: bool = False
    empty_room_timeout: int = 5
    unused_room_timeout: int = 5
    large_room: bool = False
    # As given at creation; empty when none were (see the recording service's initial rules).
    recording_rules: list[dict[str, Any]] = Field(default_factory=list)
    created_by: Literal["rest", "signaling"] = "rest"
    version: int = 0


T = TypeVar("T")


ParticipantStatus = Literal["connected", "disconnected", "reconnecting"]
TrackKind = Literal["audio", "video", "data"]
# A published track's priority, as twilio-video.js signals it (``participant.tracks[].priority``).
TrackPriority = Literal["low", "standard", "high"]
TRACK_PRIORITIES: tuple[TrackPriority, ...] = ("low", "standard", "high")
DEFAULT_TRACK_PRIORITY: TrackPriority = "standard"


class ParticipantInfo(BaseModel):
    """A Participant as the participant service owns it."""

    sid: str
    room_sid: str
    account_sid: str
    identity: str
    status: ParticipantStatus = "connected"
    date_created: datetime
    date_updated: datetime
    start_time: datetime
    end_time: datetime | None = None
    duration: int | None = None
    version: int = 1


class TrackInfo(BaseModel):
    """A published track as the track service owns it."""

    sid: str
    room_sid: str
    account_sid: str
    participant_sid: str
    name: str
    kind: TrackKind
    enabled: bool = True
    # Its publish priority (not part of Twilio's PublishedTrack resource: SubscribeRules'
    # ``priority`` filter and the media worker's layer allocation read it).
    priority: TrackPriority = DEFAULT_TRACK_PRIORITY
    date_created: datetime
    date_updated: datetime


class Page(BaseModel, Generic[T]):
    """One page of a keyset-paged listing. Cursors are opaque to everyone but the owner."""

    items: list[T]
    next_cursor: str | None = None
    previous_cursor: str | None = None
