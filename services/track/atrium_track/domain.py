"""Track rules: names, kinds, enable/disable, who subscribes to what. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.events import TrackAdded, TrackDisabled, TrackEnabled, TrackRemoved
from atrium_shared.models import ParticipantInfo, TrackInfo, TrackKind
from atrium_shared.track_api import SubscribedTrackInfo

MAX_NAME_LENGTH = 128
KINDS: tuple[TrackKind, ...] = ("audio", "video", "data")
TRACK_INVALID = 53300
TRACK_NAME_INVALID = 53301
TRACK_NAME_TOO_LONG = 53302
TRACK_NAME_DUPLICATED = 53304
PARTICIPANT_NOT_FOUND = 53204


def validate_kind(kind: str) -> TrackKind:
    if kind not in KINDS:
        raise AtriumError(TRACK_INVALID, "Track is invalid", 400)
    return kind


def validate_name(name: str) -> str:
    if not name:
        raise AtriumError(TRACK_NAME_INVALID, "Track name is invalid", 400)
    if len(name) > MAX_NAME_LENGTH:
        raise AtriumError(TRACK_NAME_TOO_LONG, "Track name is too long", 400)
    return name


def check_name_free(name: str, taken: Iterable[str]) -> None:
    """A name is unique among one participant's published tracks."""
    if name in taken:
        raise AtriumError(TRACK_NAME_DUPLICATED, "Track name is duplicated", 400)


def check_participant(participant: ParticipantInfo, account_sid: str, room_sid: str) -> None:
    """The publisher is connected, in this account and room."""
    if (
        participant.account_sid != account_sid
        or participant.room_sid != room_sid
        or participant.status == "disconnected"
    ):
        raise AtriumError(PARTICIPANT_NOT_FOUND, "Participant not found", 400)


def publish(
    participant: ParticipantInfo,
    name: str,
    kind: str,
    enabled: bool,
    sid: str,
    now: datetime,
    taken_names: Iterable[str],
) -> tuple[TrackInfo, TrackAdded]:
    """A new published track; raises 53300-53304 for a bad kind or name."""
    track = TrackInfo(
        sid=sid,
        room_sid=participant.room_sid,
        account_sid=participant.account_sid,
        participant_sid=participant.sid,
        name=validate_name(name),
        kind=validate_kind(kind),
        enabled=enabled,
        date_created=now,
        date_updated=now,
    )
    check_name_free(track.name, taken_names)
    return track, TrackAdded(
        account_sid=track.account_sid, room_sid=track.room_sid, occurred_at=now,
        participant=participant, track=track,
    )


def unpublish(participant: ParticipantInfo, track: TrackInfo, now: datetime) -> TrackRemoved:
    return TrackRemoved(
        account_sid=track.account_sid, room_sid=track.room_sid, occurred_at=now,
        participant=participant, track=track,
    )


def set_enabled(
    participant: ParticipantInfo, track: TrackInfo, enabled: bool, now: datetime
) -> tuple[TrackInfo, TrackEnabled | TrackDisabled] | None:
    """Enable or disable a track; None when it already is (no event)."""
    if track.enabled == enabled:
        return None
    changed = track.model_copy(update={"enabled": enabled, "date_updated": now})
    event_type = TrackEnabled if enabled else TrackDisabled
    return changed, event_type(
        account_sid=track.account_sid, room_sid=track.room_sid, occurred_at=now,
        participant=participant, track=changed,
    )


def should_subscribe(subscriber_sid: str, track: TrackInfo) -> bool:
    """Whether ``subscriber_sid`` should receive ``track``.

    Every participant subscribes to every track of the others (Twilio's default rule
    ``[{"type": "include", "all": true}]``); SubscribeRules will decide here.
    """
    return True


def subscribers_of(track: TrackInfo, participant_sids: Iterable[str]) -> list[str]:
    """The participants in the room, the publisher excepted, that should receive ``track``."""
    return sorted(
        sid for sid in set(participant_sids)
        if sid != track.participant_sid and should_subscribe(sid, track)
    )


def tracks_for(subscriber_sid: str, tracks: Iterable[TrackInfo]) -> list[TrackInfo]:
    """The published tracks of others that ``subscriber_sid`` should receive."""
    return [
        t for t in tracks
        if t.participant_sid != subscriber_sid and should_subscribe(subscriber_sid, t)
    ]


def subscription(subscriber_sid: str, track: TrackInfo, since: datetime) -> SubscribedTrackInfo:
    """A subscriber's view of a published track it receives since ``since``."""
    return SubscribedTrackInfo(
        sid=track.sid,
        account_sid=track.account_sid,
        room_sid=track.room_sid,
        participant_sid=subscriber_sid,
        publisher_sid=track.participant_sid,
        name=track.name,
        kind=track.kind,
        enabled=track.enabled,
        date_created=since,
        date_updated=max(since, track.date_updated),
    )


def check_subscriber(subscriber_sid: str, track: TrackInfo) -> None:
    if subscriber_sid == track.participant_sid:
        raise AtriumError(
            errors.INVALID_PARAMETER, "A participant cannot subscribe to its own track", 400
        )
