"""The media worker's drain hook and the runtime's drain timeout, without processes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from atrium_media import app as media_app
from atrium_shared.workers import WorkerInfo


@dataclass
class FakeRegistry:
    beats: list[WorkerInfo] = field(default_factory=list)

    async def heartbeat(self, info: WorkerInfo) -> None:
        self.beats.append(info)


@dataclass
class FakeWorker:
    registry: FakeRegistry = field(default_factory=FakeRegistry)
    sessions: dict[str, Any] = field(default_factory=dict)
    draining: bool = False

    def info(self) -> WorkerInfo:
        return WorkerInfo(worker_id="w", participants=len(self.sessions), draining=self.draining)


async def test_drain_marks_the_worker_at_once_and_waits_for_its_sessions(monkeypatch: Any) -> None:
    monkeypatch.setattr(media_app, "DRAIN_POLL_SECONDS", 0.01)
    worker = FakeWorker(sessions={"s1": object()})
    task = asyncio.create_task(media_app.drain(worker))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert worker.draining
    assert worker.registry.beats and worker.registry.beats[0].draining  # told the registry now
    assert not task.done()  # a session is still here
    worker.sessions.clear()
    await asyncio.wait_for(task, 1)
