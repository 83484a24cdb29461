"""The worker's side of recordings: act on the recording service's commands, report back.

The recording service decides what is recorded and broadcasts, per room, the full set of
recordings that should be running (:class:`RecordingCommand`, versioned). The worker hosting the
room makes its recorders match: a listed recording whose track is here starts (forwarding taps its
RTP into a :class:`TrackRecorder`), a recording in ``stop`` or no longer listed is finished, put
into its storage and reported ``completed`` (or ``failed``). A recorded track that goes away
(unpublished, its publisher left, the room closed) is finished the same way. Commands for rooms
this worker does not host, and commands older than one already applied, are ignored; a track
whose media is not here yet is picked up by the next command (the service repeats a room's command
until its recordings are reported started).

Clients see the room's recording state through RSP's ``recording`` field (``room.isRecording``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atrium_media.forwarding import PacketRecorder, UnknownTrack
from atrium_media.ports import ControlPlane
from atrium_media.recording import (
    RecordingResult,
    StorageError,
    TrackRecorder,
    storage_for,
)
from atrium_media.signaling.room_host import RoomHost
from atrium_shared.errors import AtriumError
from atrium_shared.recording_api import RecordingCommand, RecordingReport, TrackToRecord

log = logging.getLogger("atrium.media.recordings")


@dataclass
class ActiveRecording:
    order: TrackToRecord
    recorder: TrackRecorder
    started_at: float  # Unix time
    room_epoch: float  # the room's creation, Unix time: what offsets count from


@dataclass
class RoomRecordings:
    account_sid: str
    version: int = -1
    active: dict[str, ActiveRecording] = field(default_factory=dict)  # by recording SID
    revision: int = 1  # of the RSP `recording` field


class RecordingManager:
    def __init__(
        self,
        worker_id: str,
        control: ControlPlane,
        recordings_dir: Path | str,
        rooms: Callable[[str], RoomHost | None],
        *,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.control = control
        self.recordings_dir = Path(recordings_dir)
        self.s3_endpoint_url = s3_endpoint_url
        self._rooms = rooms
        self._by_room: dict[str, RoomRecordings] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # Commands ---------------------------------------------------------------------------------
    async def apply(self, command: RecordingCommand) -> None:
        host = self._rooms(command.room_sid)
        if host is None:
            return
        state = self._by_room.setdefault(command.room_sid, RoomRecordings(command.account_sid))
        if command.version < state.version:
            return
        state.version = command.version
        was_recording = bool(state.active)
        wanted = {order.recording_sid: order for order in command.start}
        for sid in [*command.stop, *(s for s in state.active if s not in wanted)]:
            active = state.active.pop(sid, None)
            if active is not None:
                host.router.stop_recording(active.order.track_sid)
                self._spawn(self._complete(state, command.room_sid, active))
        for sid, order in wanted.items():
            if sid in state.active or sid in command.stop:
                continue
            started = self._start(host, order)
            if started is not None:
                state.active[sid] = started
                await self._report(
                    RecordingReport(
                        account_sid=command.account_sid,
                        room_sid=command.room_sid,
                        recording_sid=sid,
                        worker_id=self.worker_id,
                        outcome="started",
                        codec=started.recorder.codec,
                        offset_ms=max(
                            0,
                            round((started.started_at - host.room.date_created.timestamp()) * 1000),
                        ),
                    )
                )
        if bool(state.active) != was_recording:
            self._announce(host, state)

    def _start(self, host: RoomHost, order: TrackToRecord) -> ActiveRecording | None:
        try:
            forwarder = host.router.published_track(order.track_sid)
        except UnknownTrack:
            return None  # not here (yet): the next command tries again
        codec = forwarder.codec
        if codec is None:
            return None
        storage = storage_for(
            order.storage, self.recordings_dir, default_endpoint_url=self.s3_endpoint_url
        )
        path = storage.local_path(order.media_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            recorder = TrackRecorder(path, codec.mimeType, codec.clockRate)
        except ValueError as exc:
            log.warning("cannot record %s: %s", order.track_sid, exc)
            return None
        host.router.record(order.track_sid, recorder)
        return ActiveRecording(order, recorder, time.time(), host.room.date_created.timestamp())

    def track_gone(self, room_sid: str, track_sid: str, recorder: PacketRecorder) -> None:
        """Forwarding dropped a recorded track: finish its recording now."""
        state = self._by_room.get(room_sid)
        host = self._rooms(room_sid)
        if state is None:
            return
        for sid, active in list(state.active.items()):
            if active.recorder is recorder:
                del state.active[sid]
                self._spawn(self._complete(state, room_sid, active))
        if host is not None and not state.active:
            self._announce(host, state)

    # Finishing --------------------------------------------------------------------------------
    async def _complete(
        self, state: RoomRecordings, room_sid: str, active: ActiveRecording
    ) -> None:
        order = active.order
        result: RecordingResult = await asyncio.wrap_future(active.recorder.finish())
        report = RecordingReport(
            account_sid=state.account_sid,
            room_sid=room_sid,
            recording_sid=order.recording_sid,
            worker_id=self.worker_id,
            outcome="failed",
            codec=active.recorder.codec,
            failed_operation="RecordingComplete",
            reason=result.reason,
        )
        if not result.failed and result.path is not None and result.frames > 0:
            storage = storage_for(
                order.storage, self.recordings_dir, default_endpoint_url=self.s3_endpoint_url
            )
            try:
                stored = await storage.store(order.media_key)
            except (StorageError, OSError) as exc:
                log.warning("storing %s failed: %s", order.recording_sid, exc)
                report = report.model_copy(
                    update={"failed_operation": "RecordingUpload", "reason": str(exc)}
                )
            else:
                report = report.model_copy(
                    update={
                        "outcome": "completed",
                        "failed_operation": None,
                        "duration_seconds": result.duration,
                        # The first sample's real time (video starts at a keyframe, a little
                        # after recording started), so a room's tracks align.
                        "offset_ms": result.offset_ms(active.room_epoch),
                        "size": stored.size,
                        "media_external_location": stored.external_location,
                    }
                )
        elif not result.failed:
            report = report.model_copy(update={"reason": "no media was recorded"})
        await self._report(report)

    async def _report(self, report: RecordingReport) -> None:
        try:
            await self.control.report_recording(report)
        except AtriumError as exc:
            log.warning(
                "recording report %s for %s refused: %s",
                report.outcome,
                report.recording_sid,
                exc.message,
            )

    # Clients ----------------------------------------------------------------------------------
    def recording_state(self, room_sid: str) -> dict[str, object] | None:
        """The RSP ``recording`` field of ``room_sid`` (None before anything was recorded)."""
        state = self._by_room.get(room_sid)
        if state is None:
            return None
        return {"revision": state.revision, "is_recording": bool(state.active)}

    def _announce(self, host: RoomHost, state: RoomRecordings) -> None:
        state.revision += 1
        body = {"type": "update", "recording": self.recording_state(host.room.sid)}
        for session in list(host.sessions.values()):
            if not session.closed:
                self._spawn(session.send(body))

    # Lifecycle --------------------------------------------------------------------------------
    async def close_room(self, room_sid: str) -> None:
        """The room is leaving this worker: finish what it was recording."""
        state = self._by_room.pop(room_sid, None)
        if state is None:
            return
        await asyncio.gather(*(self._complete(state, room_sid, a) for a in state.active.values()))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for room_sid in list(self._by_room):
            await self.close_room(room_sid)
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
