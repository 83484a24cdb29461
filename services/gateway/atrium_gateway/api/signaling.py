"""The twilio-video.js signaling socket: TCMP v2 framing here, the RSP session on a media worker.

TCMP (hello/welcome, msg, heartbeat, bye) is handled entirely in the gateway. RSP bodies are
relayed over NATS to the worker hosting the room, after the gateway has checked the Access Token
and asked the room service which room and worker a ``connect`` goes to. What the worker sends back
arrives on this replica's subject (:func:`atrium_gateway.adapters.nats.subscribe_worker_frames`
hands it to :meth:`SignalingHub.deliver`) and is written to the socket.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from opentelemetry import trace

from atrium_gateway.ports import AccountsPort, RoomsPort, SessionsPort, SignalingPublisher
from atrium_gateway.tokens import TokenError, VideoClaims, verify_video_token
from atrium_gateway.wire import json_depth
from atrium_shared import subjects
from atrium_shared.errors import (
    ROOM_NAME_INVALID,
    SIGNALING_ERROR,
    SIGNALING_INVALID_MESSAGE,
    TOKEN_INVALID,
    TOKEN_INVALID_GRANTS,
    AtriumError,
)
from atrium_shared.infra import UNREACHABLE, unavailable
from atrium_shared.room_api import JoinRoomRequest
from atrium_shared.settings import Settings
from atrium_shared.signaling_api import (
    Caller,
    ClientFrame,
    WorkerFrame,
    session_id_of,
    worker_of_session,
)
from atrium_shared.turn import turn_servers

log = logging.getLogger("atrium.gateway.signaling")
tracer = trace.get_tracer("atrium.gateway.signaling")

MIN_TIMEOUT_MS = 1000
MAX_TIMEOUT_MS = 30000
NORMAL_CLOSE = 1000
HEARTBEATS_MISSED = 3001
HELLO_FAILED = 3002
# RFC 6455 close codes for frames no TCMP client sends: binary ones, absurdly nested ones.
UNSUPPORTED_DATA = 1003
POLICY_VIOLATION = 1008
# What a connection sent its worker lately is kept this long: when the worker dies, the frames it
# may not have handled (an ICE restart offer, trickled candidates) are sent again to the worker
# that adopted the session. Revisions make them harmless if they were handled.
REPLAY_SECONDS = 10.0
# RSP bodies nest 5 or 6 levels (connect > participant > tracks > track > ...); deeper frames
# are refused before they reach a worker's recursive (de)serializers.
MAX_FRAME_DEPTH = 32


def negotiate_timeout(requested: Any) -> int:
    """Heartbeat interval in ms: the client's request, kept within sane bounds."""
    value = requested if isinstance(requested, int) else 5000
    return max(MIN_TIMEOUT_MS, min(MAX_TIMEOUT_MS, value))


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message}


@dataclass
class Connection:
    """One client socket on this gateway replica."""

    connection_id: str
    socket: WebSocket
    outbox: asyncio.Queue[WorkerFrame] = field(default_factory=asyncio.Queue)
    worker_id: str | None = None
    timeout_ms: int = 5000
    last_heard: float = field(default_factory=time.monotonic)
    # (when, frame) of the RSP bodies forwarded to the worker in the last REPLAY_SECONDS.
    recent: collections.deque[tuple[float, ClientFrame]] = field(default_factory=collections.deque)


