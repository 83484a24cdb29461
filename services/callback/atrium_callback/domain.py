"""Status-callback rules, free of I/O.

- what the service remembers of a room (:class:`RoomProjection`, :func:`projection_update`) and
  of each callback waiting to go out (:class:`PendingCallback`);
- what Twilio sends for each event (:func:`callback_params`);
- how the request is signed (:func:`twilio_signature`) and shaped for POST or GET
  (:func:`build_request`);
- Twilio's connection overrides in the URL fragment (:func:`parse_callback_url`);
- whether and when a failed try is retried (:class:`RetryPlan`), and how a callback's series of
  tries is logged (:func:`delivery_record`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field, TypeAdapter
from pydantic.dataclasses import dataclass as pydantic_dataclass

from atrium_shared.callbacks import DeliveryQuery, DeliveryRecord
from atrium_shared.events import (
    DomainEvent,
    ParticipantConnected,
    ParticipantDisconnected,
    RecordingCompleted,
    RecordingFailed,
    RecordingStarted,
    RoomCreated,
    RoomEnded,
    TrackAdded,
    TrackDisabled,
    TrackEnabled,
    TrackRemoved,
)
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.settings import Settings
from atrium_shared.timefmt import to_callback_timestamp, whole_seconds

Method = Literal["GET", "POST"]
# What became of an event taken in: its callback queued, a redelivery of one taken in before, or
# an event of a room without a StatusCallback.
IntakeOutcome = Literal["queued", "duplicate", "no-callback"]

# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@pydantic_dataclass(frozen=True)
class RoomProjection:
    """What the callback service remembers of a room, from the events that carried the room.

    Later events (participants, tracks) carry only the room SID; their callbacks still need the
    room's StatusCallback, name and type. Stored as this one model, serialized by pydantic.
    """

    account_sid: str
    url: str | None
    method: Method = "POST"
    room_name: str = ""
    room_type: str = "group"


# The one serialized form of a projection (what the store keeps, one JSON value per room).
projection_json: TypeAdapter[RoomProjection] = TypeAdapter(RoomProjection)


def projection_from_event(event: DomainEvent) -> RoomProjection | None:
    """The room as this event describes it, or None if the event does not carry the room."""
    room = getattr(event, "room", None)
    if room is None:
        return None
    return RoomProjection(
        account_sid=event.account_sid,
        url=room.status_callback or None,
        method=room.status_callback_method,
        room_name=room.unique_name,
        room_type=room.type,
    )


@dataclass(frozen=True)
class ProjectionUpdate:
    """How one event changes what is known of its room.

    Only rooms with a StatusCallback are remembered: for a room without one, nothing is sent, and
    "not known" says the same. The room's creation defines the projection (its StatusCallback
    never changes afterwards); another event that carries the room only fills in for a room not
    known yet, so a late event without the callback cannot undo the creation's.
    """

    room: RoomProjection | None  # as the event describes it; None if it does not carry the room
    defines: bool = False  # the room's creation
    ended: bool = False  # the room ended: its projection is forgotten a while after

    @property
    def remembered(self) -> RoomProjection | None:
        """The room as the event describes it, if it is one to remember (it has a callback)."""
        return self.room if self.room is not None and self.room.url else None

    def apply(self, known: RoomProjection | None) -> RoomProjection | None:
        """The projection after this update, given the one ``known`` before."""
        if self.defines:
            return self.remembered
        return known or self.remembered


def projection_update(event: DomainEvent) -> ProjectionUpdate:
    return ProjectionUpdate(
        room=projection_from_event(event),
        defines=event.event_type == "room-created",
        ended=event.event_type == "room-ended",
    )


# Builders of the parameters specific to one event type; the common ones (and RoomStatus
# in-progress) come from :func:`callback_params`.
ParamBuilder = Callable[[DomainEvent], dict[str, str]]


def _room_created_params(event: DomainEvent) -> dict[str, str]:
    assert isinstance(event, RoomCreated)
    return {"RoomStatus": str(event.room.status)}


def _room_ended_params(event: DomainEvent) -> dict[str, str]:
    assert isinstance(event, RoomEnded)
    params: dict[str, str] = {"RoomStatus": event.room.status}
    if event.room.duration is not None:
        params["RoomDuration"] = str(event.room.duration)
    return params


def _participant(participant: ParticipantInfo) -> dict[str, str]:
    """Sent with every participant and track event: who, and whether still connected."""
    return {
        "ParticipantSid": participant.sid,
        "ParticipantStatus": participant.status,
        "ParticipantIdentity": participant.identity,
    }


def _track(track: TrackInfo) -> dict[str, str]:
    return {"TrackSid": track.sid, "TrackKind": track.kind, "TrackName": track.name}


def _participant_connected_params(event: DomainEvent) -> dict[str, str]:
    assert isinstance(event, ParticipantConnected)
    return _participant(event.participant)


def participant_duration(event: ParticipantDisconnected) -> int:
    """Whole seconds connected: the participant's duration, else from its start to its end."""
    participant = event.participant
    if participant.duration is not None:
        return participant.duration
    end = participant.end_time or event.occurred_at
    return whole_seconds(participant.start_time, end)


