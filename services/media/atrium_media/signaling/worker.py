"""The media worker: hosts rooms, runs their participants' RSP sessions, reports its load.

Frames of one client connection are handled in arrival order (a lock per connection, which
asyncio hands out first come, first served); different connections proceed concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from faststream.nats import NatsBroker
from opentelemetry import trace

from atrium_media.forwarding import PacketRecorder
from atrium_media.ports import ControlPlane
from atrium_media.signaling.frames import body_problem
from atrium_media.signaling.handover import SessionRecord, SessionStore, restore, snapshot
from atrium_media.signaling.recordings import RecordingManager
from atrium_media.signaling.room_host import RoomHost
from atrium_media.signaling.session import SESSION_TIMEOUT_SECONDS, ParticipantSession
from atrium_shared.errors import (
    DUPLICATE_IDENTITY,
    ROOM_CONNECT_FAILED,
    SESSION_NOT_FOUND,
    SIGNALING_INVALID_MESSAGE,
    AtriumError,
)
from atrium_shared.events import ParticipantDisconnected
from atrium_shared.models import RoomInfo
from atrium_shared.signaling_api import Caller, ClientFrame, WorkerFrame, session_id_of
from atrium_shared.track_api import SubscriptionsChanged
from atrium_shared.workers import HEARTBEAT_SECONDS, WorkerInfo, WorkerRegistry

log = logging.getLogger("atrium.media.worker")
tracer = trace.get_tracer("atrium.media")

NORMAL_CLOSE = 1000
INVALID_MESSAGE = "Client sent an invalid message"


def disconnect_bodies(reason: str) -> list[dict[str, Any]]:
    """What a client is told when the control plane removed it."""
    if reason == "duplicate-identity":
        return [
            {
                "type": "error",
                "code": DUPLICATE_IDENTITY,
                "message": "Participant disconnected because of duplicate identity",
            }
        ]
    if reason == "room-ended":
        return [{"type": "disconnected", "status": "completed"}]
    return [{"type": "disconnected"}]


class MediaWorker:
    def __init__(
        self,
        worker_id: str,
        broker: NatsBroker,
        control: ControlPlane,
        registry: WorkerRegistry,
        capacity: int = 200,
        announced_address: str | None = None,
        recordings_dir: str = ".atrium/data/recordings",
        recordings_s3_endpoint_url: str | None = None,
        store: SessionStore | None = None,
    ) -> None:
        self.announced_address = announced_address
        self.worker_id = worker_id
        self.broker = broker
        self.control = control
        self.registry = registry
        self.capacity = capacity
        self.rooms: dict[str, RoomHost] = {}
        self.recordings = RecordingManager(
            worker_id,
            control,
            recordings_dir,
            self.rooms.get,
            s3_endpoint_url=recordings_s3_endpoint_url,
        )
        self.sessions: dict[str, ParticipantSession] = {}  # by session id
        self.by_connection: dict[str, ParticipantSession] = {}
        self.by_participant: dict[str, ParticipantSession] = {}
        self.draining = False
        # Session records for a handover (None: this worker's sessions die with it).
        self.store = store
        # Records still to write, by participant SID: (room, session id, session or None to
        # delete it).
        self._unsaved: dict[str, tuple[str, str, ParticipantSession | None]] = {}
        self._saver: asyncio.Task[None] | None = None
        self.handing_over = False
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Outbound to the gateway --------------------------------------------------------------------
    async def send_frame(
        self,
        connection_id: str,
        reply_subject: str,
        bodies: list[dict[str, Any]],
        close_code: int | None,
    ) -> None:
        if self.handing_over:
            # The sessions are another worker's now: a frame from here would turn the client's
            # connection back to this worker (the gateway follows the sender).
            return
        frame = WorkerFrame(
            connection_id=connection_id,
            worker_id=self.worker_id,
            bodies=bodies,
            close_code=close_code,
        )
        await self.broker.publish(frame, reply_subject)

    # Inbound from the gateway -------------------------------------------------------------------
    def accept(self, frame: ClientFrame) -> None:
        """Queue a frame behind the earlier frames of its connection (the handler returns now)."""
        if self.handing_over:
            # What it changed could not be recorded any more: the gateway sends it again to the
            # worker that adopts the session.
            return
        lock = self._locks.setdefault(frame.connection_id, asyncio.Lock())

        async def run() -> None:
            async with lock:
                try:
                    await self.handle(frame)
                except Exception:
                    log.exception("frame of %s failed", frame.connection_id)
                session = self.by_connection.get(frame.connection_id)
                if session is not None:
                    self._record(session)
            if frame.kind == "socket-closed" and not lock.locked():
                self._locks.pop(frame.connection_id, None)

        self.spawn(run())

    async def handle(self, frame: ClientFrame) -> None:
        if frame.kind == "socket-closed":
            session = self.by_connection.pop(frame.connection_id, None)
            if session is not None:
                self._detach(session)
                self._record(session)
            return
        problem = body_problem(frame.body)
        if problem is not None:  # answered, and nothing else happens: no admission, no session
            log.info("frame of %s refused: %s", frame.connection_id, problem)
            await self._reply_error(frame, SIGNALING_INVALID_MESSAGE, INVALID_MESSAGE)
            return
        kind = frame.body.get("type")
        if kind == "connect":
            await self._connect(frame)
        elif kind == "sync":
            await self._sync(frame)
        else:
            session = self.by_connection.get(frame.connection_id)
            if session is None or session.connection_id != frame.connection_id:
                return  # only the session's own connection updates or ends it
            host = self.rooms.get(session.participant.room_sid)
            if host is None:
                return
            if kind == "update":
                try:
                    await host.update(session, frame.body)
                except AtriumError as exc:  # e.g. 53403, an offer aiortc cannot apply
                    await self._reply_error(frame, exc.code, exc.message)
            elif kind == "disconnect":
                await host.leave(session, "left", tell_service=True)
                self._forget(session)

    async def _reply_error(self, frame: ClientFrame, code: int, message: str) -> None:
        body = {"type": "error", "code": code, "message": message}
        await self.send_frame(frame.connection_id, frame.reply_subject, [body], None)

    async def _connect(self, frame: ClientFrame) -> None:
        room, caller = frame.room, frame.caller
        if room is None or caller is None:
            return
        with tracer.start_as_current_span("worker connect"):
            try:
                admitted = await self.control.admit(
                    caller.account_sid,
                    room.sid,
                    caller.identity,
                    room.max_participants,
                    room.max_participant_duration,
                )
            except AtriumError as exc:
                await self.send_frame(
                    frame.connection_id,
                    frame.reply_subject,
                    [{"type": "error", "code": exc.code, "message": exc.message}],
                    None,
                )
                return
            host = self._host(room)
            session = ParticipantSession(
                session_id=ParticipantSession.new_id(),
                worker_id=self.worker_id,
                participant=admitted.participant,
                connection_id=frame.connection_id,
                reply_subject=frame.reply_subject,
                send_frame=self.send_frame,
                announced_address=self.announced_address,
            )
            self.sessions[session.session_id] = session
            self.by_connection[frame.connection_id] = session
            self.by_participant[admitted.participant.sid] = session
            try:
                await host.connect(session, frame.body)
            except Exception as exc:
                await self._connect_failed(frame, host, session, exc)

    def _host(self, room: RoomInfo) -> RoomHost:
        host = self.rooms.get(room.sid)
        if host is None:
            host = self.rooms[room.sid] = RoomHost(room, self.control)
            host.on_state_changed = lambda s: self.spawn(self._report_state(s))
            host.on_session_changed = self._record
            self._follow_recordings(host)
        return host

    async def _connect_failed(
        self, frame: ClientFrame, host: RoomHost, session: ParticipantSession, exc: Exception
    ) -> None:
        """The admitted participant could not be connected (an offer aiortc cannot apply, for
        one): the client is told, and the seat is given back (the participant disconnects)."""
        if isinstance(exc, AtriumError):
            code, message = exc.code, exc.message
        else:
            code, message = ROOM_CONNECT_FAILED, "Unable to connect to Room"
        log.warning(
            "connect of %s failed (%s): %r", session.participant.sid, code, exc.__cause__ or exc
        )
        if session.connection_id == frame.connection_id:
            await self._reply_error(frame, code, message)
        if host.sessions.get(session.participant.sid) is session:
            await self._leave(host, session, "connection-lost", tell_service=True)
        else:  # it failed before the host took it
            with contextlib.suppress(AtriumError):
                await self.control.leave(session.participant, "connection-lost")
            await session.close()
            self._forget(session)

    async def _sync(self, frame: ClientFrame) -> None:
        session_id = session_id_of(str(frame.body.get("session", "")))
        session = self.sessions.get(session_id)
        if session is None or session.closed or not self._owns(frame.caller, session):
            # Someone else's session is answered as no session at all: nothing is resumed,
            # and nothing tells the caller that the id exists.
            await self.send_frame(
                frame.connection_id,
                frame.reply_subject,
                [
                    {
                        "type": "error",
                        "code": SESSION_NOT_FOUND,
                        "message": "Signaling connection disconnected",
                    }
                ],
                None,
            )
            return
        if session.detached_timer is not None:
            session.detached_timer.cancel()
            session.detached_timer = None
        if session.connection_id is not None:
            self.by_connection.pop(session.connection_id, None)
        session.connection_id = frame.connection_id
        session.reply_subject = frame.reply_subject
        self.by_connection[frame.connection_id] = session
        host = self.rooms[session.participant.room_sid]
        session.tell_about([o.participant.sid for o in host.others(session)], time.monotonic())
        host.set_signaling_lost(session, False)
        await session.send(
            {
                "type": "synced",
                "session": session.session,
                "participant": {
                    "sid": session.participant.sid,
                    "identity": session.participant.identity,
                },
                "participants": [o.remote_state() for o in host.others(session)],
                "peer_connections": [
                    session.restart_request()
                    if session.adopted
                    else session.pending_offer() or {"id": session.pc_id}
                ],
                "published": session.published_body(),
                "subscribed": session.subscribed_body(),
            }
        )

    @staticmethod
    def _owns(caller: Caller | None, session: ParticipantSession) -> bool:
        """Whether the verified caller is the session's participant: same account, same
        identity (another token of theirs, e.g. a fresh one, resumes it)."""
        return (
            caller is not None
            and caller.account_sid == session.participant.account_sid
            and caller.identity == session.participant.identity
        )

    def _detach(self, session: ParticipantSession) -> None:
        """The socket dropped without `disconnect`: await a `sync` until the session times out."""
        session.connection_id = None
        session.reply_subject = None
        if session.detached_timer is not None:
            session.detached_timer.cancel()
        loop = asyncio.get_running_loop()

        def expire() -> None:
            host = self.rooms.get(session.participant.room_sid)
            if host is not None and not session.closed:
                self.spawn(self._leave(host, session, "connection-lost", tell_service=True))

        session.detached_timer = loop.call_later(SESSION_TIMEOUT_SECONDS, expire)
        host = self.rooms.get(session.participant.room_sid)
        if host is not None:
            host.set_signaling_lost(session, True)

    async def _report_state(self, session: ParticipantSession) -> None:
        """Tell the participant service (REST ``status``) whether it is reconnecting."""
        try:
            await self.control.set_connection_state(session.participant, session.state)
        except AtriumError as exc:
            log.debug("state report for %s skipped: %s", session.participant.sid, exc.message)

    async def _leave(
        self, host: RoomHost, session: ParticipantSession, reason: str, *, tell_service: bool
    ) -> None:
        await host.leave(session, reason, tell_service=tell_service)
        self._forget(session)

    def _forget(self, session: ParticipantSession) -> None:
        self._record(session, gone=True)
        self.sessions.pop(session.session_id, None)
        self.by_participant.pop(session.participant.sid, None)
        if session.connection_id is not None:
            self.by_connection.pop(session.connection_id, None)
        host = self.rooms.get(session.participant.room_sid)
        if host is not None and not host.sessions:
            self.rooms.pop(host.room.sid, None)
            self.spawn(self._close_room(host))

    # Control-plane events ---------------------------------------------------------------------
    async def participant_disconnected(self, event: ParticipantDisconnected) -> None:
        """Kicks, duplicate identities, room completion, duration limits: tell the client."""
        session = self.by_participant.get(event.participant.sid)
        if session is None or event.reason in ("left", "connection-lost"):
            return
        host = self.rooms.get(session.participant.room_sid)
        await session.send(*disconnect_bodies(event.reason), close_code=NORMAL_CLOSE)
        if host is not None:
            await self._leave(host, session, event.reason, tell_service=False)

    def subscriptions_changed(self, change: SubscriptionsChanged) -> None:
        """A participant's SubscribeRules changed: if it is here, follow the new decision."""
        session = self.by_participant.get(change.subscriber_sid)
        if session is None or session.closed or session.participant.room_sid != change.room_sid:
            return
        host = self.rooms.get(change.room_sid)
        if host is None:
            return
        if host.apply_decision(session, change.rules_version, change.considered, change.desired):
            self.spawn(host.reconcile(session))

    # Handover: session records, adoption, drain -------------------------------------------------
    def _record(self, session: ParticipantSession, *, gone: bool = False) -> None:
        """Keep the session's record current (or delete it): one writer, newest state wins, so
        records never go back in time and a deleted one is not written again."""
        if self.store is None or (self.handing_over and not gone):
            return
        participant = session.participant
        self._unsaved[participant.sid] = (
            participant.room_sid,
            session.session_id,
            None if gone else session,
        )
        if self._saver is None or self._saver.done():
            self._saver = asyncio.create_task(self._save_records())

    async def _save_records(self) -> None:
        assert self.store is not None
        while self._unsaved:
            key, (room_sid, session_id, session) = next(iter(self._unsaved.items()))
            del self._unsaved[key]
            try:
                if session is None:
                    await self.store.delete(room_sid, key, session_id)
                elif not session.closed:
                    await self.store.save(snapshot(session))
            except Exception:
                log.exception("session record of %s not saved", key)

    async def flush_records(self) -> None:
        """Wait until every record is written (before handing the rooms over)."""
        while self._saver is not None and not self._saver.done():
            await asyncio.shield(self._saver)

    async def adopt(self, room: RoomInfo, from_worker: str) -> int:
        """Host ``room``, whose worker ``from_worker`` is gone: resume every session it recorded
        (same participants, same tracks) and ask each client to negotiate again. Idempotent."""
        if self.store is None:
            raise AtriumError(ROOM_CONNECT_FAILED, "This media worker cannot adopt rooms", 503)
        if room.sid in self.rooms:
            return len(self.rooms[room.sid].sessions)
        records = await self.store.room(room.sid)
        host = self._host(room)
        adopted = 0
        for record in records:
            if record.participant.sid in self.by_participant:
                continue
            session = self._restored(record)
            await self.store.claim(
                record.model_copy(update={"worker_id": self.worker_id})
            )  # a `sync` finds it here from now on
            await host.adopt(session, record.extensions)
            self._record(session)
            adopted += 1
        log.info(
            "adopted room %s from %s: %s session(s)",
            room.sid,
            from_worker,
            adopted,
            extra={"fields": {"room_sid": room.sid, "from_worker": from_worker}},
        )
        if not host.sessions:
            self.rooms.pop(room.sid, None)
            self.spawn(self._close_room(host))
        return adopted

    def _restored(self, record: SessionRecord) -> ParticipantSession:
        session = ParticipantSession(
            session_id=record.session_id,
            worker_id=self.worker_id,
            participant=record.participant,
            connection_id=None,
            reply_subject=None,
            send_frame=self.send_frame,
            announced_address=self.announced_address,
        )
        restore(record, session)
        self.sessions[session.session_id] = session
        self.by_participant[session.participant.sid] = session
        if session.connection_id is not None:
            self.by_connection[session.connection_id] = session

        def expire() -> None:
            # The client never offered on the new peer connection (it went down with the old
            # worker, for one): it leaves as a lost connection, its tracks with it.
            host = self.rooms.get(session.participant.room_sid)
            if host is not None and not session.closed and session.adopted:
                self.spawn(self._leave(host, session, "connection-lost", tell_service=True))

        session.detached_timer = asyncio.get_running_loop().call_later(
            SESSION_TIMEOUT_SECONDS, expire
        )
        return session

    async def hand_over(self) -> None:
        """Drain by handover: take no new rooms, write every session's record and stop writing,
        so that once this worker is gone (its registry entry removed) the room service moves its
        rooms to live workers, which resume the sessions as after a crash, without ending calls."""
        for session in list(self.sessions.values()):
            self._record(session)
        await self.flush_records()
        # From here nothing is written: the records are what the adopting worker resumes from.
        # Only then the registry says draining, which tells the room service to move the rooms.
        self.handing_over = True
        self.draining = True
        await self.registry.heartbeat(self.info())

    # Registry -----------------------------------------------------------------------------------
    def info(self) -> WorkerInfo:
        return WorkerInfo(
            worker_id=self.worker_id,
            rooms=len(self.rooms),
            participants=len(self.by_participant),
            capacity=self.capacity,
            draining=self.draining,
        )

    async def run_heartbeat(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.registry.heartbeat(self.info())
            except Exception:
                log.exception("registry heartbeat failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), HEARTBEAT_SECONDS)
        await self.flush_records()  # leaving makes the room service move the rooms at once
        await self.registry.leave(self.worker_id)

    def stop(self) -> None:
        """The process is stopping: whether or not it drained first, its sessions are handed
        over (their newest records are written before the worker leaves the registry, and
        nothing is sent to clients any more), so calls resume on another worker."""
        for session in list(self.sessions.values()):
            self._record(session)
        self.handing_over = True
        self.draining = True
        self._stopping.set()

    def _follow_recordings(self, host: RoomHost) -> None:
        room_sid = host.room.sid

        def state() -> dict[str, object] | None:
            return self.recordings.recording_state(room_sid)

        def gone(track_sid: str, recorder: PacketRecorder) -> None:
            self.recordings.track_gone(room_sid, track_sid, recorder)

        host.recording_state = state
        host.router.on_recording_stopped(gone)

    async def _close_room(self, host: RoomHost) -> None:
        # Recordings first: the router's taps end with the room.
        await self.recordings.close_room(host.room.sid)
        await host.close()

    async def close(self) -> None:
        await self.recordings.close()
        if self.handing_over:
            # Closing the peer connections would tell each client its media ended (DTLS close):
            # they are left to time out while their sessions resume on another worker.
            self.rooms.clear()
            for task in list(self._tasks):
                task.cancel()
            return
        for host in list(self.rooms.values()):
            await host.close()
        self.rooms.clear()
        for task in list(self._tasks):
            task.cancel()