class SignalingHub:
    """The connections of this gateway replica and the relay to and from media workers."""

    def __init__(
        self,
        rooms: RoomsPort,
        accounts: AccountsPort,
        publisher: SignalingPublisher,
        settings: Settings,
        sessions: SessionsPort,
    ) -> None:
        self.rooms = rooms
        self.sessions = sessions
        self.accounts = accounts
        self.publisher = publisher
        self.settings = settings
        self.gateway_id = uuid.uuid4().hex[:12]
        self.connections: dict[str, Connection] = {}
        self._replays: set[asyncio.Future[None]] = set()

    def deliver(self, frame: WorkerFrame) -> None:
        """What a worker sent one of this replica's connections. A frame from another worker
        than the connection's means that worker adopted the session (its own died): the
        client's frames go there from now on, starting with the recent ones."""
        connection = self.connections.get(frame.connection_id)
        if connection is None:
            return
        moved_to = frame.worker_id
        if moved_to is not None and connection.worker_id not in (None, moved_to):
            log.info(
                "connection %s follows its session from worker %s to %s",
                connection.connection_id,
                connection.worker_id,
                moved_to,
            )
            connection.worker_id = moved_to
            replay = [f for _, f in self._recent(connection)]
            if replay:
                task = asyncio.ensure_future(self._replay(connection, replay))
                self._replays.add(task)
                task.add_done_callback(self._replays.discard)
        connection.outbox.put_nowait(frame)

    def _recent(self, connection: Connection) -> collections.deque[tuple[float, ClientFrame]]:
        horizon = time.monotonic() - REPLAY_SECONDS
        while connection.recent and connection.recent[0][0] < horizon:
            connection.recent.popleft()
        return connection.recent

    async def _replay(self, connection: Connection, frames: list[ClientFrame]) -> None:
        for frame in frames:
            await self._forward(connection, frame, remember=False)

    # The socket -------------------------------------------------------------------------------
    async def serve(self, socket: WebSocket) -> None:
        await socket.accept()
        connection = Connection(uuid.uuid4().hex, socket)
        self.connections[connection.connection_id] = connection
        writer = asyncio.create_task(self._write_worker_frames(connection))
        heartbeat: asyncio.Task[None] | None = None
        try:
            while True:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                connection.last_heard = time.monotonic()
                raw = message.get("text")
                if raw is None:  # TCMP is text only
                    await self._refuse(connection, "binary frame", UNSUPPORTED_DATA)
                    break
                try:
                    frame = json.loads(raw)
                except RecursionError:
                    await self._refuse(connection, "nested too deeply", POLICY_VIOLATION)
                    break
                except ValueError:
                    await self._send(connection, {"type": "bad", "reason": "not JSON"})
                    continue
                if json_depth(frame) > MAX_FRAME_DEPTH:
                    await self._refuse(connection, "nested too deeply", POLICY_VIOLATION)
                    break
                kind = frame.get("type") if isinstance(frame, dict) else None
                if kind == "hello":
                    connection.timeout_ms = negotiate_timeout(frame.get("timeout"))
                    await self._send(
                        connection,
                        {"type": "welcome", "negotiatedTimeout": connection.timeout_ms},
                    )
                    if heartbeat is None:
                        heartbeat = asyncio.create_task(self._heartbeat(connection))
                    if isinstance(frame.get("body"), dict):
                        await self._handle_body(connection, frame["body"])
                elif kind == "msg" and isinstance(frame.get("body"), dict):
                    await self._handle_body(connection, frame["body"])
                elif kind == "heartbeat":
                    pass
                elif kind == "bye":
                    await socket.close(NORMAL_CLOSE)
                    break
                else:
                    await self._send(connection, {"type": "bad", "reason": "unknown frame"})
        except WebSocketDisconnect:
            pass
        finally:
            for task in (writer, heartbeat):
                if task is not None:
                    task.cancel()
            self.connections.pop(connection.connection_id, None)
            await self._forward(
                connection,
                ClientFrame(
                    connection_id=connection.connection_id,
                    reply_subject=subjects.gateway_subject(
                        self.gateway_id, connection.connection_id
                    ),
                    kind="socket-closed",
                ),
            )

    async def _refuse(self, connection: Connection, reason: str, close_code: int) -> None:
        """A frame no TCMP client sends: ``bad``, then a close frame with ``close_code``."""
        await self._send(connection, {"type": "bad", "reason": reason})
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await connection.socket.close(close_code)

    async def _heartbeat(self, connection: Connection) -> None:
        interval = connection.timeout_ms / 1000 / 2
        while True:
            await asyncio.sleep(interval)
            silent_for = time.monotonic() - connection.last_heard
            if silent_for > 3 * connection.timeout_ms / 1000:
                with contextlib.suppress(RuntimeError):
                    await connection.socket.close(HEARTBEATS_MISSED)
                return
            await self._send(connection, {"type": "heartbeat"})

    async def _write_worker_frames(self, connection: Connection) -> None:
        while True:
            frame = await connection.outbox.get()
            for body in frame.bodies:
                await self._send(connection, {"type": "msg", "body": body})
            if frame.close_code is not None:
                with contextlib.suppress(RuntimeError):
                    await connection.socket.close(frame.close_code)
                return

    async def _send(self, connection: Connection, frame: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await connection.socket.send_text(json.dumps(frame))

    # RSP bodies -------------------------------------------------------------------------------
    async def _handle_body(self, connection: Connection, body: dict[str, Any]) -> None:
        try:
            await self._dispatch_body(connection, body)
        except UNREACHABLE as exc:
            # Redis (the token's key and account) or NATS is down: Twilio's error in an RSP
            # body, the socket stays open and the client may try again.
            log.warning(
                "signaling %s: %s unreachable: %s", body.get("type"), type(exc).__name__, exc
            )
            error = unavailable(exc)
            await self._reply_error(connection, error.code, error.message)

    async def _dispatch_body(self, connection: Connection, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if kind == "ice":
            await self._answer_ice(connection, body)
            return
        if kind in ("connect", "sync"):
            if connection.worker_id is not None:
                # One session per socket (twilio-video.js opens a new one to sync): a second
                # connect or sync here would re-route this socket's frames, its close included,
                # away from the worker holding the first session, which would then never end.
                await self._reply_error(connection, SIGNALING_INVALID_MESSAGE, "Already in session")
                return
            with tracer.start_as_current_span(f"signaling {kind}"):
                await self._start_session(connection, body)
            return
        if connection.worker_id is None:
            await self._reply_error(connection, SIGNALING_INVALID_MESSAGE, "No session")
            return
        await self._forward(connection, self._frame(connection, body))

    async def _answer_ice(self, connection: Connection, body: dict[str, Any]) -> None:
        """``ice`` -> ``iced``: ICE servers only for a valid token (TURN credentials are not for
        whoever opens the socket), with a TURN credential of this client's own."""
        try:
            claims = await self._verify(body.get("token"))
        except TokenError as exc:
            await self._reply_error(connection, exc.code, exc.message)
            return
        settings = self.settings
        servers = settings.ice_servers()
        if settings.turn_urls and settings.turn_secret is not None:
            servers += turn_servers(
                [url.strip() for url in settings.turn_urls.split(",") if url.strip()],
                settings.turn_secret.get_secret_value(),
                claims.account_sid,
                time.time(),
                settings.turn_credential_ttl_seconds,
            )
        await self._send(
            connection, {"type": "msg", "body": {"type": "iced", "ice_servers": servers}}
        )

    async def _start_session(self, connection: Connection, body: dict[str, Any]) -> None:
        try:
            claims = await self._verify(body.get("token"))
            room_name = self._room_name(body, claims)
            if body.get("type") == "sync":
                session = body.get("session")
                worker_id = worker_of_session(session) if isinstance(session, str) else None
                if worker_id is None or not isinstance(session, str):
                    raise AtriumError(SIGNALING_INVALID_MESSAGE, "Unknown session", 400)
                # A session adopted by another worker (its own died) is there now.
                worker_id = await self.sessions.worker_of(session_id_of(session)) or worker_id
                joined = None
            else:
                joined = await self.rooms.join(
                    JoinRoomRequest(account_sid=claims.account_sid, room=room_name)
                )
                worker_id = joined.worker_id
        except TokenError as exc:
            await self._reply_error(connection, exc.code, exc.message)
            return
        except AtriumError as exc:
            await self._reply_error(connection, exc.code, exc.message)
            return
        connection.worker_id = worker_id
        frame = self._frame(connection, body)
        frame.caller = Caller(
            account_sid=claims.account_sid,
            identity=claims.identity,
            api_key_sid=claims.api_key_sid,
            token_expires_at=claims.expires_at,
        )
        frame.room = joined.room if joined is not None else None
        await self._forward(connection, frame)

    async def _verify(self, token: Any) -> VideoClaims:
        if not isinstance(token, str):
            raise TokenError(TOKEN_INVALID)
        return await verify_video_token(
            token, self.accounts.get_api_key, lookup_account=self.accounts.get_account
        )

    @staticmethod
    def _room_name(body: dict[str, Any], claims: VideoClaims) -> str:
        requested = body.get("name")
        if requested is not None and not isinstance(requested, str):
            raise AtriumError(ROOM_NAME_INVALID, "Room name is invalid", 400)
        name = requested or claims.room
        if claims.room is not None and name != claims.room:
            # The token only grants its own room.
            raise TokenError(TOKEN_INVALID_GRANTS)
        if not name:
            raise AtriumError(ROOM_NAME_INVALID, "Room name is invalid", 400)
        return name

    def _frame(self, connection: Connection, body: dict[str, Any]) -> ClientFrame:
        return ClientFrame(
            connection_id=connection.connection_id,
            reply_subject=subjects.gateway_subject(self.gateway_id, connection.connection_id),
            body=body,
        )

    async def _forward(
        self, connection: Connection, frame: ClientFrame, *, remember: bool = True
    ) -> None:
        if connection.worker_id is None:
            return
        if remember and frame.kind == "rsp" and frame.body.get("type") not in ("connect", "sync"):
            self._recent(connection).append((time.monotonic(), frame))
        try:
            await self.publisher.to_worker(connection.worker_id, frame)
        except Exception:
            log.exception("could not reach media worker %s", connection.worker_id)
            await self._reply_error(connection, SIGNALING_ERROR, "Signaling connection error")

    async def _reply_error(self, connection: Connection, code: int, message: str) -> None:
        await self._send(connection, {"type": "msg", "body": error_body(code, message)})


router = APIRouter()


@router.websocket("/signaling")
async def signaling(socket: WebSocket) -> None:
    hub: SignalingHub = socket.app.state.signaling
    await hub.serve(socket)
