"""Room rules: validation, creation, completion. Pure functions, no I/O.

Ranges and defaults follow Twilio's Rooms resource (see the project's REST reference). Legacy room
types are accepted as they were on Twilio for the accounts that used them, since the applications
moving to Atrium are exactly those accounts.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any, NamedTuple, cast

from atrium_shared import errors, rules
from atrium_shared.accounts import Account
from atrium_shared.callbacks import is_valid_status_callback
from atrium_shared.errors import AtriumError
from atrium_shared.events import RoomCreated, RoomEnded
from atrium_shared.models import CallbackMethod, RoomInfo, RoomType, VideoCodec
from atrium_shared.room_api import CreateRoomRequest
from atrium_shared.timefmt import whole_seconds

ROOM_TYPES: tuple[RoomType, ...] = ("group", "go", "peer-to-peer", "group-small")
MAX_PARTICIPANTS_BY_TYPE: dict[str, int] = {
    "group": 50,
    "group-small": 4,
    "peer-to-peer": 10,
    "go": 2,
}
LARGE_ROOM_MAX_PARTICIPANTS = 100
MAX_NAME_LENGTH = 128
TIMEOUT_MINUTES = range(1, 61)
MAX_PARTICIPANT_DURATION = range(600, 86401)
MEDIA_REGIONS = ("gll", "us1", "us2", "ie1", "de1", "au1", "br1", "jp1", "sg1", "in1")
# Twilio's examples show us1 for every room type; GLL is opt-in (Twilio's 2019 changelog).
DEFAULT_REGION = "us1"
VIDEO_CODECS: tuple[VideoCodec, ...] = ("VP8", "H264")
# Room types whose media goes from participant to participant, never through a media server.
PEER_TO_PEER_TYPES: tuple[RoomType, ...] = ("go", "peer-to-peer")
INCOMPATIBLE_MESSAGE = "Room creation parameter(s) incompatible with the Room type"


def max_published_tracks(room_type: str, large_room: bool) -> int:
    """Twilio's ``max_concurrent_published_tracks`` (the whole room's, 0 = unconstrained): its
    examples show 0 for go and peer-to-peer rooms, 16 for a large room, 170 otherwise."""
    if room_type in PEER_TO_PEER_TYPES:
        return 0
    return 16 if large_room else 170


def _invalid(code: int, message: str) -> AtriumError:
    return AtriumError(code, message, 400)


def validate_unique_name(name: str) -> str:
    if name == "" or name.strip() == "":
        raise _invalid(errors.ROOM_NAME_INVALID, "Room name is invalid")
    if len(name) > MAX_NAME_LENGTH:
        raise _invalid(errors.ROOM_NAME_TOO_LONG, "Room name is too long")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise _invalid(errors.ROOM_NAME_INVALID_CHARS, "Room name contains invalid characters")
    return name


def validate_status_callback(url: str) -> str:
    if not is_valid_status_callback(url):
        raise _invalid(errors.STATUS_CALLBACK_INVALID, "StatusCallback is invalid")
    return url


def validate_recording_rules(raw: Any) -> list[dict[str, Any]]:
    """RecordingRules as Twilio takes them (:mod:`atrium_shared.rules`), 53120 otherwise."""
    return rules.validate_rules(raw, rules.RECORDING_RULES)


def create_room(
    request: CreateRoomRequest, sid: str, now: datetime, created_by: str = "rest"
) -> tuple[RoomInfo, RoomCreated]:
    """Validate a create request and build the new room with its RoomCreated event."""
    room_type = request.type if request.type is not None else "group"
    if room_type not in ROOM_TYPES:
        raise _invalid(errors.ROOM_TYPE_INVALID, "RoomType is not valid")

    unique_name = (
        validate_unique_name(request.unique_name) if request.unique_name is not None else sid
    )

    status_callback = (
        validate_status_callback(request.status_callback)
        if request.status_callback not in (None, "")
        else None
    )
    # An empty value is a value (Twilio's 400), not the default: only a missing one defaults.
    method = (
        request.status_callback_method if request.status_callback_method is not None else "POST"
    ).upper()
    if method not in ("GET", "POST"):
        raise _invalid(errors.STATUS_CALLBACK_METHOD_INVALID, "StatusCallbackMethod is invalid")

    large_room = bool(request.large_room)
    if large_room and room_type != "group":
        raise _invalid(errors.ROOM_PARAMS_INCOMPATIBLE, INCOMPATIBLE_MESSAGE)
    # Go and peer-to-peer rooms carry media directly between the participants: nothing to record.
    if request.record_participants_on_connect and room_type in PEER_TO_PEER_TYPES:
        raise _invalid(errors.ROOM_PARAMS_INCOMPATIBLE, INCOMPATIBLE_MESSAGE)
    type_limit = MAX_PARTICIPANTS_BY_TYPE[room_type]
    limit = LARGE_ROOM_MAX_PARTICIPANTS if large_room and room_type == "group" else type_limit
    max_participants = (
        request.max_participants if request.max_participants is not None else type_limit
    )
    if not 1 <= max_participants <= limit:
        raise _invalid(errors.MAX_PARTICIPANTS_OUT_OF_RANGE, "MaxParticipants is out of range")

    audio_only = bool(request.audio_only)
    if audio_only and room_type != "group":
        raise _invalid(
            errors.AUDIO_ONLY_UNSUPPORTED, "The AudioOnly flag is not supported for the Room type"
        )

    for name, value in (
        ("EmptyRoomTimeout", request.empty_room_timeout),
        ("UnusedRoomTimeout", request.unused_room_timeout),
    ):
        if value is not None and value not in TIMEOUT_MINUTES:
            raise _invalid(errors.TIMEOUT_OUT_OF_RANGE, f"{name} is out of range")
    max_duration = request.max_participant_duration
    if max_duration is not None and max_duration not in MAX_PARTICIPANT_DURATION:
        raise _invalid(
            errors.MAX_PARTICIPANT_DURATION_OUT_OF_RANGE, "MaxParticipantDuration is out of range"
        )

    codecs: list[VideoCodec] = []
    for codec in request.video_codecs or []:
        upper = codec.upper()
        if upper not in VIDEO_CODECS:
            raise _invalid(
                errors.ROOM_PARAMS_INCOMPATIBLE, f"VideoCodecs value {codec!r} is invalid"
            )
        if upper not in codecs:
            codecs.append(upper)
    if audio_only:
        codecs = []
    elif not codecs:
        codecs = list(VIDEO_CODECS)

    media_region = request.media_region if request.media_region is not None else DEFAULT_REGION
    if media_region not in MEDIA_REGIONS:
        raise _invalid(errors.MEDIA_REGION_INVALID, "MediaRegion is invalid")

    # Empty: none given. The recording service then records everything only when
    # RecordParticipantsOnConnect is true, as Twilio does.
    recording_rules = (
        validate_recording_rules(request.recording_rules)
        if request.recording_rules is not None
        else []
    )
    if request.transcriptions_configuration is not None and not isinstance(
        request.transcriptions_configuration, dict
    ):
        raise _invalid(errors.INVALID_PARAMETER, "TranscriptionsConfiguration is invalid")

    room = RoomInfo(
        sid=sid,
        account_sid=request.account_sid,
        unique_name=unique_name,
        type=room_type,
        date_created=now,
        date_updated=now,
        duration=None,
        status_callback=status_callback,
        status_callback_method=cast(CallbackMethod, method),
        max_participants=max_participants,
        max_participant_duration=max_duration if max_duration is not None else 14400,
        max_concurrent_published_tracks=max_published_tracks(room_type, large_room),
        record_participants_on_connect=bool(request.record_participants_on_connect),
        transcribe_participants_on_connect=bool(request.transcribe_participants_on_connect),
        transcriptions_configuration=request.transcriptions_configuration,
        video_codecs=codecs,
        media_region=media_region,
        audio_only=audio_only,
        empty_room_timeout=request.empty_room_timeout or 5,
        unused_room_timeout=request.unused_room_timeout or 5,
        large_room=large_room,
        recording_rules=recording_rules,
        created_by="signaling" if created_by == "signaling" else "rest",
        version=1,
    )
    event = RoomCreated(account_sid=room.account_sid, room_sid=room.sid, occurred_at=now, room=room)
    return room, event


def ad_hoc_room_request(
    account_sid: str, unique_name: str, account: Account | None
) -> CreateRoomRequest:
    """The room a client's connect creates: Twilio's defaults, with the account's default
    StatusCallback. A default that is not a valid URL (the CLI refuses those) is left out rather
    than failing the join."""
    callback = account.default_status_callback if account is not None else None
    if callback is None or not is_valid_status_callback(callback):
        return CreateRoomRequest(account_sid=account_sid, unique_name=unique_name)
    assert account is not None
    return CreateRoomRequest(
        account_sid=account_sid,
        unique_name=unique_name,
        status_callback=callback,
        status_callback_method=account.default_status_callback_method,
    )


def complete_room(room: RoomInfo, now: datetime) -> tuple[RoomInfo, RoomEnded]:
    """End an in-progress room: status, end_time and duration. Anything else is 53112."""
    if room.status != "in-progress":
        raise _invalid(errors.STATUS_INVALID, "Status is invalid")
    duration = whole_seconds(room.date_created, now)
    ended = room.model_copy(
        update={
            "status": "completed",
            "end_time": now,
            "duration": duration,
            "date_updated": now,
            "version": room.version + 1,
        }
    )
    return ended, RoomEnded(
        account_sid=room.account_sid, room_sid=room.sid, occurred_at=now, room=ended
    )


def requested_status(status: str | None) -> str:
    """The only update Twilio allows on a room is Status=completed."""
    if status != "completed":
        raise _invalid(errors.STATUS_INVALID, "Status is invalid")
    return status


# What a room's timer does when it is due: end a room nobody joined, end a room everyone left, or
# forget a completed room once its retention is over.
UNUSED = "unused"
EMPTY = "empty"
PURGE = "purge"


class Timer(NamedTuple):
    """A pending timer of a room; at most one of each kind per room."""

    kind: str
    room_sid: str


def first_timer(room: RoomInfo, minute_seconds: float) -> tuple[Timer, float]:
    """The timer a new room starts with, and when it is due (epoch seconds).

    A REST room nobody joins ends after UnusedRoomTimeout; an ad-hoc room is created by its first
    joiner, so if that join fails it ends like an emptied room.
    """
    if room.created_by == "rest":
        return Timer(UNUSED, room.sid), unused_room_deadline(room, minute_seconds)
    since = room.date_created.timestamp()
    return Timer(EMPTY, room.sid), empty_room_deadline(room, since, minute_seconds)


def unused_room_deadline(room: RoomInfo, minute_seconds: float) -> float:
    """Epoch seconds at which a room that nobody joined ends."""
    return room.date_created.timestamp() + room.unused_room_timeout * minute_seconds


def empty_room_deadline(room: RoomInfo, since: float, minute_seconds: float) -> float:
    """Epoch seconds at which a room whose last participant left at ``since`` ends."""
    return since + room.empty_room_timeout * minute_seconds


def joinable(room: RoomInfo) -> RoomInfo:
    """Only an in-progress room takes participants (Twilio's 53118 otherwise)."""
    if room.status != "in-progress":
        raise AtriumError(errors.ROOM_COMPLETED, "Room completed", 400)
    return room
