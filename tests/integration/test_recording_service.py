"""The recording service on real NATS and Redis, beside the control plane: a room that records on
connect has its tracks' recordings commanded to the media workers (``atrium.media.recordings``)
as the track service publishes them; worker reports complete and fail them (a worker that stops
heartbeating fails its recordings), with their events in JetStream; RecordingRules stop a live
track at once; the records list, fetch and delete (the local file goes with it). And the Redis
adapter's filtered keyset paging, chunk by chunk, against the paging of the kept records."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from redis.asyncio import Redis

from atrium_recording import domain
from atrium_recording.adapters import redis as adapter
from atrium_recording.app import build as build_recording
from atrium_recording.domain import LiveTrack
from atrium_shared import subjects
from atrium_shared.events import RecordingCompleted, RecordingFailed, RecordingStarted
from atrium_shared.models import TrackKind
from atrium_shared.paging import index_member
from atrium_shared.recording_api import (
    DeleteRecordingRequest,
    FetchRecordingRequest,
    ListRecordingsRequest,
    RecordingCommand,
    RecordingInfo,
    RecordingPage,
    RecordingReport,
    RecordingRules,
    SetRecordingRulesRequest,
    StorageTarget,
)
from atrium_shared.rpc import call
from atrium_shared.workers import WorkerInfo, WorkerRegistry
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.paging import page_members
from tests.support.fakes.recording import participant_info, room_info, track_info
from tests.support.jetstream import stream_events
from tests.support.rpc import admit, publish
from tests.support.stack import CONTROL_PLANE, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_recordings_follow_the_room_and_the_workers_reports(
    stacks: StackFactory, broker: NatsBroker, redis: Redis, tenant: Tenant, tmp_path: Path
) -> None:
    folder = tmp_path / "recordings"
    stack = await stacks.start(CONTROL_PLANE, recordings_dir=str(folder))
    recording_service = build_recording(stack.settings)
    await recording_service.start()
    heard: list[RecordingCommand] = []
    listener = await nats.connect(stack.settings.nats_url)

    async def on_command(message: Msg) -> None:
        heard.append(RecordingCommand.model_validate_json(message.data))

    await listener.subscribe(subjects.MEDIA_RECORDINGS, cb=on_command)
    account = tenant.account.sid
    try:
        client = stack.rest(tenant)
        room = await asyncio.to_thread(
            lambda: client.video.v1.rooms.create(
                unique_name="recorded", record_participants_on_connect=True
            )
        )
        alice = await admit(broker, room, "alice")
        mic, cam, chat = (
            await publish(
                broker, alice, ("a", "mic", "audio"), ("v", "cam", "video"), ("d", "chat", "data")
            )
        ).tracks
        assert mic.track is not None and cam.track is not None and chat.track is not None

        # Both media tracks are commanded (the data track never is), in one or more commands.
        await eventually(
            lambda: heard and len(heard[-1].start) == 2, message="the recordings' command"
        )
        command = heard[-1]
        assert command.room_sid == room.sid and command.account_sid == account
        assert len({c.version for c in heard}) == len(heard)  # one version per command
        by_track = {t.track_sid: t for t in command.start}
        assert set(by_track) == {mic.track.sid, cam.track.sid}
        audio, video = by_track[mic.track.sid], by_track[cam.track.sid]
        assert audio.media_key == f"{account}/{audio.recording_sid}.mka"
        assert video.media_key == f"{account}/{video.recording_sid}.mkv"
        assert audio.storage.kind == "local"

        async def report(sid: str, worker: str, outcome: str, **fields: object) -> RecordingInfo:
            request = RecordingReport.model_validate(
                {
                    "account_sid": account,
                    "room_sid": room.sid,
                    "recording_sid": sid,
                    "worker_id": worker,
                    "outcome": outcome,
                    **fields,
                }
            )
            return await call(broker, subjects.RECORDING_REPORT, request, RecordingInfo)

        # worker-1 heartbeats; worker-gone never does.
        await WorkerRegistry(redis).heartbeat(WorkerInfo(worker_id="worker-1"))
        await report(audio.recording_sid, "worker-1", "started", codec="OPUS", offset_ms=40)
        await report(video.recording_sid, "worker-gone", "started", codec="VP8", offset_ms=45)

        # RecordingRules that exclude video stop the camera's recording at once.
        before = len(heard)
        rules = await call(
            broker,
            subjects.RECORDING_RULES_SET,
            SetRecordingRulesRequest(
                account_sid=account,
                room_sid=room.sid,
                rules='[{"type": "include", "all": true}, {"type": "exclude", "kind": "video"}]',
            ),
            RecordingRules,
        )
        assert len(rules.rules) == 2
        await eventually(lambda: len(heard) > before, timeout=1.0, message="the stop command")
        assert heard[-1].stop == [video.recording_sid]
        assert [t.recording_sid for t in heard[-1].start] == [audio.recording_sid]

        # The audio file is written (by the worker, here by the test) and reported completed.
        media = folder / audio.media_key
        media.parent.mkdir(parents=True)
        media.write_bytes(b"\x1a\x45\xdf\xa3 matroska")
        done = await report(
            audio.recording_sid, "worker-1", "completed", duration_seconds=4.4, size=17
        )
        assert (done.status, done.duration, done.size, done.codec) == ("completed", 4, 17, "OPUS")

        # The camera's worker is gone: its recording fails, never completes.
        async def video_failed() -> bool:
            fetched = await call(
                broker,
                subjects.RECORDING_FETCH,
                FetchRecordingRequest(account_sid=account, recording_sid=video.recording_sid),
                RecordingInfo,
            )
            return fetched.status == "failed" and fetched.failed_operation == "RecordingComplete"

        await eventually(video_failed, timeout=5.0, message="the video recording failed")

        expected = [
            ("recording-started", audio.recording_sid),
            ("recording-started", video.recording_sid),
            ("recording-completed", audio.recording_sid),
            ("recording-failed", video.recording_sid),
        ]

        async def recording_events() -> bool:
            seen = [
                (e.event_type, e.recording.sid)
                for e in await stream_events(stack.settings.nats_url)
                if isinstance(e, RecordingStarted | RecordingCompleted | RecordingFailed)
            ]
            return seen == expected

        await eventually(recording_events, message="the recording events in JetStream")

        # List with Twilio's filters, fetch, delete.
        async def listed(**filters: object) -> list[RecordingInfo]:
            request = ListRecordingsRequest.model_validate({"account_sid": account, **filters})
            return (await call(broker, subjects.RECORDING_LIST, request, RecordingPage)).items

        everything = await listed()
        assert {r.sid for r in everything} == {audio.recording_sid, video.recording_sid}
        assert everything[0].date_created >= everything[1].date_created  # newest first
        assert [r.sid for r in await listed(status="completed")] == [audio.recording_sid]
        assert [r.sid for r in await listed(media_type="video")] == [video.recording_sid]
        assert [r.sid for r in await listed(source_sid=mic.track.sid)] == [audio.recording_sid]
        assert len(await listed(grouping_sids=[room.sid, alice.sid])) == 2
        assert await listed(grouping_sids=["PA" + "0" * 32]) == []
        first = await call(
            broker,
            subjects.RECORDING_LIST,
            ListRecordingsRequest(account_sid=account, room_sid=room.sid, page_size=1),
            RecordingPage,
        )
        assert len(first.items) == 1 and first.next_cursor is not None
        rest = await call(
            broker,
            subjects.RECORDING_LIST,
            ListRecordingsRequest(
                account_sid=account, room_sid=room.sid, page_size=1, cursor=first.next_cursor
            ),
            RecordingPage,
        )
        assert {first.items[0].sid, rest.items[0].sid} == {
            audio.recording_sid,
            video.recording_sid,
        }
        fetched = await call(
            broker,
            subjects.RECORDING_FETCH,
            FetchRecordingRequest(
                account_sid=account, recording_sid=audio.recording_sid, room_sid=room.sid
            ),
            RecordingInfo,
        )
        assert fetched == done
        gone = await call(
            broker,
            subjects.RECORDING_DELETE,
            DeleteRecordingRequest(account_sid=account, recording_sid=audio.recording_sid),
            RecordingInfo,
        )
        assert gone.status == "deleted" and gone.date_deleted is not None
        assert not media.exists()
    finally:
        await listener.close()
        await recording_service.stop()


async def test_filtered_pages_on_redis_match_keyset_paging_of_the_kept_records(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter reads its index a chunk at a time until a page of kept records is found: its
    pages and cursors are those of :mod:`atrium_shared.paging` over only the kept records."""
    monkeypatch.setattr(adapter, "SCAN_CHUNK", 7)
    clock = FakeClock()
    room = room_info(clock, record=True)
    alice = participant_info(clock, "PA" + "a" * 32, "alice")
    records = []
    for n in range(60):
        kind: TrackKind = "video" if n % 3 == 0 else "audio"
        track = track_info(clock, f"MT{n:032x}", alice, f"t{n}", kind)
        live = LiveTrack(track=track, identity="alice")
        records.append(
            domain.new_recording(f"RT{n:032x}", live, room, StorageTarget(), clock.advance(1))
        )
    async with redis.pipeline(transaction=True) as pipe:
        tx = adapter.RedisRecordingTransaction(pipe)
        for record in records:
            tx.add_recording(record)
        change = tx.change()
        assert change is not None
        pipe.multi()
        change.write(pipe)
        await pipe.execute()
    queries = adapter.RedisRecordingQueries(redis)
    videos = {index_member(r.date_created, r.sid): r for r in records if r.type == "video"}
    window = {"created_after": records[5].date_created, "created_before": records[55].date_created}
    request = ListRecordingsRequest(account_sid=room.account_sid, page_size=4, **window)
    seen: list[str] = []
    while True:
        page = await queries.page(("room", room.sid), request, lambda r: r.type == "video")
        expected, next_cursor, previous_cursor = page_members(
            videos,
            created_on_or_after=request.created_after,
            created_before=request.created_before,
            page_size=request.page_size,
            cursor=request.cursor,
        )
        assert [r.sid for r in page.items] == [videos[m].sid for m in expected]
        assert (page.next_cursor, page.previous_cursor) == (next_cursor, previous_cursor)
        seen += [r.sid for r in page.items]
        if page.previous_cursor is not None and len(seen) == 8:
            back = await queries.page(
                ("room", room.sid),
                request.model_copy(update={"cursor": page.previous_cursor}),
                lambda r: r.type == "video",
            )
            assert [r.sid for r in back.items] == seen[:4]
        if page.next_cursor is None:
            break
        request = request.model_copy(update={"cursor": page.next_cursor})
    in_window = [r for r in records[5:55] if r.type == "video"]
    assert seen == [r.sid for r in reversed(in_window)]