def _participant_disconnected_params(event: DomainEvent) -> dict[str, str]:
    assert isinstance(event, ParticipantDisconnected)
    return {
        **_participant(event.participant),
        "ParticipantDuration": str(participant_duration(event)),
    }


def _track_params(event: DomainEvent) -> dict[str, str]:
    assert isinstance(event, TrackAdded | TrackRemoved | TrackEnabled | TrackDisabled)
    return {**_participant(event.participant), **_track(event.track)}


def _recording_params(event: DomainEvent) -> dict[str, str]:
    """Twilio's recording-* parameters; the media ones only once the file exists."""
    assert isinstance(event, RecordingStarted | RecordingCompleted | RecordingFailed)
    recording = event.recording
    params = {
        "RecordingSid": recording.sid,
        "ParticipantSid": recording.participant_sid,
        "ParticipantIdentity": recording.participant_identity,
        "SourceSid": recording.source_sid,
        "RecordingUri": f"/v1/Recordings/{recording.sid}",
        "Container": recording.container_format,
        "Codec": recording.codec or "",
        "TrackName": recording.track_name,
        "OffsetFromTwilioVideoEpoch": str(recording.offset),
        "Type": recording.type,
    }
    if isinstance(event, RecordingCompleted):
        params["MediaUri"] = f"/v1/Recordings/{recording.sid}/Media"
        params["Duration"] = str(recording.duration or 0)
        params["Size"] = str(recording.size or 0)
        params["MediaExternalLocation"] = recording.media_external_location or ""
    if isinstance(event, RecordingFailed):
        params["FailedOperation"] = recording.failed_operation or "RecordingComplete"
    return params


EVENT_PARAMS: dict[str, ParamBuilder] = {
    "room-created": _room_created_params,
    "room-ended": _room_ended_params,
    "participant-connected": _participant_connected_params,
    "participant-disconnected": _participant_disconnected_params,
    "track-added": _track_params,
    "track-removed": _track_params,
    "track-enabled": _track_params,
    "track-disabled": _track_params,
    "recording-started": _recording_params,
    "recording-completed": _recording_params,
    "recording-failed": _recording_params,
}


# Events Twilio sends no status callback for (the intake acts on them instead).
SILENT_EVENTS = frozenset({"participant-anonymized"})


def callback_params(event: DomainEvent, room: RoomProjection) -> dict[str, str]:
    """Twilio's form parameters for ``event`` of ``room``."""
    params = {
        "AccountSid": event.account_sid,
        "RoomName": room.room_name or event.room_sid,
        "RoomSid": event.room_sid,
        # Events that do not say otherwise happen in a live room.
        "RoomStatus": "in-progress",
        "RoomType": room.room_type,
        "StatusCallbackEvent": event.event_type,
        "Timestamp": to_callback_timestamp(event.occurred_at),
        "SequenceNumber": str(event.sequence_number),
    }
    builder = EVENT_PARAMS.get(event.event_type)
    if builder is not None:
        params.update(builder(event))
    return params


