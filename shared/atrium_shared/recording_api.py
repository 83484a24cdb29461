"""Recordings: the records, the rules that choose what is recorded, and what crosses the wire.

Who does what:

* The **recording service** owns Recording records (``RT`` SIDs), each room's RecordingRules and
  each account's RecordingSettings. It hears ``track-added`` / ``track-removed`` / ``room-ended``
  from the event stream, decides with the room's rules which tracks are recorded, and tells the
  media workers (:class:`RecordingCommand`, broadcast on ``subjects.MEDIA_RECORDINGS``).
* The **media worker** hosting the room writes each recorded track to its own Matroska file as its
  RTP arrives (depacketized and muxed, never decoded), puts the finished file into the storage the
  command names, and reports back (:class:`RecordingReport` on ``subjects.RECORDING_REPORT``).
* The **gateway** serves the REST resources by asking the recording service
  (``subjects.RECORDING_*``) and hands out the media through a time-limited signed URL.

Status flow of a recording: ``processing`` (started) -> ``completed`` (file stored) or ``failed``
(start, write or upload failed, or the worker died); ``deleted`` after DELETE (media removed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from atrium_shared.models import CallbackMethod, Page, TrackKind

RecordingStatus = Literal["processing", "completed", "deleted", "failed"]
RecordingCodec = Literal["VP8", "H264", "OPUS", "PCMU"]
RecordingContainer = Literal["mka", "mkv"]
FailedOperation = Literal["RecordingStart", "RecordingComplete", "RecordingUpload"]
MAX_RECORDING_RULES = 20


class RecordingRule(BaseModel):
    """One validated RecordingRule: ``type`` and either ``all`` or filters (ANDed).

    The same model as SubscribeRules without ``priority``: ``publisher`` is an identity or a PA
    SID, ``track`` a track name or an MT SID, ``kind`` ``audio`` or ``video``.
    """

    type: Literal["include", "exclude"]
    all: bool | None = None
    publisher: str | None = None
    track: str | None = None
    kind: Literal["audio", "video"] | None = None


class RecordingRules(BaseModel):
    account_sid: str
    room_sid: str
    rules: list[RecordingRule]
    date_created: datetime | None = None
    date_updated: datetime | None = None


class StorageTarget(BaseModel):
    """Where a recording's file goes. ``local``: under the media worker's recordings folder
    (``Settings.recordings_dir``); ``s3``: a bucket of an S3-compatible service."""

    kind: Literal["local", "s3"] = "local"
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None


class RecordingInfo(BaseModel):
    """A Recording as the recording service owns it (Atrium's shape; the gateway renders
    Twilio's JSON)."""

    sid: str
    account_sid: str
    room_sid: str
    participant_sid: str
    participant_identity: str
    source_sid: str  # the MT SID of the recorded track
    track_name: str
    type: TrackKind
    status: RecordingStatus = "processing"
    codec: RecordingCodec | None = None
    container_format: RecordingContainer
    date_created: datetime
    date_updated: datetime
    date_deleted: datetime | None = None
    duration: int | None = None  # seconds, at least 1 once completed
    size: int | None = None  # bytes
    # Milliseconds between the Twilio Video epoch (the room's creation) and the first sample,
    # so the tracks of one room can be aligned.
    offset: int = 0
    storage: StorageTarget = Field(default_factory=StorageTarget)
    media_key: str  # the file's key (local: path under the recordings folder)
    media_external_location: str | None = None  # s3://bucket/key for S3 storage
    status_callback: str | None = None
    status_callback_method: CallbackMethod = "POST"
    failed_operation: FailedOperation | None = None
    worker_id: str | None = None  # the media worker writing it (until it is completed)


class RecordingSettings(BaseModel):
    """An account's default RecordingSettings. ``aws_credentials_sid`` names credentials the
    operator configured; secrets are never part of this model."""

    account_sid: str
    friendly_name: str = "Default"
    aws_storage_enabled: bool = False
    aws_s3_url: str | None = None
    aws_credentials_sid: str | None = None
    encryption_enabled: bool = False
    encryption_key_sid: str | None = None


# Worker <-> recording service ------------------------------------------------------------------
class TrackToRecord(BaseModel):
    recording_sid: str
    track_sid: str
    participant_sid: str
    kind: TrackKind
    media_key: str
    storage: StorageTarget


class RecordingCommand(BaseModel):
    """Recording service -> every media worker: in ``room_sid``, start recording ``start`` and
    stop (finish) ``stop``. A worker that does not host the room ignores it. ``version`` grows per
    room so a worker never undoes a newer command with an older one."""

    account_sid: str
    room_sid: str
    version: int
    start: list[TrackToRecord] = Field(default_factory=list)
    stop: list[str] = Field(default_factory=list)  # recording SIDs


class RecordingReport(BaseModel):
    """Media worker -> recording service: a recording started, was completed or failed."""

    account_sid: str
    room_sid: str
    recording_sid: str
    worker_id: str
    outcome: Literal["started", "completed", "failed"]
    codec: RecordingCodec | None = None
    offset_ms: int | None = None
    duration_seconds: float | None = None
    size: int | None = None
    media_external_location: str | None = None
    failed_operation: FailedOperation | None = None
    reason: str | None = None  # for the log, never shown to clients


# REST <-> recording service --------------------------------------------------------------------
class ListRecordingsRequest(BaseModel):
    account_sid: str
    room_sid: str | None = None  # /Rooms/{RoomSid}/Recordings
    status: RecordingStatus | None = None
    source_sid: str | None = None
    grouping_sids: list[str] = Field(default_factory=list)
    media_type: TrackKind | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class RecordingPage(Page[RecordingInfo]):
    pass


class FetchRecordingRequest(BaseModel):
    account_sid: str
    recording_sid: str
    room_sid: str | None = None


class DeleteRecordingRequest(BaseModel):
    account_sid: str
    recording_sid: str
    room_sid: str | None = None


class RecordingMediaRequest(BaseModel):
    """Where the media of a recording can be downloaded for ``expires_in`` seconds."""

    account_sid: str
    recording_sid: str
    room_sid: str | None = None
    expires_in: int = 600


class RecordingMediaLocation(BaseModel):
    """``url``: a presigned URL (S3); or None and ``media_key`` for the gateway to serve."""

    recording: RecordingInfo
    url: str | None = None
    media_key: str | None = None


class FetchRecordingRulesRequest(BaseModel):
    account_sid: str
    room_sid: str


class SetRecordingRulesRequest(BaseModel):
    """``rules``: the ``Rules`` form value as sent (JSON text); the service validates (53120)."""

    account_sid: str
    room_sid: str
    rules: str | None


class FetchRecordingSettingsRequest(BaseModel):
    account_sid: str


class SetRecordingSettingsRequest(BaseModel):
    account_sid: str
    friendly_name: str | None = None
    aws_storage_enabled: bool | None = None
    aws_s3_url: str | None = None
    aws_credentials_sid: str | None = None
    encryption_enabled: bool | None = None
    encryption_key_sid: str | None = None
