"""recording-started / -completed / -failed carry Twilio's parameters (its docs, section 5.3 of
the REST reference): the common ones always, the media ones only once the file exists."""

from __future__ import annotations

from datetime import UTC, datetime

from atrium_callback.domain import RoomProjection, callback_params
from atrium_shared.events import RecordingCompleted, RecordingFailed, RecordingStarted
from atrium_shared.recording_api import RecordingInfo

ACCOUNT = "AC" + "a" * 32
ROOM = "RM" + "b" * 32
WHEN = datetime(2026, 12, 2, 10, 0, 0, 123000, tzinfo=UTC)
PROJECTION = RoomProjection(ACCOUNT, "https://example.com/cb", "POST", "standup", "group")
RECORDING = RecordingInfo(
    sid="RT" + "c" * 32,
    account_sid=ACCOUNT,
    room_sid=ROOM,
    participant_sid="PA" + "d" * 32,
    participant_identity="alice",
    source_sid="MT" + "e" * 32,
    track_name="mic",
    type="audio",
    codec="OPUS",
    container_format="mka",
    date_created=WHEN,
    date_updated=WHEN,
    offset=1250,
    media_key=f"{ACCOUNT}/RT{'c' * 32}.mka",
)
COMMON = {
    "AccountSid": ACCOUNT,
    "RoomSid": ROOM,
    "RoomName": "standup",
    "RoomType": "group",
    "RoomStatus": "in-progress",
    "Timestamp": "2026-12-02T10:00:00.123Z",
    "SequenceNumber": "7",
    "RecordingSid": RECORDING.sid,
    "ParticipantSid": RECORDING.participant_sid,
    "ParticipantIdentity": "alice",
    "SourceSid": RECORDING.source_sid,
    "RecordingUri": f"/v1/Recordings/{RECORDING.sid}",
    "Container": "mka",
    "Codec": "OPUS",
    "TrackName": "mic",
    "OffsetFromTwilioVideoEpoch": "1250",
    "Type": "audio",
}


def test_recording_started() -> None:
    event = RecordingStarted(
        account_sid=ACCOUNT, room_sid=ROOM, occurred_at=WHEN, sequence_number=7, recording=RECORDING
    )
    assert callback_params(event, PROJECTION) == {
        **COMMON,
        "StatusCallbackEvent": "recording-started",
    }


def test_recording_completed_adds_the_media() -> None:
    done = RECORDING.model_copy(update={"status": "completed", "duration": 12, "size": 98765})
    event = RecordingCompleted(
        account_sid=ACCOUNT, room_sid=ROOM, occurred_at=WHEN, sequence_number=7, recording=done
    )
    assert callback_params(event, PROJECTION) == {
        **COMMON,
        "StatusCallbackEvent": "recording-completed",
        "MediaUri": f"/v1/Recordings/{RECORDING.sid}/Media",
        "Duration": "12",
        "Size": "98765",
        "MediaExternalLocation": "",
    }


def test_recording_failed_says_which_operation() -> None:
    failed = RECORDING.model_copy(
        update={"status": "failed", "failed_operation": "RecordingUpload"}
    )
    event = RecordingFailed(
        account_sid=ACCOUNT, room_sid=ROOM, occurred_at=WHEN, sequence_number=7, recording=failed
    )
    assert callback_params(event, PROJECTION) == {
        **COMMON,
        "StatusCallbackEvent": "recording-failed",
        "FailedOperation": "RecordingUpload",
    }