# --------------------------------------------------------------------------------------------
# Signature and request shape
# --------------------------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature``: HMAC-SHA1 of the URL followed by the sorted name+value pairs."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode().strip()


@dataclass(frozen=True)
class CallbackRequest:
    method: Method
    url: str  # what is requested and signed: no fragment, no credentials, GET params included
    form: dict[str, str] | None  # POST body; None for GET
    signature: str
    basic_auth: tuple[str, str] | None = None


def build_request(
    target: CallbackUrl, method: Method, params: Mapping[str, str], auth_token: str
) -> CallbackRequest:
    if method == "GET":
        # Parameters join whatever query the application put in its URL.
        parts = urlsplit(target.url)
        query = parts.query + ("&" if parts.query else "") + urlencode(params)
        url = urlunsplit(parts._replace(query=query))
        return CallbackRequest(
            "GET", url, None, twilio_signature(auth_token, url, {}), target.basic_auth
        )
    form = dict(params)
    return CallbackRequest(
        "POST", target.url, form, twilio_signature(auth_token, target.url, form), target.basic_auth
    )


# --------------------------------------------------------------------------------------------
# Connection overrides (#ct=..&rt=..&tt=..&rc=..&rp=..)
# --------------------------------------------------------------------------------------------

FailureKind = Literal["4xx", "5xx", "ct", "rt"]
ALL_FAILURES: frozenset[str] = frozenset({"4xx", "5xx", "ct", "rt"})
TWILIO_DEFAULT_RETRY_POLICY: frozenset[str] = frozenset({"ct", "rt"})
TWILIO_DEFAULT_RETRY_COUNT = 1


@dataclass(frozen=True)
class ConnectionOverrides:
    """What the URL fragment asked for; None where it said nothing (or nothing valid)."""

    connect_timeout_ms: int | None = None
    read_timeout_ms: int | None = None
    total_time_ms: int | None = None
    retry_count: int | None = None
    retry_policy: frozenset[str] | None = None


def _clamped_int(text: str, low: int, high: int) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return max(low, min(high, value))


