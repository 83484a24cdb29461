"""The recording service's pure rules: RecordingRules validation (53120) and evaluation, a room's
initial rules, the life of a Recording record, storage targets and settings validation."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from atrium_recording import domain
from atrium_recording.domain import LiveTrack
from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.recording_api import (
    ListRecordingsRequest,
    RecordingInfo,
    RecordingReport,
    RecordingRule,
    RecordingSettings,
    SetRecordingSettingsRequest,
    StorageTarget,
)
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.recording import (
    ACCOUNT,
    ALICE,
    BOB,
    ROOM,
    participant_info,
    room_info,
    track_info,
)

CLOCK = FakeClock()
ALICE_INFO = participant_info(CLOCK, ALICE, "alice")
BOB_INFO = participant_info(CLOCK, BOB, "bob")
MIC = LiveTrack(
    track=track_info(CLOCK, "MT" + "1" * 32, ALICE_INFO, "mic", "audio"), identity="alice"
)
CAM = LiveTrack(
    track=track_info(CLOCK, "MT" + "2" * 32, ALICE_INFO, "cam", "video"), identity="alice"
)
CHAT = LiveTrack(
    track=track_info(CLOCK, "MT" + "3" * 32, ALICE_INFO, "chat", "data"), identity="alice"
)
BOB_MIC = LiveTrack(
    track=track_info(CLOCK, "MT" + "4" * 32, BOB_INFO, "mic", "audio"), identity="bob"
)
TRACKS = (MIC, CAM, CHAT, BOB_MIC)


def rejected(text: str | None) -> AtriumError:
    with pytest.raises(AtriumError) as caught:
        domain.parse_rules(text)
    return caught.value


# Validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"type": "include", "all": true}]', [RecordingRule(type="include", all=True)]),
        (
            '{"rules": [{"type": "exclude", "all": "true"}]}',
            [RecordingRule(type="exclude", all=True)],
        ),
        (
            '[{"type": "include", "publisher": "alice", "track": "mic", "kind": "audio"}]',
            [RecordingRule(type="include", publisher="alice", track="mic", kind="audio")],
        ),
        # What GET returns (nulls for the keys left out) can be sent back as is.
        (
            '[{"type": "include", "all": null, "publisher": null, "track": null, "kind": "video"}]',
            [RecordingRule(type="include", kind="video")],
        ),
    ],
)
def test_valid_rules_in_both_forms(text: str, expected: list[RecordingRule]) -> None:
    assert domain.parse_rules(text) == expected


def test_twenty_rules_are_allowed() -> None:
    rules = [{"type": "include", "track": f"t{i}"} for i in range(20)]
    assert len(domain.parse_rules(json.dumps(rules))) == 20


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "  ",
        "not json",
        "[]",
        '{"rules": []}',
        '{"rules": [{"type": "include", "all": true}], "extra": 1}',
        '{"other": []}',
        '"include"',
        json.dumps([{"type": "include", "track": f"t{i}"} for i in range(21)]),
        '["include"]',
        '[{"all": true}]',
        '[{"type": "record", "all": true}]',
        '[{"type": "include", "all": false}]',
        '[{"type": "include", "all": "yes"}]',
        '[{"type": "include", "all": true, "kind": "audio"}]',
        '[{"type": "include"}]',
        '[{"type": "include", "kind": "data"}]',
        '[{"type": "include", "kind": "screen"}]',
        '[{"type": "include", "priority": "high"}]',
        '[{"type": "include", "tracks": "mic"}]',
        '[{"type": "include", "publisher": 5}]',
        '[{"type": "include", "track": ""}]',
        '[{"type": "include", "kind": "audio", "kind": "video"}]',
        "[" * 100_000 + "]" * 100_000,  # json.loads: RecursionError
        '{"rules": ' * 50_000 + "[]" + "}" * 50_000,
        '[{"type": "include", "publisher": ' + "[" * 900 + "]" * 900 + "}]",
    ],
)
def test_invalid_rules_are_53120(text: str | None) -> None:
    error = rejected(text)
    assert (error.code, error.status) == (errors.RECORDING_RULES_INVALID, 400)
    assert error.message == "Invalid Recording Rule(s)"


# Evaluation -------------------------------------------------------------------------------------
def recorded(rules: list[dict[str, Any]]) -> list[str]:
    parsed = domain.validate_rules(rules)
    return [f"{t.identity}:{t.track.name}" for t in TRACKS if domain.should_record(t, parsed)]


def test_include_all_records_every_audio_and_video_track_but_never_data() -> None:
    assert recorded([{"type": "include", "all": True}]) == ["alice:mic", "alice:cam", "bob:mic"]
    assert recorded([{"type": "include", "kind": "audio"}]) == ["alice:mic", "bob:mic"]


def test_filters_name_a_publisher_by_identity_or_sid_and_a_track_by_name_or_sid() -> None:
    assert recorded([{"type": "include", "publisher": "bob"}]) == ["bob:mic"]
    assert recorded([{"type": "include", "publisher": ALICE}]) == ["alice:mic", "alice:cam"]
    assert recorded([{"type": "include", "track": "mic"}]) == ["alice:mic", "bob:mic"]
    assert recorded([{"type": "include", "track": CAM.track.sid}]) == ["alice:cam"]
    assert recorded([{"type": "include", "publisher": "ALICE"}]) == []  # case-sensitive
    # Filters of one rule are ANDed.
    assert recorded([{"type": "include", "publisher": "alice", "kind": "audio"}]) == ["alice:mic"]
    assert recorded([{"type": "include", "publisher": "bob", "track": "cam"}]) == []


def test_rules_apply_in_order_from_an_empty_set() -> None:
    assert recorded([{"type": "exclude", "all": True}]) == []
    assert recorded(
        [{"type": "include", "all": True}, {"type": "exclude", "publisher": "alice"}]
    ) == ["bob:mic"]
    assert recorded(
        [{"type": "exclude", "publisher": "alice"}, {"type": "include", "all": True}]
    ) == ["alice:mic", "alice:cam", "bob:mic"]
    assert recorded(
        [
            {"type": "include", "all": True},
            {"type": "exclude", "kind": "video"},
            {"type": "include", "track": "cam"},
        ]
    ) == ["alice:mic", "alice:cam", "bob:mic"]


def test_initial_rules_of_a_room() -> None:
    assert domain.initial_rules(room_info(CLOCK, record=True)) == list(domain.INCLUDE_ALL)
    # Created without rules and not recording on connect: nothing is recorded.
    assert domain.initial_rules(room_info(CLOCK)) == list(domain.RECORD_NOTHING)
    # Include-all given at creation is a request to record everything.
    everything = [{"type": "include", "all": True}]
    assert domain.initial_rules(room_info(CLOCK, rules=everything)) == list(domain.INCLUDE_ALL)
    audio = [{"type": "include", "kind": "audio"}]
    assert domain.initial_rules(room_info(CLOCK, rules=audio)) == [
        RecordingRule(type="include", kind="audio")
    ]
    # Recording on connect wins over rules given at creation.
    assert domain.initial_rules(room_info(CLOCK, record=True, rules=audio)) == list(
        domain.INCLUDE_ALL
    )
    broken = room_info(CLOCK, rules=[{"type": "include", "kind": "data"}])
    assert domain.initial_rules(broken) == list(domain.RECORD_NOTHING)


def test_room_rules_resource_is_dated_with_the_room_until_set() -> None:
    room = room_info(CLOCK, record=True)
    initial = domain.room_rules(room, None)
    assert (initial.room_sid, initial.date_created, initial.date_updated) == (
        ROOM,
        room.date_created,
        room.date_created,
    )
    later = CLOCK.now() + timedelta(minutes=1)
    changed = domain.set_rules(initial, list(domain.RECORD_NOTHING), later)
    assert (changed.date_created, changed.date_updated) == (room.date_created, later)
    assert domain.room_rules(room, changed) is changed


def test_plan_starts_what_the_rules_select_and_stops_the_rest() -> None:
    live = {t.track.sid: t for t in TRACKS}
    active = {MIC.track.sid: "RT-mic", CAM.track.sid: "RT-cam"}
    plan = domain.plan(live, active, domain.validate_rules([{"type": "include", "kind": "audio"}]))
    assert [t.track.sid for t in plan.start] == [BOB_MIC.track.sid]
    assert plan.stop == {CAM.track.sid: "RT-cam"}
    assert domain.plan(live, active, list(domain.RECORD_NOTHING)).stop == active
    unchanged = domain.plan({MIC.track.sid: MIC}, {MIC.track.sid: "RT-mic"}, domain.INCLUDE_ALL)
    assert unchanged.empty


# Records ----------------------------------------------------------------------------------------
def new(live: LiveTrack = MIC, after: float = 2.5) -> RecordingInfo:
    room = room_info(CLOCK, record=True)
    return domain.new_recording(
        "RT" + "9" * 32, live, room, StorageTarget(), CLOCK.now() + timedelta(seconds=after)
    )


def report(outcome: str, **fields: Any) -> RecordingReport:
    return RecordingReport.model_validate(
        {
            "account_sid": ACCOUNT,
            "room_sid": ROOM,
            "recording_sid": "RT" + "9" * 32,
            "worker_id": "worker-1",
            "outcome": outcome,
            **fields,
        }
    )


def test_a_new_recording_is_processing_in_its_container() -> None:
    audio, video = new(MIC), new(CAM)
    assert (audio.status, audio.type, audio.container_format) == ("processing", "audio", "mka")
    assert (video.type, video.container_format) == ("video", "mkv")
    assert audio.media_key == f"{ACCOUNT}/{audio.sid}.mka"
    assert video.media_key == f"{ACCOUNT}/{video.sid}.mkv"
    assert (audio.source_sid, audio.participant_sid, audio.participant_identity) == (
        MIC.track.sid,
        ALICE,
        "alice",
    )
    assert audio.track_name == "mic"
    assert audio.offset == 2500  # from the room's creation, until the worker reports its own
    assert audio.status_callback == "https://app.example.com/status"
    with pytest.raises(ValueError):
        domain.container_for("data")


@pytest.mark.parametrize(
    ("seconds", "expected"), [(0.0, 1), (0.2, 1), (1.4, 1), (1.5, 2), (61.6, 62)]
)
def test_duration_rounds_to_the_nearest_second_and_is_at_least_one(
    seconds: float, expected: int
) -> None:
    assert domain.duration_seconds(seconds) == expected


def test_started_completed_and_failed_transitions() -> None:
    now = CLOCK.now() + timedelta(seconds=10)
    recording = new()
    began = domain.started(recording, report("started", codec="OPUS", offset_ms=2600), now)
    assert began is not None
    running, event = began
    assert (running.codec, running.offset, running.worker_id) == ("OPUS", 2600, "worker-1")
    assert (event.event_type, event.recording) == ("recording-started", running)
    assert domain.started(running, report("started"), now) is None  # already started

    done = domain.completed(
        running,
        report("completed", duration_seconds=4.6, size=1234, media_external_location=None),
        now,
    )
    assert done is not None
    finished, events = done
    assert [e.event_type for e in events] == ["recording-completed"]
    assert (finished.status, finished.duration, finished.size, finished.worker_id) == (
        "completed",
        5,
        1234,
        None,
    )
    assert domain.completed(finished, report("completed"), now) is None
    assert domain.failed(finished, "RecordingUpload", now) is None


def test_a_completion_whose_start_report_was_lost_starts_it_first() -> None:
    now = CLOCK.now() + timedelta(seconds=10)
    done = domain.completed(
        new(), report("completed", codec="OPUS", duration_seconds=0.3, size=10), now
    )
    assert done is not None
    finished, events = done
    assert [e.event_type for e in events] == ["recording-started", "recording-completed"]
    assert (finished.codec, finished.duration) == ("OPUS", 1)


def test_failed_names_the_operation() -> None:
    now = CLOCK.now()
    never_started = domain.failed(new(), None, now)
    assert never_started is not None and never_started[0].failed_operation == "RecordingStart"
    running = new().model_copy(update={"worker_id": "worker-1"})
    broke = domain.failed(running, None, now)
    assert broke is not None
    assert (broke[0].status, broke[0].failed_operation, broke[0].worker_id) == (
        "failed",
        "RecordingComplete",
        None,
    )
    assert broke[1].event_type == "recording-failed"
    upload = domain.failed(running, "RecordingUpload", now)
    assert upload is not None and upload[0].failed_operation == "RecordingUpload"


def test_delete_and_stop() -> None:
    now = CLOCK.now() + timedelta(seconds=30)
    with pytest.raises(AtriumError) as caught:
        domain.check_deletable(new())
    assert caught.value.status == 400
    completed = new().model_copy(update={"status": "completed"})
    domain.check_deletable(completed)
    gone = domain.deleted(completed, now)
    assert (gone.status, gone.date_deleted) == ("deleted", now)
    assert domain.stop_requested(new(), now).date_updated == now


def test_a_command_carries_the_whole_room() -> None:
    room = room_info(CLOCK, record=True)
    older, newer = new(MIC, after=1), new(CAM, after=2)
    newer = newer.model_copy(update={"sid": "RT" + "0" * 32})
    command = domain.command(room, 7, [newer, older], ["RT-b", "RT-a"])
    assert (command.room_sid, command.account_sid, command.version) == (ROOM, ACCOUNT, 7)
    assert [t.recording_sid for t in command.start] == [older.sid, newer.sid]
    assert command.start[0].track_sid == MIC.track.sid and command.start[0].kind == "audio"
    assert command.start[0].media_key == older.media_key
    assert command.stop == ["RT-a", "RT-b"]


def test_list_filters() -> None:
    recording = new()

    def shown(**fields: Any) -> bool:
        request = ListRecordingsRequest(account_sid=ACCOUNT, **fields)
        return domain.matches(recording, request)

    assert shown()
    assert not domain.matches(recording, ListRecordingsRequest(account_sid="AC" + "b" * 32))
    assert shown(status="processing") and not shown(status="completed")
    assert shown(source_sid=MIC.track.sid) and not shown(source_sid=CAM.track.sid)
    assert shown(media_type="audio") and not shown(media_type="video")
    assert shown(grouping_sids=[ROOM]) and shown(grouping_sids=[ROOM, ALICE])
    assert not shown(grouping_sids=[BOB]) and not shown(grouping_sids=[ROOM, BOB])
    assert shown(room_sid=ROOM) and not shown(room_sid="RM" + "2" * 32)


# Storage and settings ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/rec/x", StorageTarget(kind="s3", bucket="bucket", prefix="rec/x")),
        (
            "https://my.bucket.s3.eu-west-1.amazonaws.com/recordings/",
            StorageTarget(kind="s3", bucket="my.bucket", prefix="recordings", region="eu-west-1"),
        ),
        (
            "https://bucket.s3.amazonaws.com",
            StorageTarget(kind="s3", bucket="bucket", prefix=""),
        ),
        (
            "https://documentation-example-twilio-bucket/recordings",
            StorageTarget(
                kind="s3", bucket="documentation-example-twilio-bucket", prefix="recordings"
            ),
        ),
        (
            "https://minio.example.com:9000/bucket/a/b",
            StorageTarget(
                kind="s3",
                bucket="bucket",
                prefix="a/b",
                endpoint_url="https://minio.example.com:9000",
            ),
        ),
    ],
)
def test_s3_urls(url: str, expected: StorageTarget) -> None:
    assert domain.s3_target(url) == expected


def test_storage_target_the_accounts_bucket_else_the_operators_else_local() -> None:
    enabled = RecordingSettings(
        account_sid=ACCOUNT, aws_storage_enabled=True, aws_s3_url="https://b.s3.amazonaws.com/p"
    )
    disabled = enabled.model_copy(update={"aws_storage_enabled": False})
    operator = "s3://ops/recordings"
    endpoint = "http://127.0.0.1:9000"
    assert domain.storage_target(enabled, operator, endpoint) == StorageTarget(
        kind="s3", bucket="b", prefix="p"
    )
    assert domain.storage_target(disabled, operator, endpoint) == StorageTarget(
        kind="s3", bucket="ops", prefix="recordings", endpoint_url=endpoint
    )
    assert domain.storage_target(None, None, None) == StorageTarget(kind="local")


def update(**fields: Any) -> RecordingSettings:
    request = SetRecordingSettingsRequest(account_sid=ACCOUNT, **fields)
    return domain.updated_settings(domain.default_settings(ACCOUNT), request)


def test_settings_update() -> None:
    changed = update(
        friendly_name="Main",
        aws_storage_enabled=True,
        aws_s3_url="https://bucket.s3.amazonaws.com/rec",
        aws_credentials_sid="CR" + "c" * 32,
    )
    assert (changed.friendly_name, changed.aws_storage_enabled, changed.aws_s3_url) == (
        "Main",
        True,
        "https://bucket.s3.amazonaws.com/rec",
    )
    again = domain.updated_settings(
        changed, SetRecordingSettingsRequest(account_sid=ACCOUNT, friendly_name="Renamed")
    )
    assert (again.friendly_name, again.aws_s3_url) == ("Renamed", changed.aws_s3_url)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"friendly_name": " "},
        {"friendly_name": "x" * 256},
        {"friendly_name": "a", "aws_s3_url": "http://bucket.s3.amazonaws.com/p"},
        {"friendly_name": "a", "aws_s3_url": "not a url"},
        {"friendly_name": "a", "aws_s3_url": "https://AKIA:sekrit@bucket.s3.amazonaws.com/p"},
        {"friendly_name": "a", "aws_s3_url": "https://bucket.s3.amazonaws.com/p?X-Amz-Sig=sekrit"},
        {"friendly_name": "a", "aws_credentials_sid": "sekrit"},
        {"friendly_name": "a", "encryption_key_sid": "CR123"},
        {"friendly_name": "a", "aws_storage_enabled": True},
        {"friendly_name": "a", "encryption_enabled": True, "encryption_key_sid": "CR" + "e" * 32},
    ],
)
def test_invalid_settings_are_refused_without_echoing_the_value(fields: dict[str, Any]) -> None:
    with pytest.raises(AtriumError) as caught:
        update(**fields)
    assert (caught.value.code, caught.value.status) == (errors.INVALID_PARAMETER, 400)
    assert "sekrit" not in caught.value.message
