"""The callback domain: parameters, signatures (checked by twilio's own validator), overrides,
retry decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from atrium_callback.domain import (
    EVENT_PARAMS,
    SILENT_EVENTS,
    AttemptResult,
    ConnectionOverrides,
    RoomProjection,
    build_request,
    callback_params,
    parse_callback_url,
    parse_overrides,
    projection_from_event,
    retry_plan,
    twilio_signature,
)
from atrium_shared.events import (
    DomainEvent,
    ParticipantConnected,
    ParticipantDisconnected,
    RoomCreated,
    RoomEnded,
    TrackAdded,
    TrackDisabled,
    TrackEnabled,
    TrackRemoved,
)
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.settings import Settings

TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT = "AC" + "a" * 32
ROOM = "RM" + "b" * 32
PARTICIPANT = "PA" + "c" * 32
TRACK = "MT" + "d" * 32
WHEN = datetime(2025, 10, 27, 18, 16, 1, 876543, tzinfo=UTC)
PROJECTION = RoomProjection(ACCOUNT, "https://example.com/cb", "POST", "daily standup", "group")


def room_info(**changes: object) -> RoomInfo:
    base = RoomInfo(
        sid=ROOM,
        account_sid=ACCOUNT,
        unique_name="daily standup",
        type="group",
        date_created=WHEN,
        date_updated=WHEN,
        status_callback="https://example.com/cb?tenant=7#rc=0",
        status_callback_method="POST",
    )
    return base.model_copy(update=changes)


def settings(**changes: object) -> Settings:
    return Settings(
        callback_max_attempts=6,
        callback_backoff_initial_seconds=1.0,
        callback_backoff_max_seconds=8.0,
    ).model_copy(update=changes)


# Parameters ---------------------------------------------------------------------------------


def test_room_created_params() -> None:
    event = RoomCreated(
        account_sid=ACCOUNT, room_sid=ROOM, room=room_info(), occurred_at=WHEN, sequence_number=0
    )
    projection = projection_from_event(event)
    assert projection is not None
    assert projection.url == "https://example.com/cb?tenant=7#rc=0"
    assert callback_params(event, projection) == {
        "AccountSid": ACCOUNT,
        "RoomName": "daily standup",
        "RoomSid": ROOM,
        "RoomStatus": "in-progress",
        "RoomType": "group",
        "StatusCallbackEvent": "room-created",
        "Timestamp": "2025-10-27T18:16:01.876Z",
        "SequenceNumber": "0",
    }


def test_room_ended_params_carry_duration_and_status() -> None:
    room = room_info(status="completed", duration=42, type="go")
    event = RoomEnded(
        account_sid=ACCOUNT, room_sid=ROOM, room=room, occurred_at=WHEN, sequence_number=5
    )
    params = callback_params(event, RoomProjection(ACCOUNT, "https://x", "POST", "n", "go"))
    assert params["StatusCallbackEvent"] == "room-ended"
    assert params["RoomStatus"] == "completed"
    assert params["RoomDuration"] == "42"
    assert params["RoomType"] == "go"
    assert params["SequenceNumber"] == "5"


def test_room_without_callback_has_no_target() -> None:
    event = RoomCreated(account_sid=ACCOUNT, room_sid=ROOM, room=room_info(status_callback=None))
    projection = projection_from_event(event)
    assert projection is not None and projection.url is None


def participant_info(**changes: object) -> ParticipantInfo:
    joined = WHEN - timedelta(seconds=95, milliseconds=300)
    base = ParticipantInfo(
        sid=PARTICIPANT,
        room_sid=ROOM,
        account_sid=ACCOUNT,
        identity="Vatsal Hariramani",
        date_created=joined,
        date_updated=joined,
        start_time=joined,
    )
    return base.model_copy(update=changes)


def track_info(**changes: object) -> TrackInfo:
    base = TrackInfo(
        sid=TRACK,
        room_sid=ROOM,
        account_sid=ACCOUNT,
        participant_sid=PARTICIPANT,
        name="camera one",
        kind="video",
        date_created=WHEN,
        date_updated=WHEN,
    )
    return base.model_copy(update=changes)


def common(event_type: str, sequence: int) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "RoomName": "daily standup",
        "RoomSid": ROOM,
        "RoomStatus": "in-progress",
        "RoomType": "group",
        "StatusCallbackEvent": event_type,
        "Timestamp": "2025-10-27T18:16:01.876Z",
        "SequenceNumber": str(sequence),
    }


def test_every_event_type_has_its_parameters() -> None:
    event_types = {
        model.model_fields["event_type"].default for model in get_args(get_args(DomainEvent)[0])
    }
    assert event_types - SILENT_EVENTS == set(EVENT_PARAMS)
    assert SILENT_EVENTS <= event_types


def test_participant_connected_params() -> None:
    event = ParticipantConnected(
        account_sid=ACCOUNT,
        room_sid=ROOM,
        participant=participant_info(),
        occurred_at=WHEN,
        sequence_number=1,
    )
    assert projection_from_event(event) is None  # the room's projection is kept as it is
    assert callback_params(event, PROJECTION) == {
        **common("participant-connected", 1),
        "ParticipantSid": PARTICIPANT,
        "ParticipantStatus": "connected",
        "ParticipantIdentity": "Vatsal Hariramani",
    }


def test_participant_disconnected_params_carry_duration() -> None:
    left = participant_info(status="disconnected", end_time=WHEN, duration=95)
    event = ParticipantDisconnected(
        account_sid=ACCOUNT,
        room_sid=ROOM,
        participant=left,
        reason="kicked",
        occurred_at=WHEN,
        sequence_number=9,
    )
    assert callback_params(event, PROJECTION) == {
        **common("participant-disconnected", 9),
        "ParticipantSid": PARTICIPANT,
        "ParticipantStatus": "disconnected",
        "ParticipantIdentity": "Vatsal Hariramani",
        "ParticipantDuration": "95",
    }


def test_participant_duration_falls_back_to_start_and_end() -> None:
    left = participant_info(status="disconnected", end_time=None, duration=None)
    event = ParticipantDisconnected(
        account_sid=ACCOUNT, room_sid=ROOM, participant=left, occurred_at=WHEN
    )
    assert callback_params(event, PROJECTION)["ParticipantDuration"] == "95"


@pytest.mark.parametrize(
    ("model", "event_type", "enabled"),
    [
        (TrackAdded, "track-added", True),
        (TrackRemoved, "track-removed", True),
        (TrackEnabled, "track-enabled", True),
        (TrackDisabled, "track-disabled", False),
    ],
)
def test_track_event_params(
    model: type[TrackAdded | TrackRemoved | TrackEnabled | TrackDisabled],
    event_type: str,
    enabled: bool,
) -> None:
    event = model(
        account_sid=ACCOUNT,
        room_sid=ROOM,
        participant=participant_info(),
        track=track_info(enabled=enabled),
        occurred_at=WHEN,
        sequence_number=4,
    )
    assert callback_params(event, PROJECTION) == {
        **common(event_type, 4),
        "ParticipantSid": PARTICIPANT,
        "ParticipantStatus": "connected",
        "ParticipantIdentity": "Vatsal Hariramani",
        "TrackSid": TRACK,
        "TrackKind": "video",
        "TrackName": "camera one",
    }


def test_track_params_use_the_room_name_and_type_of_the_projection() -> None:
    event = TrackAdded(
        account_sid=ACCOUNT,
        room_sid=ROOM,
        participant=participant_info(),
        track=track_info(kind="data", name="chat"),
        occurred_at=WHEN,
        sequence_number=2,
    )
    projection = RoomProjection(ACCOUNT, "https://x", "GET", "", "go")
    params = callback_params(event, projection)
    assert (params["RoomName"], params["RoomType"]) == (ROOM, "go")
    assert (params["TrackKind"], params["TrackName"]) == ("data", "chat")


# Signature ----------------------------------------------------------------------------------


def test_signature_matches_twilio_documented_algorithm() -> None:
    params = {"b": "2", "a": "1", "RoomName": "x y"}
    url = "https://example.com/hook?q=1"
    assert RequestValidator(TOKEN).compute_signature(url, params) == twilio_signature(
        TOKEN, url, params
    )


def test_post_request_validates_with_twilio_validator() -> None:
    target = parse_callback_url("https://example.com/cb?tenant=7#ct=1000&rc=0")
    params = {"AccountSid": ACCOUNT, "RoomName": "a&b=c é", "Timestamp": "2025-01-01T00:00:00.000Z"}
    request = build_request(target, "POST", params, TOKEN)
    assert request.method == "POST"
    assert request.url == "https://example.com/cb?tenant=7"
    assert request.form == params
    assert RequestValidator(TOKEN).validate(request.url, params, request.signature)
    assert not RequestValidator("other" + TOKEN[5:]).validate(
        request.url, params, request.signature
    )


@pytest.mark.parametrize(
    "raw", ["http://127.0.0.1:8000/cb", "https://example.com/cb?existing=1&x=%20y#rc=2"]
)
def test_get_request_puts_params_in_query_and_signs_url(raw: str) -> None:
    params = {"AccountSid": ACCOUNT, "RoomName": "room one", "Timestamp": "2025-01-01T00:00:00Z"}
    request = build_request(parse_callback_url(raw), "GET", params, TOKEN)
    assert request.form is None
    assert "#" not in request.url
    query = dict(parse_qsl(urlsplit(request.url).query))
    for name, value in params.items():
        assert query[name] == value
    if "existing" in raw:
        assert query["existing"] == "1"
        assert request.url.startswith("https://example.com/cb?existing=1&x=%20y&")
    assert RequestValidator(TOKEN).validate(request.url, {}, request.signature)


def test_credentials_become_basic_auth_and_are_not_signed() -> None:
    target = parse_callback_url("https://user:pa%40ss@example.com/cb#rt=2000")
    assert target.url == "https://example.com/cb"
    assert target.basic_auth == ("user", "pa@ss")
    request = build_request(target, "POST", {"A": "1"}, TOKEN)
    assert RequestValidator(TOKEN).validate("https://example.com/cb", {"A": "1"}, request.signature)


# Overrides ----------------------------------------------------------------------------------


def test_overrides_parsed_and_clamped() -> None:
    assert parse_overrides("") == ConnectionOverrides()
    overrides = parse_overrides("ct=50&rt=99999&tt=2000&rc=9&rp=4xx,5xx&e=ie1&sni=y")
    assert overrides == ConnectionOverrides(
        connect_timeout_ms=100,
        read_timeout_ms=15000,
        total_time_ms=2000,
        retry_count=5,
        retry_policy=frozenset({"4xx", "5xx"}),
    )
    assert parse_overrides("rp=all").retry_policy == frozenset({"4xx", "5xx", "ct", "rt"})
    # Garbage is ignored, not fatal.
    assert parse_overrides("ct=abc&rp=bogus&rc=") == ConnectionOverrides()
    assert parse_overrides("rc=-3").retry_count == 0


def test_fragment_is_stripped_from_url() -> None:
    target = parse_callback_url("https://example.com/a?b=c#ct=2000&rc=0")
    assert target.url == "https://example.com/a?b=c"
    assert target.overrides.connect_timeout_ms == 2000
    assert target.overrides.retry_count == 0


# Retries ------------------------------------------------------------------------------------


def test_default_plan_retries_transient_failures_with_backoff() -> None:
    plan = retry_plan(ConnectionOverrides(), settings())
    assert plan.max_attempts == 6
    connect_failed = AttemptResult(failure="ct", error="refused")
    assert plan.next_delay(connect_failed, 1, 0) == 1.0
    assert plan.next_delay(connect_failed, 2, 0) == 2.0
    assert plan.next_delay(connect_failed, 3, 0) == 4.0
    assert plan.next_delay(connect_failed, 4, 0) == 8.0  # capped
    assert plan.next_delay(connect_failed, 5, 0) == 8.0
    assert plan.next_delay(connect_failed, 6, 0) is None  # that was the last try
    assert plan.next_delay(AttemptResult(failure="rt"), 1, 0) == 1.0
    assert plan.next_delay(AttemptResult(status=503), 1, 0) == 1.0
    assert plan.next_delay(AttemptResult(status=429), 1, 0) == 1.0
    assert plan.next_delay(AttemptResult(status=404), 1, 0) is None
    assert plan.next_delay(AttemptResult(status=400), 1, 0) is None
    assert plan.next_delay(AttemptResult(failure="ct", permanent=True), 1, 0) is None


def test_any_2xx_is_delivered() -> None:
    for status in (200, 201, 204, 299):
        assert AttemptResult(status=status).delivered
    for status in (199, 300, 302, 500):
        assert not AttemptResult(status=status).delivered


def test_rc_zero_means_one_attempt() -> None:
    plan = retry_plan(parse_callback_url("http://x/#rc=0").overrides, settings())
    assert plan.max_attempts == 1
    assert plan.next_delay(AttemptResult(failure="ct"), 1, 0) is None


def test_twilio_rules_when_fragment_has_rc_or_rp() -> None:
    plan = retry_plan(parse_overrides("rp=5xx"), settings())
    assert plan.max_attempts == 2  # Twilio's default rc=1
    assert plan.next_delay(AttemptResult(status=500), 1, 0) == 1.0
    assert plan.next_delay(AttemptResult(failure="ct"), 1, 0) is None  # not in rp
    assert plan.next_delay(AttemptResult(status=429), 1, 0) is None
    plan = retry_plan(parse_overrides("rc=3"), settings())
    assert plan.max_attempts == 4
    assert plan.next_delay(AttemptResult(failure="ct"), 1, 0) == 1.0
    assert plan.next_delay(AttemptResult(status=500), 1, 0) is None  # default rp=ct,rt
    plan = retry_plan(parse_overrides("rc=2&rp=4xx"), settings())
    assert plan.next_delay(AttemptResult(status=404), 2, 0) == 2.0
    assert plan.next_delay(AttemptResult(status=404), 3, 0) is None


def test_total_time_bounds_the_series() -> None:
    plan = retry_plan(parse_overrides("rc=5&tt=2500"), settings())
    assert plan.total_deadline_ms == 2500
    assert plan.next_delay(AttemptResult(failure="ct"), 1, 1000) == 1.0
    assert plan.next_delay(AttemptResult(failure="ct"), 2, 1000) is None  # 1000 + 2000 > 2500
    timeouts = plan.try_timeouts(2000)
    assert timeouts.total_s == pytest.approx(0.5)
    assert timeouts.connect_s == pytest.approx(0.5)


def test_timeouts_from_overrides_or_settings() -> None:
    plan = retry_plan(parse_overrides("ct=1500&rt=3000"), settings())
    assert (plan.timeouts.connect_s, plan.timeouts.read_s) == (1.5, 3.0)
    plan = retry_plan(ConnectionOverrides(), settings())
    assert (plan.timeouts.connect_s, plan.timeouts.read_s, plan.timeouts.total_s) == (5, 15, 15)
