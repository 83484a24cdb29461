"""The recording use cases on in-memory fakes: what each event and a RecordingRules update start
and stop, the commands the workers hear, the workers' reports, the sweep, and the REST queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atrium_recording import domain
from atrium_recording.adapters.media import LocalMediaStore, MediaStores
from atrium_recording.domain import LiveTrack
from atrium_recording.usecases import RecordingUseCases
from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.events import (
    DomainEvent,
    ParticipantAnonymized,
    ParticipantDisconnected,
    RecordingCompleted,
    RoomCreated,
    RoomEnded,
    TrackAdded,
    TrackRemoved,
)
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo, TrackKind
from atrium_shared.recording_api import (
    DeleteRecordingRequest,
    FetchRecordingRequest,
    FetchRecordingRulesRequest,
    FetchRecordingSettingsRequest,
    ListRecordingsRequest,
    RecordingInfo,
    RecordingMediaRequest,
    RecordingReport,
    RecordingRule,
    SetRecordingRulesRequest,
    SetRecordingSettingsRequest,
    StorageTarget,
)
from atrium_shared.settings import Settings
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.recording import (
    ACCOUNT,
    ALICE,
    BOB,
    OTHER_ACCOUNT,
    ROOM,
    STORAGE_DOWN,
    RecordingFakes,
    participant_info,
    room_info,
    track_info,
)
from tests.support.replies import failure

OTHER_ROOM = "RM" + "2" * 32


@pytest.fixture
def fakes() -> RecordingFakes:
    return RecordingFakes()


@pytest.fixture
def recordings(fakes: RecordingFakes) -> RecordingUseCases:
    return fakes.service().recordings


class Room:
    """A room's events as the other services emit them, with the tracks published so far."""

    def __init__(self, fakes: RecordingFakes, **options: Any) -> None:
        self.fakes = fakes
        self.info = room_info(fakes.clock, **options)
        self.people: dict[str, ParticipantInfo] = {}
        self.tracks: dict[str, TrackInfo] = {}
        self._n = 0

    def created(self) -> RoomCreated:
        return RoomCreated(
            account_sid=self.info.account_sid, room_sid=self.info.sid, room=self.info
        )

    def person(self, sid: str, identity: str) -> ParticipantInfo:
        if sid not in self.people:
            self.people[sid] = participant_info(
                self.fakes.clock,
                sid,
                identity,
                room_sid=self.info.sid,
                account_sid=self.info.account_sid,
            )
        return self.people[sid]

    def added(self, who: ParticipantInfo, name: str, kind: TrackKind) -> TrackAdded:
        self._n += 1
        self.fakes.clock.advance(1)
        sid = f"MT{self.info.sid[-4:]}{self._n:028x}"  # unique across rooms
        track = track_info(self.fakes.clock, sid, who, name, kind)
        self.tracks[name if who.identity == "alice" else f"{who.identity}:{name}"] = track
        return TrackAdded(
            account_sid=track.account_sid, room_sid=track.room_sid, participant=who, track=track
        )

    def removed(self, who: ParticipantInfo, track: TrackInfo) -> TrackRemoved:
        return TrackRemoved(
            account_sid=track.account_sid, room_sid=track.room_sid, participant=who, track=track
        )

    def left(self, who: ParticipantInfo) -> ParticipantDisconnected:
        return ParticipantDisconnected(
            account_sid=who.account_sid, room_sid=who.room_sid, participant=who
        )

    def ended(self) -> RoomEnded:
        ended = self.info.model_copy(update={"status": "completed"})
        return RoomEnded(account_sid=ended.account_sid, room_sid=ended.sid, room=ended)


async def feed(recordings: RecordingUseCases, *events: DomainEvent) -> None:
    """Apply ``events`` in order, a second apart (so what each creates is ordered in time)."""
    clock = recordings.clock
    assert isinstance(clock, FakeClock)
    for event in events:
        clock.advance(1)
        await recordings.on_event(event)


def by_track(fakes: RecordingFakes) -> dict[str, RecordingInfo]:
    return {r.source_sid: r for r in fakes.store.recordings()}


