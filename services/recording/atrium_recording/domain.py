"""Recording rules, which tracks are recorded, and the life of a Recording record.

Pure functions, no I/O (but a log line for a rejected rule set or settings update).

What a room records: its RecordingRules, applied to each of its live tracks like SubscribeRules
(in order from an empty set: ``include`` adds what it matches, ``exclude`` removes it; the filters
of one rule are ANDed). Until the rules are set through the REST resource, a room has its initial
rules (:func:`initial_rules`). Data tracks are never recorded.

A Recording goes ``processing`` (created when its track starts being recorded) -> ``completed``
(the worker stored a playable file) or ``failed`` (start, write or upload failed, or the worker
died); any status -> ``deleted`` by DELETE, once its media is removed.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from atrium_shared import errors, rules
from atrium_shared.errors import AtriumError
from atrium_shared.events import RecordingCompleted, RecordingFailed, RecordingStarted
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo, TrackKind
from atrium_shared.recording_api import (
    FailedOperation,
    ListRecordingsRequest,
    RecordingCommand,
    RecordingContainer,
    RecordingInfo,
    RecordingReport,
    RecordingRule,
    RecordingRules,
    RecordingSettings,
    SetRecordingSettingsRequest,
    StorageTarget,
    TrackToRecord,
)

log = logging.getLogger("atrium.recording")


class LiveTrack(BaseModel):
    """A track published in a room now, as the recording service knows it from ``track-added``:
    the track and its publisher's identity (what a ``publisher`` filter may name)."""

    track: TrackInfo
    identity: str


# RecordingRules --------------------------------------------------------------------------------
RECORDED_KINDS = rules.RECORDING_RULES.kinds  # data tracks are never recorded
INCLUDE_ALL = (RecordingRule(type="include", all=True),)
# What a room that records nothing reports (and accepts back): a valid rule set, unlike [].
RECORD_NOTHING = (RecordingRule(type="exclude", all=True),)


def rules_invalid(detail: str) -> AtriumError:
    """53120, as Twilio words it (``detail`` goes to the log, not to the client)."""
    return rules.RECORDING_RULES.invalid(detail)


def parse_rules(text: str | None) -> list[RecordingRule]:
    """The ``Rules`` form value validated as Twilio does (:mod:`atrium_shared.rules`); anything
    invalid raises 53120."""
    return [RecordingRule(**rule) for rule in rules.parse_rules(text, rules.RECORDING_RULES)]


def validate_rules(value: Any) -> list[RecordingRule]:
    """Rules already decoded from JSON (as a room's ``recording_rules`` are)."""
    return [RecordingRule(**rule) for rule in rules.validate_rules(value, rules.RECORDING_RULES)]


def initial_rules(room: RoomInfo) -> list[RecordingRule]:
    """A room's rules until they are set through the REST resource.

    ``RecordParticipantsOnConnect=true``: include all. Otherwise the ``RecordingRules`` the room
    was created with; a room created with neither records nothing (Twilio's default).
    """
    if room.record_participants_on_connect:
        return list(INCLUDE_ALL)
    stored = room.recording_rules
    if not stored:
        return list(RECORD_NOTHING)
    try:
        return validate_rules(stored)
    except AtriumError:
        # The room service validated them at creation (53120); never record on a rule we
        # cannot read.
        log.warning("room %s has unreadable recording rules; recording nothing", room.sid)
        return list(RECORD_NOTHING)


def room_rules(room: RoomInfo, stored: RecordingRules | None) -> RecordingRules:
    """The room's RecordingRules resource: as set, or the initial ones dated with the room."""
    if stored is not None:
        return stored
    return RecordingRules(
        account_sid=room.account_sid,
        room_sid=room.sid,
        rules=initial_rules(room),
        date_created=room.date_created,
        date_updated=room.date_created,
    )


def set_rules(current: RecordingRules, rules: list[RecordingRule], now: datetime) -> RecordingRules:
    return current.model_copy(update={"rules": rules, "date_updated": now})


def rule_matches(rule: RecordingRule, live: LiveTrack) -> bool:
    """Whether ``rule``'s filters (ANDed) all select the track."""
    if rule.all:
        return True
    track = live.track
    if rule.publisher is not None and rule.publisher not in (track.participant_sid, live.identity):
        return False
    if rule.track is not None and rule.track not in (track.sid, track.name):
        return False
    return rule.kind is None or rule.kind == track.kind


