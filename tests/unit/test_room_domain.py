"""Room rules without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from atrium_room import domain
from atrium_shared.accounts import Account
from atrium_shared.callbacks import is_valid_status_callback
from atrium_shared.errors import AtriumError
from atrium_shared.models import RoomInfo
from atrium_shared.paging import decode_cursor, encode_cursor
from atrium_shared.room_api import CreateRoomRequest

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ACCOUNT = "AC" + "0" * 32
SID = "RM" + "1" * 32


def create(**fields: object) -> RoomInfo:
    room, event = domain.create_room(CreateRoomRequest(account_sid=ACCOUNT, **fields), SID, NOW)
    assert event.room == room and event.room_sid == SID
    return room


def error_code(**fields: object) -> int:
    with pytest.raises(AtriumError) as caught:
        create(**fields)
    assert caught.value.status == 400
    return caught.value.code


def test_defaults_follow_twilio() -> None:
    room = create()
    assert room.unique_name == SID
    assert room.type == "group" and room.max_participants == 50
    assert room.status == "in-progress" and room.end_time is None and room.duration is None
    assert room.video_codecs == ["VP8", "H264"]
    assert room.empty_room_timeout == room.unused_room_timeout == 5
    assert room.max_participant_duration == 14400
    assert room.recording_rules == []  # none given: nothing but RecordParticipantsOnConnect records


@pytest.mark.parametrize(
    ("room_type", "limit"), [("group", 50), ("group-small", 4), ("peer-to-peer", 10), ("go", 2)]
)
def test_max_participants_limits_by_type(room_type: str, limit: int) -> None:
    assert create(type=room_type).max_participants == limit
    assert create(type=room_type, max_participants=limit).max_participants == limit
    assert error_code(type=room_type, max_participants=limit + 1) == 53107


def test_large_rooms_allow_more_participants() -> None:
    assert create(large_room=True, max_participants=100).max_participants == 100
    assert error_code(large_room=True, max_participants=101) == 53107


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"type": "huge"}, 53108),
        ({"unique_name": "n" * 129}, 53101),
        ({"unique_name": "tab\there"}, 53102),
        ({"status_callback": "example.com/no-scheme"}, 53111),
        ({"status_callback": "https://ex ample.com"}, 53111),
        ({"status_callback_method": "DELETE"}, 53110),
        ({"empty_room_timeout": 0}, 53109),
        ({"unused_room_timeout": 61}, 53109),
        ({"max_participant_duration": 86401}, 53123),
        ({"max_participant_duration": 599}, 53123),
        ({"type": ""}, 53108),
        ({"status_callback_method": ""}, 53110),
        ({"media_region": ""}, 53115),
        ({"video_codecs": [""]}, 53114),
        ({"status_callback": "https://example.com/" + "x" * 3981}, 53111),
        ({"large_room": True, "type": "peer-to-peer"}, 53114),
        ({"large_room": True, "type": "group-small"}, 53114),
        ({"record_participants_on_connect": True, "type": "go"}, 53114),
        ({"record_participants_on_connect": True, "type": "peer-to-peer"}, 53114),
        ({"type": "go", "max_participants": 3}, 53107),
        ({"type": "peer-to-peer", "max_participants": 11}, 53107),
        ({"media_region": "xx1"}, 53115),
        ({"video_codecs": ["VP9"]}, 53114),
        ({"audio_only": True, "type": "go"}, 53124),
        ({"recording_rules": {"rules": []}}, 53120),
        ({"recording_rules": [{"type": "include"}]}, 53120),
        ({"recording_rules": [{"type": "include", "kind": "video", "kind2": 1}]}, 53120),
        ({"recording_rules": [{"type": "include", "all": True}] * 21}, 53120),
    ],
)
def test_invalid_values_have_twilio_codes(fields: dict[str, object], code: int) -> None:
    assert error_code(**fields) == code


def test_boundaries_are_inclusive() -> None:
    room = create(
        unique_name="n" * 128,
        empty_room_timeout=1,
        unused_room_timeout=60,
        max_participant_duration=86400,
    )
    assert room.empty_room_timeout == 1 and room.unused_room_timeout == 60
    assert create(max_participant_duration=600).max_participant_duration == 600
    assert create(status_callback="https://example.com/" + "x" * 3980).status_callback


def test_type_limits_as_twilio_documents_them() -> None:
    """Go rooms take 2 participants, peer-to-peer 10; neither has a published-track limit (0)."""
    go = create(type="go")
    assert (go.max_participants, go.max_concurrent_published_tracks) == (2, 0)
    p2p = create(type="peer-to-peer")
    assert (p2p.max_participants, p2p.max_concurrent_published_tracks) == (10, 0)
    assert create(type="group", large_room=True).max_concurrent_published_tracks == 16
    assert create(type="group-small").max_concurrent_published_tracks == 170
    assert create().media_region == "us1"


def test_method_is_case_insensitive_and_codecs_dedupe() -> None:
    room = create(status_callback_method="get", video_codecs=["vp8", "VP8", "H264"])
    assert room.status_callback_method == "GET"
    assert room.video_codecs == ["VP8", "H264"]


def test_audio_only_rooms_have_no_video_codecs() -> None:
    assert create(audio_only=True, video_codecs=["VP8"]).video_codecs == []


def test_recording_rules_accept_object_form_and_string_true() -> None:
    room = create(
        recording_rules={
            "rules": [{"type": "exclude", "all": "true"}, {"type": "include", "kind": "audio"}]
        }
    )
    assert room.recording_rules == [
        {"type": "exclude", "all": True},
        {"type": "include", "kind": "audio"},
    ]


def test_complete_sets_end_time_and_whole_second_duration() -> None:
    room = create()
    later = NOW + timedelta(seconds=90, milliseconds=700)
    ended, event = domain.complete_room(room, later)
    assert ended.status == "completed" and ended.end_time == later and ended.duration == 90
    assert ended.version == room.version + 1
    assert event.room == ended
    with pytest.raises(AtriumError) as caught:
        domain.complete_room(ended, later)
    assert caught.value.code == 53112


@pytest.mark.parametrize("status", [None, "in-progress", "failed", "Completed"])
def test_only_status_completed_is_an_allowed_update(status: str | None) -> None:
    with pytest.raises(AtriumError) as caught:
        domain.requested_status(status)
    assert caught.value.code == 53112
    assert domain.requested_status("completed") == "completed"


def test_unused_deadline_scales_minutes() -> None:
    room = create(unused_room_timeout=3)
    assert domain.unused_room_deadline(room, 60.0) == NOW.timestamp() + 180
    assert domain.unused_room_deadline(room, 1.0) == NOW.timestamp() + 3


def test_cursors_round_trip_and_reject_garbage() -> None:
    token = encode_cursor("next", "00000000000000001:RMabc")
    assert decode_cursor(token) == ("next", "00000000000000001:RMabc")
    for garbage in ("", "!!!", encode_cursor("sideways", "1:RM")):
        with pytest.raises(ValueError):
            decode_cursor(garbage)


# Ad-hoc rooms and the account's default StatusCallback ----------------------------------------
def account(**fields: object) -> Account:
    return Account.model_validate(
        {"sid": ACCOUNT, "friendly_name": "acme", "auth_token": SecretStr("t" * 32), **fields}
    )


def test_ad_hoc_room_takes_the_account_default_callback() -> None:
    hooked = account(
        default_status_callback="https://hooks.example.com/video#rc=2",
        default_status_callback_method="GET",
    )
    request = domain.ad_hoc_room_request(ACCOUNT, "standup", hooked)
    assert request == CreateRoomRequest(
        account_sid=ACCOUNT,
        unique_name="standup",
        status_callback="https://hooks.example.com/video#rc=2",
        status_callback_method="GET",
    )
    room, _ = domain.create_room(request, SID, NOW, "signaling")
    assert (room.status_callback, room.status_callback_method) == (
        "https://hooks.example.com/video#rc=2",
        "GET",
    )
    assert room.created_by == "signaling" and room.unique_name == "standup"


@pytest.mark.parametrize(
    "owner", [None, account(), account(default_status_callback="ftp://files.example.com/x")]
)
def test_ad_hoc_room_without_a_usable_default_has_no_callback(owner: Account | None) -> None:
    assert domain.ad_hoc_room_request(ACCOUNT, "standup", owner) == CreateRoomRequest(
        account_sid=ACCOUNT, unique_name="standup"
    )


@pytest.mark.parametrize(
    "url",
    ["https://example.com/cb", "http://127.0.0.1:8080/hook?x=1#rc=0", "https://u:p@h.example/cb"],
)
def test_valid_status_callbacks(url: str) -> None:
    assert is_valid_status_callback(url)
    assert domain.validate_status_callback(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "example.com/cb",
        "ftp://example.com/cb",
        "https:///cb",
        "https://exa mple.com/",
        "http://[::1/cb",
        "https://example.com/" + "x" * 4000,
    ],
)
def test_invalid_status_callbacks(url: str) -> None:
    assert not is_valid_status_callback(url)
    with pytest.raises(AtriumError) as caught:
        domain.validate_status_callback(url)
    assert (caught.value.code, caught.value.status) == (53111, 400)