def parse_overrides(fragment: str) -> ConnectionOverrides:
    """Parse Twilio's fragment overrides. Bad values are ignored, out-of-range ones clamped."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(fragment, keep_blank_values=True):
        values[name.strip()] = value
    policy: frozenset[str] | None = None
    if "rp" in values:
        tokens = {token.strip().lower() for token in values["rp"].split(",")}
        if "all" in tokens:
            policy = ALL_FAILURES
        else:
            known = frozenset(tokens & ALL_FAILURES)
            policy = known or None
    # `e` (edge) and `sni` are Twilio routing hints: accepted, meaningless here.
    return ConnectionOverrides(
        connect_timeout_ms=_clamped_int(values["ct"], 100, 10000) if "ct" in values else None,
        read_timeout_ms=_clamped_int(values["rt"], 100, 15000) if "rt" in values else None,
        total_time_ms=_clamped_int(values["tt"], 100, 15000) if "tt" in values else None,
        retry_count=_clamped_int(values["rc"], 0, 5) if "rc" in values else None,
        retry_policy=policy,
    )


@dataclass(frozen=True)
class CallbackUrl:
    url: str  # requested and signed: fragment and credentials removed
    overrides: ConnectionOverrides = field(default_factory=ConnectionOverrides)
    basic_auth: tuple[str, str] | None = None


def parse_callback_url(raw: str) -> CallbackUrl:
    """Split a StatusCallback into the URL to request, its overrides and its credentials.

    The fragment is never sent and never signed. Credentials (``user:pass@``) become Basic auth;
    the receiver cannot see them in the request URL, so they are not signed either.
    """
    parts = urlsplit(raw.strip())
    overrides = parse_overrides(parts.fragment)
    credentials = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        credentials = (unquote(user), unquote(password))
    clean = SplitResult(parts.scheme, netloc, parts.path, parts.query, "")
    return CallbackUrl(urlunsplit(clean), overrides, credentials)


def public_url(raw: str) -> str:
    """The URL as it may be shown or logged: no credentials, no fragment."""
    return parse_callback_url(raw).url


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    status: int | None = None  # HTTP status, None if there was no response
    failure: FailureKind | None = None  # for transport failures: "ct" or "rt"
    error: str | None = None
    permanent: bool = False  # e.g. an unusable URL: no try can succeed

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def kind(self) -> FailureKind | None:
        if self.delivered:
            return None
        if self.status is not None:
            return "5xx" if self.status >= 500 else "4xx"
        return self.failure or "ct"


@dataclass(frozen=True)
class Timeouts:
    connect_s: float
    read_s: float
    total_s: float  # bound of one try


@dataclass(frozen=True)
class RetryPlan:
    """How often and on what a callback is retried, and how long the whole series may take."""

    max_attempts: int
    retry_on: frozenset[str]
    retry_on_429: bool
    total_deadline_ms: int | None  # from the first try; None: unbounded (attempts bound it)
    backoff_initial_s: float
    backoff_max_s: float
    timeouts: Timeouts

    def backoff(self, attempts_done: int) -> float:
        """Wait before the next try, after ``attempts_done`` (>= 1) failed ones."""
        delay = self.backoff_initial_s * (2 ** max(0, attempts_done - 1))
        return float(min(delay, self.backoff_max_s))

    def retryable(self, result: AttemptResult) -> bool:
        if result.delivered or result.permanent:
            return False
        if result.status == 429 and self.retry_on_429:
            return True
        return result.kind in self.retry_on

    def next_delay(
        self, result: AttemptResult, attempts_done: int, elapsed_ms: float
    ) -> float | None:
        """Seconds to wait before retrying, or None when this try was the last one."""
        if not self.retryable(result) or attempts_done >= self.max_attempts:
            return None
        delay = self.backoff(attempts_done)
        if self.total_deadline_ms is not None and elapsed_ms + delay * 1000 >= (
            self.total_deadline_ms
        ):
            return None
        return delay

    def try_timeouts(self, elapsed_ms: float) -> Timeouts:
        """Timeouts of the next try; a total-time override shrinks the last ones."""
        if self.total_deadline_ms is None:
            return self.timeouts
        remaining = max(0.1, (self.total_deadline_ms - elapsed_ms) / 1000)
        return Timeouts(
            min(self.timeouts.connect_s, remaining),
            min(self.timeouts.read_s, remaining),
            min(self.timeouts.total_s, remaining),
        )


def retry_plan(overrides: ConnectionOverrides, settings: Settings) -> RetryPlan:
    """Atrium's policy, or Twilio's as the URL fragment tunes it.

    Without ``rc``/``rp`` Atrium is more persistent than Twilio: ``callback_max_attempts`` tries on
    connection errors, timeouts, 5xx and 429. With either one, Twilio's rules govern: rc + 1
    tries on the failures listed in rp (defaults rc=1, rp=ct,rt), and ``tt`` bounds the series.
    """
    timeouts = Timeouts(
        connect_s=(overrides.connect_timeout_ms or settings.callback_connect_timeout_ms) / 1000,
        read_s=(overrides.read_timeout_ms or settings.callback_read_timeout_ms) / 1000,
        total_s=(overrides.total_time_ms or settings.callback_total_timeout_ms) / 1000,
    )
    twilio_rules = overrides.retry_count is not None or overrides.retry_policy is not None
    if twilio_rules:
        count = overrides.retry_count
        return RetryPlan(
            max_attempts=(TWILIO_DEFAULT_RETRY_COUNT if count is None else count) + 1,
            retry_on=overrides.retry_policy or TWILIO_DEFAULT_RETRY_POLICY,
            retry_on_429=False,
            total_deadline_ms=overrides.total_time_ms,
            backoff_initial_s=settings.callback_backoff_initial_seconds,
            backoff_max_s=settings.callback_backoff_max_seconds,
            timeouts=timeouts,
        )
    return RetryPlan(
        max_attempts=max(1, settings.callback_max_attempts),
        retry_on=frozenset({"ct", "rt", "5xx"}),
        retry_on_429=True,
        total_deadline_ms=overrides.total_time_ms,
        backoff_initial_s=settings.callback_backoff_initial_seconds,
        backoff_max_s=settings.callback_backoff_max_seconds,
        timeouts=timeouts,
    )


# --------------------------------------------------------------------------------------------
# Pending callbacks and how their tries end
# --------------------------------------------------------------------------------------------


class AttemptState(BaseModel):
    """How the tries of one callback went so far."""

    attempts: int = 0  # requests tried (none while there was no account to sign with)
    first_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None

    def after(self, result: AttemptResult, *, tried: bool, started: datetime) -> AttemptState:
        """The state once ``result`` is in; ``tried`` says whether a request was sent."""
        return AttemptState(
            attempts=self.attempts + (1 if tried else 0),
            first_attempt_at=started,
            last_status=result.status,
            last_error=result.error
            or (f"HTTP {result.status}" if result.status and not result.delivered else None),
        )


class PendingCallback(BaseModel):
    """One callback waiting to go out: its event and how its tries went.

    Where it goes is its room's projection, read with it: a room's StatusCallback does not change,
    so one projection per room serves all its callbacks.
    """

    event: DomainEvent
    # The trace context of the event's consumption; the HTTP request continues that trace.
    trace: dict[str, str] = Field(default_factory=dict)
    attempt: AttemptState = Field(default_factory=AttemptState)


def anonymized(pending: PendingCallback, participant_sid: str) -> PendingCallback | None:
    """``pending`` with the participant's identity replaced by its SID (REST Anonymize), or
    None when its event names that participant nowhere. Participant and track events carry the
    participant, recording events its identity."""
    event = pending.event
    participant = getattr(event, "participant", None)
    if participant is not None and participant.sid == participant_sid:
        renamed = participant.model_copy(update={"identity": participant_sid})
        changed = event.model_copy(update={"participant": renamed})
    elif (recording := getattr(event, "recording", None)) is not None and (
        recording.participant_sid == participant_sid
    ):
        renamed_recording = recording.model_copy(update={"participant_identity": participant_sid})
        changed = event.model_copy(update={"recording": renamed_recording})
    else:
        return None
    return pending.model_copy(update={"event": changed})


@dataclass(frozen=True)
class QueueHead:
    """The next callback of a room's queue, with the room's projection.

    ``pending`` is None if it could not be read back, ``room`` if the room is no longer known
    (``problem`` says which): no try could ever send it, so it is dropped.
    """

    event_id: str
    pending: PendingCallback | None
    room: RoomProjection | None
    problem: str | None = None


def delivery_record(
    event: DomainEvent,
    url: str,
    method: Method,
    attempt: AttemptState,
    result: AttemptResult,
    finished_at: datetime,
) -> DeliveryRecord:
    """The delivery log's entry for ``event``'s callback to ``url`` whose last try was
    ``result``."""
    return DeliveryRecord(
        event_id=event.event_id,
        account_sid=event.account_sid,
        room_sid=event.room_sid,
        event_type=event.event_type,
        sequence_number=event.sequence_number,
        url=public_url(url),
        method=method,
        outcome="delivered" if result.delivered else "dead-letter",
        attempts=attempt.attempts,
        last_status=attempt.last_status,
        last_error=None if result.delivered else attempt.last_error,
        first_attempt_at=attempt.first_attempt_at or finished_at,
        finished_at=finished_at,
    )


def matches(record: DeliveryRecord, query: DeliveryQuery) -> bool:
    """Whether the delivery log's ``record`` is one ``query`` asks for (its kind aside)."""
    if query.account_sid and record.account_sid != query.account_sid:
        return False
    return not (query.room_sid and record.room_sid != query.room_sid)