async def recorded_room(
    fakes: RecordingFakes, recordings: RecordingUseCases, **options: Any
) -> tuple[Room, ParticipantInfo]:
    """A room that records on connect, where alice publishes mic (audio) and cam (video)."""
    room = Room(fakes, record=True, **options)
    alice = room.person(ALICE, "alice")
    await feed(
        recordings,
        room.created(),
        room.added(alice, "mic", "audio"),
        room.added(alice, "cam", "video"),
    )
    return room, alice


def report(recording: RecordingInfo, outcome: str, **fields: Any) -> RecordingReport:
    return RecordingReport.model_validate(
        {
            "account_sid": recording.account_sid,
            "room_sid": recording.room_sid,
            "recording_sid": recording.sid,
            "worker_id": "worker-1",
            "outcome": outcome,
            **fields,
        }
    )


def set_rules(rules: str | None, room_sid: str = ROOM, account_sid: str = ACCOUNT) -> Any:
    return SetRecordingRulesRequest(account_sid=account_sid, room_sid=room_sid, rules=rules)


# Events -----------------------------------------------------------------------------------------
async def test_a_room_recording_on_connect_records_audio_and_video_but_not_data(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, alice = await recorded_room(fakes, recordings)
    await feed(recordings, room.added(alice, "chat", "data"))

    mic, cam = room.tracks["mic"], room.tracks["cam"]
    made = by_track(fakes)
    assert set(made) == {mic.sid, cam.sid}
    audio, video = made[mic.sid], made[cam.sid]
    assert (audio.status, audio.type, audio.container_format, audio.track_name) == (
        "processing",
        "audio",
        "mka",
        "mic",
    )
    assert audio.sid.startswith("RT") and audio.media_key == f"{ACCOUNT}/{audio.sid}.mka"
    assert video.media_key == f"{ACCOUNT}/{video.sid}.mkv"
    assert (audio.participant_sid, audio.participant_identity, audio.room_sid) == (
        ALICE,
        "alice",
        ROOM,
    )
    assert audio.status_callback == room.info.status_callback
    assert audio.storage == StorageTarget(kind="local")
    # Each command carries the room's whole set, under a growing version.
    first, second = fakes.publisher.commands
    assert (first.version, [t.recording_sid for t in first.start], first.stop) == (
        1,
        [audio.sid],
        [],
    )
    assert (second.version, [t.recording_sid for t in second.start]) == (2, [audio.sid, video.sid])
    assert second.start[1].track_sid == cam.sid and second.start[1].kind == "video"
    assert fakes.store.live() == {mic.sid, cam.sid, room.tracks["chat"].sid}
    assert fakes.store.active() == {mic.sid: audio.sid, cam.sid: video.sid}
    # recording-started waits for a worker to report the recording started.
    assert fakes.committed_types == []


async def test_a_room_that_does_not_record_records_nothing(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes)
    alice = room.person(ALICE, "alice")
    await feed(recordings, room.created(), room.added(alice, "mic", "audio"))
    assert fakes.store.recordings() == [] and fakes.publisher.commands == []
    assert fakes.store.live() == {room.tracks["mic"].sid}


async def test_a_room_created_with_rules_records_what_they_select(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes, rules=[{"type": "include", "kind": "audio"}])
    alice = room.person(ALICE, "alice")
    await feed(
        recordings,
        room.created(),
        room.added(alice, "mic", "audio"),
        room.added(alice, "cam", "video"),
    )
    assert set(by_track(fakes)) == {room.tracks["mic"].sid}


async def test_a_redelivered_event_is_applied_once(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes, record=True)
    alice = room.person(ALICE, "alice")
    added = room.added(alice, "mic", "audio")
    await feed(recordings, room.created(), added, added)
    removed = room.removed(alice, room.tracks["mic"])
    await feed(recordings, removed, removed)
    assert len(fakes.store.recordings()) == 1
    assert [c.version for c in fakes.publisher.commands] == [1, 2]


async def test_a_room_not_heard_of_is_asked_of_the_room_service(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes, record=True)
    fakes.rooms.add(room.info)
    alice = room.person(ALICE, "alice")
    await feed(recordings, room.added(alice, "mic", "audio"), room.added(alice, "cam", "video"))
    assert len(fakes.store.recordings()) == 2
    assert fakes.rooms.calls == [ROOM]  # then it is known

    unknown = Room(fakes, sid=OTHER_ROOM, record=True)
    bob = unknown.person(BOB, "bob")
    await feed(recordings, unknown.added(bob, "mic", "audio"))
    assert len(fakes.store.recordings()) == 2

    fakes.rooms.fail = AtriumError(errors.SERVICE_UNAVAILABLE, "down", 503)
    # Not applied: the consumer leaves it for redelivery.
    assert (await failure(feed(recordings, unknown.added(bob, "cam", "video")))).status == 503


async def test_a_removed_track_stops_its_recording(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, alice = await recorded_room(fakes, recordings)
    mic, cam = room.tracks["mic"], room.tracks["cam"]
    audio, video = by_track(fakes)[mic.sid], by_track(fakes)[cam.sid]
    fakes.clock.advance(5)
    await feed(recordings, room.removed(alice, mic))

    stop = fakes.publisher.last
    assert (stop.version, stop.stop, [t.recording_sid for t in stop.start]) == (
        3,
        [audio.sid],
        [video.sid],
    )
    stopped = by_track(fakes)[mic.sid]
    # Still processing: the worker finishes the file and reports.
    assert (stopped.status, stopped.date_updated) == ("processing", fakes.clock.now())
    assert fakes.store.active() == {cam.sid: video.sid}
    assert fakes.store.live() == {cam.sid}
    # A track that was not recorded changes nothing.
    chat = room.added(alice, "chat", "data")
    await feed(recordings, chat, room.removed(alice, chat.track))
    assert fakes.publisher.last.version == 3


async def test_a_participant_leaving_stops_its_recordings_only(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, alice = await recorded_room(fakes, recordings)
    bob = room.person(BOB, "bob")
    await feed(recordings, room.added(bob, "mic", "audio"))
    bob_mic = room.tracks["bob:mic"]
    await feed(recordings, room.left(alice))
    made = by_track(fakes)
    assert sorted(fakes.publisher.last.stop) == sorted(
        [made[room.tracks["mic"].sid].sid, made[room.tracks["cam"].sid].sid]
    )
    assert [t.track_sid for t in fakes.publisher.last.start] == [bob_mic.sid]
    assert fakes.store.live() == {bob_mic.sid}


async def test_the_end_of_a_room_stops_everything(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, alice = await recorded_room(fakes, recordings)
    await feed(recordings, room.ended())
    last = fakes.publisher.last
    assert last.start == [] and sorted(last.stop) == sorted(r.sid for r in fakes.store.recordings())
    assert fakes.store.live() == set() and fakes.store.active() == {}
    # A late track of the ended room is not recorded.
    await feed(recordings, room.added(alice, "late", "audio"))
    assert len(fakes.store.recordings()) == 2 and fakes.publisher.last is last


async def test_an_event_that_cannot_be_stored_changes_nothing(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes, record=True)
    await feed(recordings, room.created())
    fakes.store.uow.fail = ConnectionError("redis down")
    with pytest.raises(ConnectionError):
        await feed(recordings, room.added(room.person(ALICE, "alice"), "mic", "audio"))
    fakes.store.uow.fail = None
    assert fakes.store.recordings() == [] and fakes.publisher.commands == []


# RecordingRules ---------------------------------------------------------------------------------
async def test_rules_start_and_stop_the_live_tracks_at_once(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes)
    alice = room.person(ALICE, "alice")
    await feed(
        recordings,
        room.created(),
        room.added(alice, "mic", "audio"),
        room.added(alice, "cam", "video"),
    )
    get = FetchRecordingRulesRequest(account_sid=ACCOUNT, room_sid=ROOM)
    initial = await recordings.get_rules(get)
    assert initial.rules == [RecordingRule(type="exclude", all=True)]
    assert initial.date_created == room.info.date_created

    fakes.clock.advance(10)
    stored = await recordings.set_rules(set_rules('[{"type": "include", "all": true}]'))
    assert stored.rules == [RecordingRule(type="include", all=True)]
    assert (stored.date_created, stored.date_updated) == (room.info.date_created, fakes.clock.now())
    assert await recordings.get_rules(get) == stored
    made = by_track(fakes)
    assert set(made) == {room.tracks["mic"].sid, room.tracks["cam"].sid}
    [started] = fakes.publisher.commands
    # Started in one decision: both at once.
    assert {t.track_sid for t in started.start} == {room.tracks["mic"].sid, room.tracks["cam"].sid}

    await recordings.set_rules(
        set_rules(
            '{"rules": [{"type": "exclude", "kind": "video"}, '
            '{"type": "include", "kind": "audio"}]}'
        )
    )
    stopped = fakes.publisher.last
    assert stopped.stop == [made[room.tracks["cam"].sid].sid]
    assert [t.track_sid for t in stopped.start] == [room.tracks["mic"].sid]
    # The same rules again change nothing: no command.
    await recordings.set_rules(set_rules('[{"type": "include", "kind": "audio"}]'))
    assert len(fakes.publisher.commands) == 2
    # Including video again records it anew: a new recording of the same track.
    await recordings.set_rules(set_rules('[{"type": "include", "all": true}]'))
    assert len([r for r in fakes.store.recordings() if r.source_sid == room.tracks["cam"].sid]) == 2


async def test_invalid_rules_are_53120_and_change_nothing(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    await recorded_room(fakes, recordings)
    sent = len(fakes.publisher.commands)
    for bad in ("[]", '[{"type": "include", "kind": "data"}]', None):
        error = await failure(recordings.set_rules(set_rules(bad)))
        assert (error.code, error.status) == (errors.RECORDING_RULES_INVALID, 400)
    assert len(fakes.publisher.commands) == sent
    rules = await recordings.get_rules(
        FetchRecordingRulesRequest(account_sid=ACCOUNT, room_sid=ROOM)
    )
    assert rules.rules == [RecordingRule(type="include", all=True)]


async def test_rules_of_a_room_the_account_does_not_have_are_404(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    await recorded_room(fakes, recordings)
    include = '[{"type": "include", "all": true}]'
    for request in (
        set_rules(include, account_sid=OTHER_ACCOUNT),
        set_rules(include, room_sid=OTHER_ROOM),
    ):
        error = await failure(recordings.set_rules(request))
        assert (error.code, error.status) == (errors.NOT_FOUND, 404)
    error = await failure(
        recordings.get_rules(FetchRecordingRulesRequest(account_sid=OTHER_ACCOUNT, room_sid=ROOM))
    )
    assert error.status == 404


async def test_rules_by_room_name_and_of_a_completed_room(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes)
    fakes.rooms.add(room.info)
    by_name = await recordings.get_rules(
        FetchRecordingRulesRequest(account_sid=ACCOUNT, room_sid=room.info.unique_name)
    )
    assert by_name.room_sid == ROOM
    await feed(recordings, room.ended())
    error = await failure(recordings.set_rules(set_rules('[{"type": "include", "all": true}]')))
    assert (error.code, error.status) == (errors.ROOM_COMPLETED, 400)


async def test_a_rules_change_racing_a_new_track_decides_with_the_newest_rules(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes, record=True)
    alice = room.person(ALICE, "alice")
    await feed(recordings, room.created())
    fakes.store.uow.interleave(
        lambda: recordings.set_rules(set_rules('[{"type": "exclude", "all": true}]'))
    )
    await feed(recordings, room.added(alice, "mic", "audio"))
    assert fakes.store.uow.conflicts == 1
    assert fakes.store.recordings() == [] and fakes.publisher.commands == []
    assert fakes.store.live() == {room.tracks["mic"].sid}


# Worker reports -----------------------------------------------------------------------------------
async def test_reports_start_and_complete_a_recording(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, alice = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    running = await recordings.report(report(audio, "started", codec="OPUS", offset_ms=1234))
    assert (running.codec, running.offset, running.worker_id) == ("OPUS", 1234, "worker-1")
    assert fakes.committed_types == ["recording-started"]
    assert await recordings.report(report(audio, "started", codec="OPUS")) == running
    assert fakes.committed_types == ["recording-started"]

    await feed(recordings, room.removed(alice, room.tracks["mic"]))
    done = await recordings.report(report(audio, "completed", duration_seconds=7.5, size=4096))
    assert (done.status, done.duration, done.size, done.worker_id) == ("completed", 8, 4096, None)
    assert fakes.committed_types == ["recording-started", "recording-completed"]
    [_, event] = fakes.store.uow.committed
    assert isinstance(event, RecordingCompleted)
    assert event.room_sid == ROOM and event.recording == done
    assert await recordings.queries.processing() == [by_track(fakes)[room.tracks["cam"].sid]]
    # A late report about a finished recording changes nothing.
    assert await recordings.report(report(audio, "failed")) == done
    assert len(fakes.store.uow.committed) == 2


async def test_a_completion_without_a_start_report_and_a_failure(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    video = by_track(fakes)[room.tracks["cam"].sid]
    await recordings.report(
        report(
            audio,
            "completed",
            codec="OPUS",
            duration_seconds=0.2,
            size=9,
            media_external_location="s3://b/k.mka",
        )
    )
    assert fakes.committed_types == ["recording-started", "recording-completed"]
    lost = await recordings.report(
        report(video, "failed", failed_operation="RecordingUpload", reason="bucket said no")
    )
    assert (lost.status, lost.failed_operation) == ("failed", "RecordingUpload")
    assert fakes.committed_types[-1] == "recording-failed"
    # A failed recording gives its track up (the track may be recorded again); a completed one
    # keeps it until the track goes, so no second recording starts for a track that the worker
    # finished before this service heard it was removed.
    assert fakes.store.active() == {room.tracks["mic"].sid: audio.sid}
    assert by_track(fakes)[room.tracks["mic"].sid].media_external_location == "s3://b/k.mka"


async def test_a_track_the_worker_finished_first_is_not_recorded_twice(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    await recordings.report(report(audio, "completed", codec="OPUS", duration_seconds=2, size=9))
    before = len(fakes.store.recordings())
    # Any later decision for the room (here: the rules are posted again) starts nothing for the
    # finished track, and the command no longer asks for its recording.
    await recordings.set_rules(set_rules('[{"type": "include", "kind": "audio"}]'))
    assert len(fakes.store.recordings()) == before
    assert audio.sid not in {order.recording_sid for order in fakes.publisher.commands[-1].start}


async def test_a_report_about_another_accounts_or_an_unknown_recording_is_404(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    for wrong in (
        audio.model_copy(update={"account_sid": OTHER_ACCOUNT}),
        audio.model_copy(update={"sid": "RT" + "0" * 32}),
    ):
        error = await failure(recordings.report(report(wrong, "started")))
        assert (error.code, error.status) == (errors.NOT_FOUND, 404)


# The sweep ---------------------------------------------------------------------------------------
async def test_the_recordings_of_a_worker_that_is_gone_fail(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    video = by_track(fakes)[room.tracks["cam"].sid]
    await recordings.report(report(audio, "started", codec="OPUS"))
    await recordings.report(
        report(video, "started", codec="VP8").model_copy(update={"worker_id": "worker-2"})
    )
    fakes.workers.live = {"worker-2"}
    await recordings.sweep()
    made = by_track(fakes)
    assert (made[audio.source_sid].status, made[audio.source_sid].failed_operation) == (
        "failed",
        "RecordingComplete",
    )
    assert made[video.source_sid].status == "processing"
    assert fakes.committed_types == ["recording-started", "recording-started", "recording-failed"]
    await recordings.sweep()  # once
    assert fakes.committed_types.count("recording-failed") == 1


async def test_a_stopped_recording_no_worker_started_fails_after_the_grace(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, alice = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    fakes.clock.advance(60)  # long unstarted, but still wanted: its track may be muted
    await feed(recordings, room.removed(alice, room.tracks["mic"]))
    await recordings.sweep()
    assert by_track(fakes)[audio.source_sid].status == "processing"
    fakes.clock.advance(fakes.timing.stop_grace.total_seconds())
    await recordings.sweep()
    made = by_track(fakes)
    assert (made[audio.source_sid].status, made[audio.source_sid].failed_operation) == (
        "failed",
        "RecordingStart",
    )
    assert made[room.tracks["cam"].sid].status == "processing"
    assert fakes.committed_types == ["recording-failed"]


async def test_the_sweep_repeats_a_command_no_worker_acted_on(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes, record=True)
    await feed(recordings, room.created())
    await feed(recordings, room.added(room.person(ALICE, "alice"), "mic", "audio"))
    [recording] = fakes.store.recordings()
    every = fakes.timing.resend_every.total_seconds()
    await recordings.sweep()  # just sent: not yet
    assert len(fakes.publisher.commands) == 1
    fakes.clock.advance(every)
    await recordings.sweep()
    repeated = fakes.publisher.last
    assert len(fakes.publisher.commands) == 2
    assert (repeated.version, repeated.stop) == (2, [])
    assert [t.recording_sid for t in repeated.start] == [recording.sid]
    await recordings.sweep()  # not again so soon
    assert len(fakes.publisher.commands) == 2
    fakes.clock.advance(every)
    await recordings.sweep()
    assert len(fakes.publisher.commands) == 3
    # Once a worker reports it started, nothing is repeated.
    await recordings.report(report(recording, "started"))
    fakes.clock.advance(every)
    await recordings.sweep()
    assert len(fakes.publisher.commands) == 3


async def test_the_sweep_gives_up_repeating(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    await recorded_room(fakes, recordings)
    sent = len(fakes.publisher.commands)
    fakes.clock.advance(fakes.timing.resend_for.total_seconds())
    await recordings.sweep()
    assert len(fakes.publisher.commands) == sent


# Queries ------------------------------------------------------------------------------------------
async def two_rooms(fakes: RecordingFakes, recordings: RecordingUseCases) -> list[RecordingInfo]:
    room, _ = await recorded_room(fakes, recordings)
    bob = room.person(BOB, "bob")
    await feed(recordings, room.added(bob, "mic", "audio"))
    other = Room(fakes, sid=OTHER_ROOM, record=True)
    carol = other.person("PA" + "c" * 32, "carol")
    await feed(recordings, other.created(), other.added(carol, "mic", "audio"))
    stranger = Room(fakes, sid="RM" + "3" * 32, account_sid=OTHER_ACCOUNT, record=True)
    dave = stranger.person("PA" + "d" * 32, "dave")
    await feed(recordings, stranger.created(), stranger.added(dave, "mic", "audio"))
    return fakes.store.recordings()


def listing(**fields: Any) -> ListRecordingsRequest:
    return ListRecordingsRequest(account_sid=ACCOUNT, **fields)


async def test_list_filters_and_scopes(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    made = await two_rooms(fakes, recordings)
    mic, cam, bob_mic, carol_mic, _dave = made

    async def sids(**fields: Any) -> list[str]:
        return [r.sid for r in (await recordings.list_recordings(listing(**fields))).items]

    assert await sids() == [carol_mic.sid, bob_mic.sid, cam.sid, mic.sid]  # newest first
    assert fakes.store.queries.pages[-1] == ("account", ACCOUNT)
    assert await sids(room_sid=ROOM) == [bob_mic.sid, cam.sid, mic.sid]
    assert fakes.store.queries.pages[-1] == ("room", ROOM)
    assert await sids(media_type="video") == [cam.sid]
    assert await sids(source_sid=mic.source_sid) == [mic.sid]
    assert fakes.store.queries.pages[-1] == ("track", mic.source_sid)
    assert await sids(grouping_sids=[ROOM, BOB]) == [bob_mic.sid]
    assert fakes.store.queries.pages[-1] == ("participant", BOB)
    assert await sids(grouping_sids=[OTHER_ROOM]) == [carol_mic.sid]
    assert await sids(room_sid=OTHER_ROOM, source_sid=mic.source_sid) == []
    await recordings.report(report(cam, "completed", duration_seconds=3))
    assert await sids(status="completed") == [cam.sid]
    assert await sids(status="processing", room_sid=ROOM) == [bob_mic.sid, mic.sid]
    assert await sids(created_after=cam.date_created) == [carol_mic.sid, bob_mic.sid, cam.sid]
    assert await sids(created_before=cam.date_created) == [mic.sid]
    other = await recordings.list_recordings(ListRecordingsRequest(account_sid=OTHER_ACCOUNT))
    assert [r.sid for r in other.items] == [_dave.sid]


async def test_list_pages_with_cursors(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    made = await two_rooms(fakes, recordings)
    first = await recordings.list_recordings(listing(page_size=3))
    assert [r.sid for r in first.items] == [r.sid for r in reversed(made[:4])][:3]
    assert first.next_cursor is not None and first.previous_cursor is None
    second = await recordings.list_recordings(listing(page_size=3, cursor=first.next_cursor))
    assert [r.sid for r in second.items] == [made[0].sid]
    assert second.next_cursor is None and second.previous_cursor is not None
    back = await recordings.list_recordings(listing(page_size=3, cursor=second.previous_cursor))
    assert back.items == first.items
    error = await failure(recordings.list_recordings(listing(cursor="not-a-cursor")))
    assert (error.code, error.status) == (errors.INVALID_PARAMETER, 400)


async def test_fetch_is_scoped_to_the_account_and_the_room(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    mic = (await two_rooms(fakes, recordings))[0]
    fetch = FetchRecordingRequest(account_sid=ACCOUNT, recording_sid=mic.sid)
    assert await recordings.fetch(fetch) == mic
    assert await recordings.fetch(fetch.model_copy(update={"room_sid": ROOM})) == mic
    for wrong, path in (
        ({"account_sid": OTHER_ACCOUNT}, f"/Recordings/{mic.sid}"),
        ({"room_sid": OTHER_ROOM}, f"/Rooms/{OTHER_ROOM}/Recordings/{mic.sid}"),
        ({"recording_sid": "nope"}, "/Recordings/nope"),
    ):
        error = await failure(recordings.fetch(fetch.model_copy(update=wrong)))
        assert (error.code, error.status) == (errors.NOT_FOUND, 404)
        assert path in error.message


async def test_delete_removes_the_media_then_marks_it_deleted(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    delete = DeleteRecordingRequest(account_sid=ACCOUNT, recording_sid=audio.sid)
    error = await failure(recordings.delete(delete))
    assert error.status == 400 and fakes.media.deleted == []  # still being written
    await recordings.report(report(audio, "completed", duration_seconds=2, size=5))

    fakes.media.fail = STORAGE_DOWN
    assert (await failure(recordings.delete(delete))).status == 503
    assert by_track(fakes)[audio.source_sid].status == "completed"
    fakes.media.fail = None

    fakes.clock.advance(30)
    gone = await recordings.delete(delete)
    assert (gone.status, gone.date_deleted) == ("deleted", fakes.clock.now())
    assert fakes.media.deleted == [audio.sid]
    assert await recordings.delete(delete) == gone
    assert fakes.media.deleted == [audio.sid]
    # The metadata stays listed.
    assert [
        r.status
        for r in (await recordings.list_recordings(listing(source_sid=audio.source_sid))).items
    ] == ["deleted"]
    error = await failure(
        recordings.delete(delete.model_copy(update={"account_sid": OTHER_ACCOUNT}))
    )
    assert error.status == 404


async def test_media_of_a_completed_recording(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    request = RecordingMediaRequest(account_sid=ACCOUNT, recording_sid=audio.sid, expires_in=60)
    error = await failure(recordings.media_location(request))
    assert error.status == 404 and error.message.endswith(
        f"/Recordings/{audio.sid}/Media was not found"
    )
    await recordings.report(report(audio, "completed", duration_seconds=2, size=5))
    local = await recordings.media_location(request)
    assert (local.url, local.media_key) == (None, audio.media_key)
    assert local.recording.status == "completed"


async def test_media_in_a_bucket_is_presigned(fakes: RecordingFakes) -> None:
    recordings = fakes.service(Settings(recordings_s3_url="s3://ops/rec")).recordings
    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    assert audio.storage == StorageTarget(kind="s3", bucket="ops", prefix="rec")
    await recordings.report(report(audio, "completed", duration_seconds=2, size=5))
    located = await recordings.media_location(
        RecordingMediaRequest(account_sid=ACCOUNT, recording_sid=audio.sid, expires_in=60)
    )
    assert located.url == f"https://ops.example/{audio.media_key}?e=60"
    assert located.media_key is None


# RecordingSettings --------------------------------------------------------------------------------
async def test_settings_default_set_and_used_for_new_recordings(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    get = FetchRecordingSettingsRequest(account_sid=ACCOUNT)
    default = await recordings.get_settings(get)
    assert (default.friendly_name, default.aws_storage_enabled, default.aws_s3_url) == (
        "Default",
        False,
        None,
    )
    error = await failure(
        recordings.set_settings(
            SetRecordingSettingsRequest(
                account_sid=ACCOUNT, friendly_name="x", aws_storage_enabled=True
            )
        )
    )
    assert error.status == 400
    assert await recordings.get_settings(get) == default
    stored = await recordings.set_settings(
        SetRecordingSettingsRequest(
            account_sid=ACCOUNT,
            friendly_name="Bucket",
            aws_storage_enabled=True,
            aws_s3_url="https://acme.s3.us-east-1.amazonaws.com/video",
        )
    )
    assert await recordings.get_settings(get) == stored
    other = await recordings.get_settings(FetchRecordingSettingsRequest(account_sid=OTHER_ACCOUNT))
    assert other.aws_storage_enabled is False

    room, _ = await recorded_room(fakes, recordings)
    audio = by_track(fakes)[room.tracks["mic"].sid]
    assert audio.storage == StorageTarget(
        kind="s3", bucket="acme", prefix="video", region="us-east-1"
    )
    assert fakes.publisher.last.start[0].storage == audio.storage


async def test_room_without_room_created_projection_keeps_its_first_record(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room = Room(fakes, record=True)
    await feed(recordings, room.created())
    changed = room.info.model_copy(update={"status_callback": "https://elsewhere.example.com"})
    await feed(recordings, RoomCreated(account_sid=ACCOUNT, room_sid=ROOM, room=changed))
    stored = await recordings.queries.room(ROOM)
    assert stored is not None and stored.status_callback == room.info.status_callback


def test_live_track_round_trips() -> None:
    clock = RecordingFakes().clock
    alice = participant_info(clock, ALICE, "alice")
    live = LiveTrack(
        track=track_info(clock, "MT" + "1" * 32, alice, "mic", "audio"), identity="alice"
    )
    assert LiveTrack.model_validate_json(live.model_dump_json()) == live
    assert isinstance(room_info(clock), RoomInfo)


# The local media store ----------------------------------------------------------------------------
def stored(status: str = "completed", key: str = f"{ACCOUNT}/RT{'9' * 32}.mka") -> RecordingInfo:
    clock = RecordingFakes().clock
    alice = participant_info(clock, ALICE, "alice")
    live = LiveTrack(
        track=track_info(clock, "MT" + "1" * 32, alice, "mic", "audio"), identity="alice"
    )
    recording = domain.new_recording(
        "RT" + "9" * 32, live, room_info(clock), StorageTarget(), clock.now()
    )
    return recording.model_copy(update={"status": status, "media_key": key})


async def test_the_local_store_removes_the_file_under_the_recordings_folder(tmp_path: Path) -> None:
    store = MediaStores(LocalMediaStore(tmp_path))
    recording = stored()
    media = tmp_path / recording.media_key
    media.parent.mkdir(parents=True)
    media.write_bytes(b"mka")
    assert await store.presign(recording, 60) is None  # the gateway serves local files
    await store.delete(recording)
    assert not media.exists()
    await store.delete(recording)  # already gone: nothing to do
    with pytest.raises(ValueError):
        await store.delete(stored(key="../../etc/passwd"))


async def test_the_local_store_refuses_what_it_cannot_reach(tmp_path: Path) -> None:
    store = MediaStores(LocalMediaStore(tmp_path / "not-mounted"))
    error = await failure(store.delete(stored()))
    assert (error.code, error.status) == (errors.SERVICE_UNAVAILABLE, 503)
    await store.delete(stored(status="failed"))  # never written: nothing to remove
    in_a_bucket = stored().model_copy(update={"storage": StorageTarget(kind="s3", bucket="b")})
    for call in (store.delete(in_a_bucket), store.presign(in_a_bucket, 60)):
        assert (await failure(call)).status == 503  # until the media package plugs S3 in


async def test_an_anonymized_participants_recordings_keep_its_sid_not_its_identity(
    fakes: RecordingFakes, recordings: RecordingUseCases
) -> None:
    room, alice = await recorded_room(fakes, recordings)
    bob = room.person(BOB, "bob")
    await feed(recordings, room.added(bob, "mic", "audio"), room.left(alice))
    anonymous = alice.model_copy(update={"identity": alice.sid, "status": "disconnected"})
    event = ParticipantAnonymized(
        account_sid=alice.account_sid, room_sid=alice.room_sid, participant=anonymous
    )
    await feed(recordings, event, event)  # a redelivery changes nothing more
    identities = sorted(
        (r.participant_sid, r.participant_identity) for r in fakes.store.recordings()
    )
    assert identities == [(alice.sid, alice.sid), (alice.sid, alice.sid), (bob.sid, "bob")]