def should_record(live: LiveTrack, rules: Sequence[RecordingRule]) -> bool:
    """Whether the room's ``rules`` record the track; the last matching rule decides. Data
    tracks are never recorded."""
    if live.track.kind not in RECORDED_KINDS:
        return False
    selected = False
    for rule in rules:
        if rule_matches(rule, live):
            selected = rule.type == "include"
    return selected


@dataclass(frozen=True)
class Plan:
    """What a room's rules change about its live tracks: the tracks to start recording (oldest
    first) and the recordings to stop (track SID -> recording SID)."""

    start: list[LiveTrack]
    stop: dict[str, str]

    @property
    def empty(self) -> bool:
        return not self.start and not self.stop


def plan(
    live: Mapping[str, LiveTrack], active: Mapping[str, str], rules: Sequence[RecordingRule]
) -> Plan:
    """``live``: track SID -> the room's live tracks; ``active``: track SID -> the recording
    that records it now."""
    wanted = {sid for sid, track in live.items() if should_record(track, rules)}
    start = sorted(
        (live[sid] for sid in wanted - set(active)),
        key=lambda t: (t.track.date_created, t.track.sid),
    )
    stop = {sid: recording for sid, recording in active.items() if sid not in wanted}
    return Plan(start=start, stop=stop)


# Recording records ------------------------------------------------------------------------------
CONTAINERS: dict[TrackKind, RecordingContainer] = {"audio": "mka", "video": "mkv"}


def container_for(kind: TrackKind) -> RecordingContainer:
    """Matroska audio for audio, Matroska video for video (data tracks are not recorded)."""
    if kind not in CONTAINERS:
        raise ValueError(f"a {kind} track is not recorded")
    return CONTAINERS[kind]


def media_key(account_sid: str, recording_sid: str, container: RecordingContainer) -> str:
    return f"{account_sid}/{recording_sid}.{container}"


def offset_ms(room: RoomInfo, at: datetime) -> int:
    """Milliseconds from the room's creation (the Twilio Video epoch of its recordings)."""
    return max(0, int((at - room.date_created).total_seconds() * 1000))


def new_recording(
    sid: str, live: LiveTrack, room: RoomInfo, storage: StorageTarget, now: datetime
) -> RecordingInfo:
    """A track starts being recorded: ``processing``, its file named after the recording. The
    offset is estimated from now until the worker reports the first sample's."""
    track = live.track
    container = container_for(track.kind)
    return RecordingInfo(
        sid=sid,
        account_sid=track.account_sid,
        room_sid=track.room_sid,
        participant_sid=track.participant_sid,
        participant_identity=live.identity,
        source_sid=track.sid,
        track_name=track.name,
        type=track.kind,
        status="processing",
        container_format=container,
        date_created=now,
        date_updated=now,
        offset=offset_ms(room, now),
        storage=storage,
        media_key=media_key(track.account_sid, sid, container),
        status_callback=room.status_callback,
        status_callback_method=room.status_callback_method,
    )


def duration_seconds(seconds: float) -> int:
    """Rounded to the nearest second; a sub-second recording lasts 1 second (as Twilio)."""
    return max(1, math.floor(seconds + 0.5))


def _event_fields(recording: RecordingInfo, now: datetime) -> dict[str, Any]:
    return {
        "account_sid": recording.account_sid,
        "room_sid": recording.room_sid,
        "occurred_at": now,
        "recording": recording,
    }


def stop_requested(recording: RecordingInfo, now: datetime) -> RecordingInfo:
    """Its track is no longer recorded: the worker finishes the file and reports."""
    return recording.model_copy(update={"date_updated": now})


def started(
    recording: RecordingInfo, report: RecordingReport, now: datetime
) -> tuple[RecordingInfo, RecordingStarted] | None:
    """The worker writes the file: its codec, the first sample's offset, the worker. None when
    it was known to have started already, or is no longer processing (a late report)."""
    if recording.status != "processing" or recording.worker_id is not None:
        return None
    changed = recording.model_copy(
        update={
            "codec": report.codec or recording.codec,
            "offset": report.offset_ms if report.offset_ms is not None else recording.offset,
            "worker_id": report.worker_id,
            "date_updated": now,
        }
    )
    return changed, RecordingStarted(**_event_fields(changed, now))


