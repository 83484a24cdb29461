"""Track rules: names, kinds, enable/disable, publish priority, SubscribeRules and who subscribes
to what.

Pure functions, no I/O (but a log line for a rejected rule set)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from atrium_shared import errors, rules
from atrium_shared.errors import (
    PARTICIPANT_NOT_FOUND,
    TRACK_INVALID,
    TRACK_NAME_DUPLICATED,
    TRACK_NAME_INVALID,
    TRACK_NAME_TOO_LONG,
    AtriumError,
)
from atrium_shared.events import TrackAdded, TrackDisabled, TrackEnabled, TrackRemoved
from atrium_shared.models import (
    DEFAULT_TRACK_PRIORITY,
    ParticipantInfo,
    RoomInfo,
    TrackInfo,
    TrackKind,
    TrackPriority,
)
from atrium_shared.track_api import SubscribedTrackInfo, SubscribeRule, SubscribeRules

log = logging.getLogger("atrium.track")

TrackEventT = TypeVar("TrackEventT", bound=TrackAdded | TrackRemoved | TrackEnabled | TrackDisabled)

MAX_NAME_LENGTH = 128
KINDS: tuple[TrackKind, ...] = ("audio", "video", "data")


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


def participant_not_found() -> AtriumError:
    """53204: a participant that is not (or no longer) in the room."""
    return AtriumError(PARTICIPANT_NOT_FOUND, "Participant not found", 400)


def check_participant(participant: ParticipantInfo, account_sid: str, room_sid: str) -> None:
    """The publisher is connected, in this account and room."""
    if (
        participant.account_sid != account_sid
        or participant.room_sid != room_sid
        or participant.status == "disconnected"
    ):
        raise participant_not_found()


def publish(
    participant: ParticipantInfo,
    name: str,
    kind: str,
    enabled: bool,
    sid: str,
    now: datetime,
    taken_names: Iterable[str],
    priority: TrackPriority = DEFAULT_TRACK_PRIORITY,
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
        priority=priority,
        date_created=now,
        date_updated=now,
    )
    check_name_free(track.name, taken_names)
    return track, _track_event(TrackAdded, participant, track, now)


def check_room_allows(
    room: RoomInfo | None, kind: str, codec: str | None, published_in_room: int
) -> None:
    """What the room's settings allow one more track of ``kind`` (sent as ``codec``):

    - AudioOnly rooms take no video (53125, twilio-video.js's RoomTrackKindNotSupportedError);
    - a video track's codec is one of the room's VideoCodecs (53125 too: the media worker only
      accepts those codecs from a publisher that offers one, so this is a publisher that
      offered none);
    - the whole room publishes at most ``max_concurrent_published_tracks`` at once, 0 meaning
      unconstrained (53203, "The maximum number of published tracks allowed in the Room at the
      same time has been reached").
    """
    if room is None:
        return
    if kind == "video" and room.audio_only:
        raise AtriumError(
            errors.TRACK_KIND_UNSUPPORTED, "The track kind is not supported by the Room", 400
        )
    if kind == "video" and codec is not None and codec.upper() not in room.video_codecs:
        raise AtriumError(
            errors.TRACK_KIND_UNSUPPORTED,
            "The track kind is not supported by the Room (its codec is not among VideoCodecs)",
            400,
        )
    limit = room.max_concurrent_published_tracks
    if limit and published_in_room >= limit:
        raise AtriumError(
            errors.MAX_PUBLISHED_TRACKS_REACHED,
            "The maximum number of published tracks allowed in the Room at the same time has "
            "been reached",
            400,
        )


def unpublish(participant: ParticipantInfo, track: TrackInfo, now: datetime) -> TrackRemoved:
    return _track_event(TrackRemoved, participant, track, now)


def set_enabled(
    participant: ParticipantInfo, track: TrackInfo, enabled: bool, now: datetime
) -> tuple[TrackInfo, TrackEnabled | TrackDisabled] | None:
    """Enable or disable a track; None when it already is (no event)."""
    if track.enabled == enabled:
        return None
    changed = track.model_copy(update={"enabled": enabled, "date_updated": now})
    event_type: type[TrackEnabled | TrackDisabled] = TrackEnabled if enabled else TrackDisabled
    return changed, _track_event(event_type, participant, changed, now)


def set_priority(track: TrackInfo, priority: TrackPriority, now: datetime) -> TrackInfo | None:
    """The track with its new publish priority; None when it has it already. Twilio has no
    status callback for it: no event."""
    if track.priority == priority:
        return None
    return track.model_copy(update={"priority": priority, "date_updated": now})


def _track_event(
    kind: type[TrackEventT], participant: ParticipantInfo, track: TrackInfo, now: datetime
) -> TrackEventT:
    """Every track event carries the track as it is now and its publisher."""
    return kind(
        account_sid=track.account_sid,
        room_sid=track.room_sid,
        occurred_at=now,
        participant=participant,
        track=track,
    )


# SubscribeRules -------------------------------------------------------------------------------
DEFAULT_RULES = (SubscribeRule(type="include", all=True),)


def rules_invalid(detail: str) -> AtriumError:
    """53215, as Twilio words it (``detail`` goes to the log, not to the client)."""
    return rules.SUBSCRIBE_RULES.invalid(detail)


def parse_rules(text: str | None) -> list[SubscribeRule]:
    """The ``Rules`` form value validated as Twilio does (:mod:`atrium_shared.rules`); anything
    invalid raises 53215."""
    return [SubscribeRule(**rule) for rule in rules.parse_rules(text, rules.SUBSCRIBE_RULES)]


def rule_matches(rule: SubscribeRule, track: TrackInfo, publisher_identity: str | None) -> bool:
    """Whether ``rule``'s filters (ANDed) all select ``track``."""
    if rule.all:
        return True
    if rule.publisher is not None and rule.publisher not in (
        track.participant_sid,
        publisher_identity,
    ):
        return False
    if rule.track is not None and rule.track not in (track.sid, track.name):
        return False
    if rule.kind is not None and rule.kind != track.kind:
        return False
    return rule.priority is None or rule.priority == track.priority


def filters_on_priority(rules: Iterable[SubscribeRule]) -> bool:
    """Whether what ``rules`` select can change with a track's publish priority."""
    return any(rule.priority is not None for rule in rules)


def redecided(rules: SubscribeRules) -> SubscribeRules:
    """The same rules under the next version: a decision they make about a track whose priority
    changed supersedes every decision made before (the worker keeps the newest version's).
    The rules and their dates, what REST shows, stay as they are."""
    return rules.model_copy(update={"version": rules.version + 1})


def should_subscribe(
    subscriber_sid: str,
    track: TrackInfo,
    rules: Sequence[SubscribeRule] = DEFAULT_RULES,
    publisher_identity: str | None = None,
) -> bool:
    """Whether ``subscriber_sid`` should receive ``track`` under its ``rules``.

    Rules apply in order from an empty set: ``include`` adds what it matches, ``exclude`` removes
    it; the last matching rule decides. A participant never receives its own tracks.
    """
    if subscriber_sid == track.participant_sid:
        return False
    selected = False
    for rule in rules:
        if rule_matches(rule, track, publisher_identity):
            selected = rule.type == "include"
    return selected


def subscribers_of(
    track: TrackInfo,
    participant_sids: Iterable[str],
    rules_of: Mapping[str, Sequence[SubscribeRule]] | None = None,
    publisher_identity: str | None = None,
) -> list[str]:
    """The participants in the room, the publisher excepted, whose rules select ``track``
    (those without rules in ``rules_of`` have the default, include all)."""
    rules_of = rules_of or {}
    return sorted(
        sid
        for sid in set(participant_sids)
        if should_subscribe(sid, track, rules_of.get(sid, DEFAULT_RULES), publisher_identity)
    )


def tracks_for(
    subscriber_sid: str,
    tracks: Iterable[TrackInfo],
    rules: Sequence[SubscribeRule] = DEFAULT_RULES,
    identities: Mapping[str, str] | None = None,
) -> list[TrackInfo]:
    """The published tracks of others that ``subscriber_sid``'s ``rules`` select;
    ``identities`` maps publishers' PA SIDs to their identities."""
    identities = identities or {}
    return [
        t
        for t in tracks
        if should_subscribe(subscriber_sid, t, rules, identities.get(t.participant_sid))
    ]


def set_rules(current: SubscribeRules, rules: list[SubscribeRule], now: datetime) -> SubscribeRules:
    """The participant's new rules: the next version, created now unless set before."""
    return current.model_copy(
        update={
            "rules": rules,
            "version": current.version + 1,
            "date_created": current.date_created or now,
            "date_updated": now,
        }
    )


def default_rules(account_sid: str, room_sid: str, participant_sid: str) -> SubscribeRules:
    return SubscribeRules(
        account_sid=account_sid,
        room_sid=room_sid,
        participant_sid=participant_sid,
        rules=list(DEFAULT_RULES),
    )


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
