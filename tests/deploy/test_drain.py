"""The media worker's drain hook and the runtime's drain timeout, without processes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from faststream.nats import NatsBroker

from atrium_media import app as media_app
from atrium_media.signaling.handover import SessionRecord
from atrium_media.signaling.session import ParticipantSession
from atrium_media.signaling.worker import MediaWorker
from atrium_shared.models import ParticipantInfo
from atrium_shared.workers import WorkerInfo
from tests.support.fakes.gateway import EPOCH


@dataclass
class FakeRegistry:
    log: list[str]
    beats: list[WorkerInfo] = field(default_factory=list)

    async def heartbeat(self, info: WorkerInfo) -> None:
        self.log.append("heartbeat")
        self.beats.append(info)


@dataclass
class FakeStore:
    log: list[str]

    async def save(self, record: SessionRecord) -> None:
        await asyncio.sleep(0)
        self.log.append(f"save {record.participant.sid}")


def session(worker: MediaWorker, participant_sid: str) -> ParticipantSession:
    participant = ParticipantInfo(
        sid=participant_sid,
        room_sid="RM" + "1" * 32,
        account_sid="AC" + "a" * 32,
        identity=participant_sid,
        start_time=EPOCH,
        date_created=EPOCH,
        date_updated=EPOCH,
    )
    made = ParticipantSession(
        session_id=participant_sid,
        worker_id=worker.worker_id,
        participant=participant,
        connection_id=None,
        reply_subject=None,
        send_frame=worker.send_frame,
    )
    worker.sessions[made.session_id] = made
    return made


async def test_drain_marks_the_worker_at_once_and_hands_its_sessions_over() -> None:
    log: list[str] = []
    registry = FakeRegistry(log)
    store = FakeStore(log)
    worker = MediaWorker(
        "w",
        NatsBroker(),
        control=None,  # type: ignore[arg-type]  # no session talks to the control plane here
        registry=registry,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
    )
    sessions = [session(worker, "PA1"), session(worker, "PA2")]
    try:
        await asyncio.wait_for(media_app.drain(worker), 5)
        # Every session's record is written before the registry says draining (the room
        # service moves a draining worker's rooms, reading those records), and none after.
        assert sorted(log[:2]) == ["save PA1", "save PA2"]
        assert log[2:] == ["heartbeat"] and registry.beats[0].draining
        assert worker.handing_over
        worker._record(sessions[0])  # a late change is not written over the handed-over record
        assert not worker._unsaved
    finally:
        for made in sessions:
            await made.close()
