"""The media worker's drain hook and the runtime's drain timeout, without processes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from atrium_media import app as media_app
from atrium_shared.workers import WorkerInfo
from tests.support.waiting import eventually


class Sessions(dict[str, Any]):
    """The worker's sessions; notes in ``log`` each time the drain loop asks whether any is left."""

    def __init__(self, log: list[str], **sessions: Any) -> None:
        super().__init__(sessions)
        self.log = log

    def __bool__(self) -> bool:
        self.log.append("any session left?")
        return len(self) > 0


@dataclass
class FakeRegistry:
    log: list[str]
    beats: list[WorkerInfo] = field(default_factory=list)

    async def heartbeat(self, info: WorkerInfo) -> None:
        self.log.append("heartbeat")
        self.beats.append(info)


@dataclass
class FakeWorker:
    log: list[str] = field(default_factory=list)
    draining: bool = False

    def __post_init__(self) -> None:
        self.registry = FakeRegistry(self.log)
        self.sessions = Sessions(self.log, s1=object())

    def info(self) -> WorkerInfo:
        return WorkerInfo(worker_id="w", participants=len(self.sessions), draining=self.draining)


async def test_drain_marks_the_worker_at_once_and_waits_for_its_sessions(monkeypatch: Any) -> None:
    monkeypatch.setattr(media_app, "DRAIN_POLL_SECONDS", 0.01)
    worker = FakeWorker()
    task = asyncio.create_task(media_app.drain(worker))  # type: ignore[arg-type]  # a fake worker
    # Until the drain has looked twice (a poll apart) and found the session each time.
    await eventually(lambda: worker.log.count("any session left?") >= 2, message="two looks")
    assert worker.draining
    # The registry was told before the first look, not at the next heartbeat.
    assert worker.log[0] == "heartbeat" and worker.registry.beats[0].draining
    assert not task.done()  # a session is still here
    worker.sessions.clear()
    await asyncio.wait_for(task, 1)
