"""Track rules without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atrium_shared.errors import AtriumError
from atrium_shared.events import TrackAdded, TrackDisabled, TrackEnabled
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_track import domain

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ACCOUNT = "AC" + "0" * 32
ROOM = "RM" + "1" * 32
ALICE = "PA" + "a" * 32
BOB = "PA" + "b" * 32
CAROL = "PA" + "c" * 32
TRACK = "MT" + "2" * 32


def participant(sid: str = ALICE, status: str = "connected") -> ParticipantInfo:
    return ParticipantInfo(
        sid=sid,
        room_sid=ROOM,
        account_sid=ACCOUNT,
        identity=sid[-4:],
        status=status,
        date_created=NOW,
        date_updated=NOW,
        start_time=NOW,
    )


def publish(name: str = "mic", kind: str = "audio", taken: tuple[str, ...] = ()) -> TrackInfo:
    track, event = domain.publish(participant(), name, kind, True, TRACK, NOW, taken)
    assert isinstance(event, TrackAdded)
    assert event.track == track and event.participant.sid == ALICE
    assert (event.account_sid, event.room_sid) == (ACCOUNT, ROOM)
    return track


def error_code(**fields: object) -> int:
    with pytest.raises(AtriumError) as caught:
        publish(**fields)  # type: ignore[arg-type]
    assert caught.value.status == 400
    return caught.value.code


def test_publish_makes_a_track_of_the_participant() -> None:
    track = publish(name="camera", kind="video")
    assert (track.sid, track.participant_sid, track.room_sid) == (TRACK, ALICE, ROOM)
    assert track.kind == "video" and track.enabled
    assert track.date_created == track.date_updated == NOW


def test_names_and_kinds_are_checked() -> None:
    assert error_code(kind="screen") == 53300
    assert error_code(name="") == 53301
    assert error_code(name="x" * 129) == 53302
    assert publish(name="x" * 128).name == "x" * 128
    assert error_code(name="mic", taken=("mic", "cam")) == 53304
    assert publish(name="mic2", taken=("mic",)).name == "mic2"


def test_disconnected_or_foreign_publisher_is_refused() -> None:
    domain.check_participant(participant(), ACCOUNT, ROOM)
    cases: list[tuple[ParticipantInfo, str, str]] = [
        (participant(status="disconnected"), ACCOUNT, ROOM),
        (participant(), "AC" + "9" * 32, ROOM),
        (participant(), ACCOUNT, "RM" + "9" * 32),
    ]
    for args in cases:
        with pytest.raises(AtriumError) as caught:
            domain.check_participant(*args)
        assert caught.value.code == 53204


def test_enable_and_disable_emit_only_on_change() -> None:
    track = publish()
    later = NOW + timedelta(seconds=3)
    assert domain.set_enabled(participant(), track, True, later) is None
    disabled = domain.set_enabled(participant(), track, False, later)
    assert disabled is not None
    off, event = disabled
    assert isinstance(event, TrackDisabled) and not off.enabled and off.date_updated == later
    assert domain.set_enabled(participant(), off, False, later) is None
    enabled = domain.set_enabled(participant(), off, True, later)
    assert enabled is not None and isinstance(enabled[1], TrackEnabled) and enabled[0].enabled


def test_everyone_else_subscribes_for_now() -> None:
    track = publish()
    assert domain.should_subscribe(BOB, track)
    assert domain.subscribers_of(track, [CAROL, ALICE, BOB, BOB]) == [BOB, CAROL]
    others = TrackInfo(**{**track.model_dump(), "sid": "MT" + "3" * 32, "participant_sid": BOB})
    assert domain.tracks_for(BOB, [track, others]) == [track]
    assert domain.tracks_for(ALICE, [track, others]) == [others]


def test_a_subscription_is_the_track_seen_from_the_subscriber() -> None:
    track = publish()
    since = NOW + timedelta(seconds=1)
    seen = domain.subscription(BOB, track, since)
    assert (seen.sid, seen.participant_sid, seen.publisher_sid) == (TRACK, BOB, ALICE)
    assert (seen.name, seen.kind, seen.enabled) == ("mic", "audio", True)
    assert seen.date_created == seen.date_updated == since
    changed = domain.set_enabled(participant(), track, False, since + timedelta(seconds=5))
    assert changed is not None
    later = domain.subscription(BOB, changed[0], since)
    assert not later.enabled and later.date_updated == since + timedelta(seconds=5)
    with pytest.raises(AtriumError):
        domain.check_subscriber(ALICE, track)


def test_a_track_keeps_the_publish_priority_it_was_published_with() -> None:
    assert publish().priority == "standard"
    track, event = domain.publish(participant(), "cam", "video", True, TRACK, NOW, (), "high")
    assert track.priority == "high" and event.track.priority == "high"


def test_a_priority_change_is_a_new_track_record_and_no_event() -> None:
    track = publish(kind="video")
    later = NOW + timedelta(seconds=3)
    assert domain.set_priority(track, "standard", later) is None
    low = domain.set_priority(track, "low", later)
    assert low is not None
    assert (low.priority, low.date_updated, low.date_created) == ("low", later, NOW)
    assert low.model_dump(exclude={"priority", "date_updated"}) == track.model_dump(
        exclude={"priority", "date_updated"}
    )
    assert track.priority == "standard"  # the old record is left as it was