def completed(
    recording: RecordingInfo, report: RecordingReport, now: datetime
) -> tuple[RecordingInfo, list[RecordingStarted | RecordingCompleted]] | None:
    """The file is stored. A completion whose start report was lost starts it first (so every
    recording-completed follows a recording-started). None unless processing."""
    if recording.status != "processing":
        return None
    events: list[RecordingStarted | RecordingCompleted] = []
    begun = started(recording, report, now)
    if begun is not None:
        recording, event = begun
        events.append(event)
    changed = recording.model_copy(
        update={
            "status": "completed",
            "codec": report.codec or recording.codec,
            "duration": duration_seconds(report.duration_seconds or 0.0),
            "size": report.size if report.size is not None else 0,
            # The worker knows the first sample's time only once the file is written.
            "offset": report.offset_ms if report.offset_ms is not None else recording.offset,
            "media_external_location": report.media_external_location,
            "worker_id": None,
            "date_updated": now,
        }
    )
    events.append(RecordingCompleted(**_event_fields(changed, now)))
    return changed, events


def failed(
    recording: RecordingInfo, operation: FailedOperation | None, now: datetime
) -> tuple[RecordingInfo, RecordingFailed] | None:
    """The recording failed: ``operation`` as reported, else RecordingStart for one that never
    started and RecordingComplete for one that did. None unless processing."""
    if recording.status != "processing":
        return None
    if operation is None:
        operation = "RecordingStart" if recording.worker_id is None else "RecordingComplete"
    changed = recording.model_copy(
        update={
            "status": "failed",
            "failed_operation": operation,
            "worker_id": None,
            "date_updated": now,
        }
    )
    return changed, RecordingFailed(**_event_fields(changed, now))


def check_deletable(recording: RecordingInfo) -> None:
    """A recording still being written cannot be deleted (its file is not final)."""
    if recording.status == "processing":
        raise AtriumError(
            errors.INVALID_PARAMETER, "A recording in progress cannot be deleted", 400
        )


def deleted(recording: RecordingInfo, now: datetime) -> RecordingInfo:
    return recording.model_copy(
        update={"status": "deleted", "date_deleted": now, "date_updated": now}
    )


def to_record(recording: RecordingInfo) -> TrackToRecord:
    return TrackToRecord(
        recording_sid=recording.sid,
        track_sid=recording.source_sid,
        participant_sid=recording.participant_sid,
        kind=recording.type,
        media_key=recording.media_key,
        storage=recording.storage,
    )


def command(
    room: RoomInfo, version: int, active: Iterable[RecordingInfo], stop: Iterable[str]
) -> RecordingCommand:
    """What the workers are told about a room: ``start`` is every recording the room should be
    writing now (the whole set, not only the new ones, so the newest command alone is the
    truth and a lost one is repaired by the next), ``stop`` the recordings to finish now."""
    return RecordingCommand(
        account_sid=room.account_sid,
        room_sid=room.sid,
        version=version,
        # Only what is still being written: a recording the worker already finished (its
        # track went away there first) is never started again.
        start=[
            to_record(r)
            for r in sorted(active, key=lambda r: (r.date_created, r.sid))
            if r.status == "processing"
        ],
        stop=sorted(stop),
    )


# Listing ---------------------------------------------------------------------------------------
def matches(recording: RecordingInfo, request: ListRecordingsRequest) -> bool:
    """Twilio's list filters (``GroupingSid``: every SID given is one of the recording's room and
    participant); the date window and the account are the index's and the check's."""
    if recording.account_sid != request.account_sid:
        return False
    if request.room_sid is not None and recording.room_sid != request.room_sid:
        return False
    if request.status is not None and recording.status != request.status:
        return False
    if request.source_sid is not None and recording.source_sid != request.source_sid:
        return False
    if request.media_type is not None and recording.type != request.media_type:
        return False
    grouping = {recording.room_sid, recording.participant_sid}
    return all(sid in grouping for sid in request.grouping_sids)


# Storage and settings --------------------------------------------------------------------------
_CREDENTIAL_SID = re.compile(r"^CR[0-9a-fA-F]{32}$")
_AWS_HOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-](?P<region>[a-z0-9-]+))?\.amazonaws\.com$")


def settings_invalid(name: str, detail: str) -> AtriumError:
    # The value is never part of the message: it may be a URL someone put a secret into.
    return AtriumError(errors.INVALID_PARAMETER, f"{name} is invalid: {detail}", 400)


