"""The recording service's NATS handlers, wired by bootstrap() on fakes, under FastStream's
TestNatsBroker: events consumed from the stream start recordings and the command reaches the
media workers' subject through the real NATS publisher; every RPC subject answers with its result
or a Twilio error body; unreadable events are dropped, failed ones nacked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from unittest import mock

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from pydantic import BaseModel

from atrium_recording import handlers
from atrium_shared import errors, subjects
from atrium_shared.events import DomainEvent, RoomCreated, TrackAdded
from atrium_shared.recording_api import (
    DeleteRecordingRequest,
    FetchRecordingRequest,
    FetchRecordingRulesRequest,
    FetchRecordingSettingsRequest,
    ListRecordingsRequest,
    RecordingCommand,
    RecordingInfo,
    RecordingMediaLocation,
    RecordingMediaRequest,
    RecordingPage,
    RecordingReport,
    RecordingRules,
    RecordingSettings,
    SetRecordingRulesRequest,
    SetRecordingSettingsRequest,
)
from tests.support.fakes.recording import (
    ACCOUNT,
    ALICE,
    ROOM,
    RecordingFakes,
    participant_info,
    room_info,
    track_info,
)
from tests.support.replies import error_of, result_of

MIC = "MT" + "1" * 32


@pytest.fixture
def fakes() -> RecordingFakes:
    return RecordingFakes()


@pytest.fixture
def heard() -> list[RecordingCommand]:
    return []


@pytest.fixture
async def broker(fakes: RecordingFakes, heard: list[RecordingCommand]) -> AsyncIterator[NatsBroker]:
    # The real NATS publisher: what a media worker would hear is heard here.
    service = fakes.service(publisher=False)

    @service.broker.subscriber(subjects.MEDIA_RECORDINGS)
    async def media_worker(command: RecordingCommand) -> None:
        heard.append(command)

    async with TestNatsBroker(service.broker) as broker:
        yield broker


async def publish(broker: NatsBroker, event: DomainEvent | bytes, subject: str = "") -> None:
    if not subject:
        assert not isinstance(event, bytes)
        subject = subjects.event_subject(event.account_sid, event.room_sid, event.event_type)
    body = event if isinstance(event, bytes) else event.model_dump_json().encode()
    await broker.publish(body, subject, stream=subjects.EVENTS_STREAM_NAME)


def created(fakes: RecordingFakes, record: bool = True) -> RoomCreated:
    room = room_info(fakes.clock, record=record)
    return RoomCreated(account_sid=ACCOUNT, room_sid=ROOM, room=room)


def mic_added(fakes: RecordingFakes) -> TrackAdded:
    alice = participant_info(fakes.clock, ALICE, "alice")
    track = track_info(fakes.clock, MIC, alice, "mic", "audio")
    return TrackAdded(account_sid=ACCOUNT, room_sid=ROOM, participant=alice, track=track)


async def test_a_consumed_track_added_starts_a_recording_the_workers_hear_of(
    broker: NatsBroker, fakes: RecordingFakes, heard: list[RecordingCommand]
) -> None:
    added = mic_added(fakes)
    await publish(broker, created(fakes))
    await publish(broker, added)
    await publish(broker, added)  # JetStream's redelivery
    [recording] = fakes.store.recordings()
    assert (recording.source_sid, recording.status) == (MIC, "processing")
    [command] = heard
    assert (command.room_sid, command.version, command.stop) == (ROOM, 1, [])
    assert [t.recording_sid for t in command.start] == [recording.sid]


@pytest.mark.parametrize("body", [b"{not json", b'{"event_type": "track-added"}', b"{}"])
async def test_an_unreadable_event_is_dropped_and_the_next_one_taken(
    broker: NatsBroker, fakes: RecordingFakes, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(broker, body, "atrium.events.x.y.track-added")
    assert "dropping unreadable event" in caplog.text
    await publish(broker, created(fakes))
    await publish(broker, mic_added(fakes))
    assert len(fakes.store.recordings()) == 1


async def test_an_event_not_applied_is_nacked_for_redelivery(
    broker: NatsBroker, fakes: RecordingFakes, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(broker, created(fakes))
    fakes.store.uow.fail = ConnectionError("redis down")
    added = mic_added(fakes)
    with mock.patch("faststream.nats.message.NatsMessage.nack", autospec=True) as nack:
        await publish(broker, added)
    assert nack.call_count == 1
    assert nack.call_args.kwargs == {"delay": handlers.REDELIVERY_DELAY_SECONDS}
    assert "it will be redelivered" in caplog.text
    fakes.store.uow.fail = None
    await publish(broker, added)
    assert len(fakes.store.recordings()) == 1


async def test_every_recording_subject_answers_with_its_result(
    broker: NatsBroker, fakes: RecordingFakes, heard: list[RecordingCommand]
) -> None:
    await publish(broker, created(fakes, record=False))
    await publish(broker, mic_added(fakes))
    where = {"account_sid": ACCOUNT, "room_sid": ROOM}

    rules = await result_of(
        broker,
        subjects.RECORDING_RULES_SET,
        SetRecordingRulesRequest(rules='[{"type": "include", "all": true}]', **where),
        RecordingRules,
    )
    assert [r.model_dump(exclude_none=True) for r in rules.rules] == [
        {"type": "include", "all": True}
    ]
    assert (
        await result_of(
            broker,
            subjects.RECORDING_RULES_GET,
            FetchRecordingRulesRequest(**where),
            RecordingRules,
        )
        == rules
    )
    [recording] = fakes.store.recordings()
    [command] = heard  # before the rules reply: the change applies at once
    assert [t.recording_sid for t in command.start] == [recording.sid]

    report = RecordingReport(
        recording_sid=recording.sid,
        worker_id="worker-1",
        outcome="completed",
        codec="OPUS",
        duration_seconds=3.2,
        size=2048,
        **where,
    )
    done = await result_of(broker, subjects.RECORDING_REPORT, report, RecordingInfo)
    assert (done.status, done.duration, done.codec) == ("completed", 3, "OPUS")
    assert fakes.committed_types == ["recording-started", "recording-completed"]

    fetch = FetchRecordingRequest(account_sid=ACCOUNT, recording_sid=recording.sid)
    assert await result_of(broker, subjects.RECORDING_FETCH, fetch, RecordingInfo) == done
    page = await result_of(
        broker, subjects.RECORDING_LIST, ListRecordingsRequest(**where), RecordingPage
    )
    assert page == RecordingPage(items=[done])
    media = await result_of(
        broker,
        subjects.RECORDING_MEDIA,
        RecordingMediaRequest(account_sid=ACCOUNT, recording_sid=recording.sid),
        RecordingMediaLocation,
    )
    assert (media.media_key, media.url) == (done.media_key, None)
    gone = await result_of(
        broker,
        subjects.RECORDING_DELETE,
        DeleteRecordingRequest(account_sid=ACCOUNT, recording_sid=recording.sid),
        RecordingInfo,
    )
    assert gone.status == "deleted" and fakes.media.deleted == [recording.sid]

    settings = await result_of(
        broker,
        subjects.RECORDING_SETTINGS_SET,
        SetRecordingSettingsRequest(account_sid=ACCOUNT, friendly_name="Main"),
        RecordingSettings,
    )
    assert settings.friendly_name == "Main"
    assert (
        await result_of(
            broker,
            subjects.RECORDING_SETTINGS_GET,
            FetchRecordingSettingsRequest(account_sid=ACCOUNT),
            RecordingSettings,
        )
        == settings
    )


async def test_errors_reply_with_twilio_codes_and_broadcast_nothing(
    broker: NatsBroker, fakes: RecordingFakes, heard: list[RecordingCommand]
) -> None:
    await publish(broker, created(fakes, record=False))
    await publish(broker, mic_added(fakes))
    where = {"account_sid": ACCOUNT, "room_sid": ROOM}
    cases: list[tuple[str, BaseModel, int]] = [
        (
            subjects.RECORDING_RULES_SET,
            SetRecordingRulesRequest(rules="[]", **where),
            errors.RECORDING_RULES_INVALID,
        ),
        (
            subjects.RECORDING_FETCH,
            FetchRecordingRequest(account_sid=ACCOUNT, recording_sid="RT" + "0" * 32),
            errors.NOT_FOUND,
        ),
        (
            subjects.RECORDING_LIST,
            ListRecordingsRequest(cursor="bogus", **where),
            errors.INVALID_PARAMETER,
        ),
        (
            subjects.RECORDING_SETTINGS_SET,
            SetRecordingSettingsRequest(account_sid=ACCOUNT),
            errors.INVALID_PARAMETER,
        ),
    ]
    for subject, request, code in cases:
        assert (await error_of(broker, subject, request)).code == code, subject
    assert heard == [] and fakes.store.recordings() == []