def _check_s3_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "s3") or not parts.hostname:
        raise settings_invalid("AwsS3Url", "it must be an https:// (or s3://) URL of a bucket")
    if parts.username is not None or parts.password is not None:
        raise settings_invalid("AwsS3Url", "credentials do not belong in the URL")
    if parts.query or parts.fragment:
        raise settings_invalid("AwsS3Url", "a query or fragment is not allowed")


def _check_credential_sid(name: str, value: str | None) -> None:
    if value is not None and not _CREDENTIAL_SID.match(value):
        raise settings_invalid(name, "it must be a CR SID")


def updated_settings(
    current: RecordingSettings, request: SetRecordingSettingsRequest
) -> RecordingSettings:
    """Validate an update (``None``: unchanged) and apply it. FriendlyName is required, as on
    Twilio. Encryption is not offered: accepting it would store media the caller believes
    encrypted in the clear."""
    if request.friendly_name is None or not request.friendly_name.strip():
        raise AtriumError(
            errors.INVALID_PARAMETER, "Missing required parameter FriendlyName in the post body"
        )
    if len(request.friendly_name) > 255:
        raise settings_invalid("FriendlyName", "it is longer than 255 characters")
    if request.aws_s3_url is not None:
        _check_s3_url(request.aws_s3_url)
    _check_credential_sid("AwsCredentialsSid", request.aws_credentials_sid)
    _check_credential_sid("EncryptionKeySid", request.encryption_key_sid)
    changes = {
        name: value
        for name, value in request.model_dump(exclude={"account_sid"}).items()
        if value is not None
    }
    changed = current.model_copy(update=changes)
    if changed.aws_storage_enabled and not changed.aws_s3_url:
        raise settings_invalid("AwsStorageEnabled", "AwsS3Url is required to enable it")
    if changed.encryption_enabled:
        raise settings_invalid("EncryptionEnabled", "encrypted recordings are not supported")
    return changed


def default_settings(account_sid: str) -> RecordingSettings:
    return RecordingSettings(account_sid=account_sid)


def s3_target(url: str, endpoint_url: str | None = None) -> StorageTarget:
    """A bucket URL as Twilio takes it (``https://<bucket>.s3.<region>.amazonaws.com/<prefix>``,
    or a bare bucket host ``https://<bucket>/<prefix>``), path-style on another S3-compatible
    endpoint (``https://host/<bucket>/<prefix>``), or ``s3://<bucket>/<prefix>``."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    host = parts.hostname or ""
    if parts.scheme == "s3":
        return StorageTarget(kind="s3", bucket=host, prefix=path, endpoint_url=endpoint_url)
    aws = _AWS_HOST.match(host)
    if aws is not None:
        return StorageTarget(kind="s3", bucket=aws["bucket"], prefix=path, region=aws["region"])
    if "." not in host:
        return StorageTarget(kind="s3", bucket=host, prefix=path, endpoint_url=endpoint_url)
    bucket, _, prefix = path.partition("/")
    endpoint = f"{parts.scheme}://{parts.netloc}"
    return StorageTarget(kind="s3", bucket=bucket, prefix=prefix, endpoint_url=endpoint)


def storage_target(
    settings: RecordingSettings | None,
    default_s3_url: str | None,
    default_s3_endpoint: str | None,
    default_s3_region: str | None = None,
) -> StorageTarget:
    """Where a new recording goes: the account's bucket when its RecordingSettings enable one,
    else the operator's (``ATRIUM_RECORDINGS_S3_URL``), else the local recordings folder.

    A bucket whose URL names no region gets the deployment's (``Settings.recordings_s3_region``),
    so the worker that uploads the file and this service, which presigns and deletes it, sign
    for the same one. A target without an endpoint is on the deployment's S3 server
    (``Settings.recordings_s3_endpoint_url``; AWS when unset), on both sides."""
    if settings is not None and settings.aws_storage_enabled and settings.aws_s3_url:
        target = s3_target(settings.aws_s3_url)
    elif default_s3_url:
        target = s3_target(default_s3_url, default_s3_endpoint)
    else:
        return StorageTarget(kind="local")
    if target.region is None and default_s3_region:
        target = target.model_copy(update={"region": default_s3_region})
    return target


def participant_tracks(live: Mapping[str, LiveTrack], participant: ParticipantInfo) -> list[str]:
    return sorted(sid for sid, t in live.items() if t.track.participant_sid == participant.sid)
