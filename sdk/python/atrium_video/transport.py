"""TCMP v2, twilio-video.js's "TwilioConnection": JSON frames over a plain WebSocket.

The client sends ``hello`` (carrying the first RSP body), ``msg``, ``heartbeat`` and ``bye``; the
server answers ``welcome{negotiatedTimeout}`` and then sends ``msg``/``heartbeat``. Everything the
server sends after ``welcome`` is handed to the owner as ``("msg", body)``; the end of the socket
as ``("closed", code)``, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from atrium_video.errors import SERVER_BUSY, SIGNALING_CONNECTION_ERROR, TwilioError

log = logging.getLogger("atrium_video.signaling")

NORMAL_CLOSE = 1000
HEARTBEATS_MISSED = 3001
WELCOME_TIMEOUT_SECONDS = 5.0
HELLO_ATTEMPTS = 3
OPEN_TIMEOUT_SECONDS = 15.0

Event = tuple[str, Any]


class TcmpTransport:
    """One signaling socket. ``open`` performs the hello/welcome handshake."""

    def __init__(self, url: str, inbox: asyncio.Queue[Event], timeout_ms: int = 5000) -> None:
        self.url = url
        self.inbox = inbox
        self.requested_timeout_ms = timeout_ms
        self.negotiated_timeout_ms = timeout_ms
        self._socket: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_sent = time.monotonic()
        self._last_heard = time.monotonic()
        self._closing = False
        self._closed_reported = False

    async def open(self, hello_body: dict[str, Any]) -> None:
        """Connect and handshake; raises TwilioError 53000 (or 53006 when the server is busy)."""
        try:
            self._socket = await asyncio.wait_for(
                websockets.connect(self.url, max_size=None, open_timeout=OPEN_TIMEOUT_SECONDS),
                OPEN_TIMEOUT_SECONDS,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise TwilioError(
                SIGNALING_CONNECTION_ERROR, f"Signaling connection error: {exc}"
            ) from exc
        socket = self._socket
        hello = {
            "type": "hello",
            "version": 2,
            "id": str(uuid.uuid4()),
            "timeout": self.requested_timeout_ms,
            "body": hello_body,
        }
        try:
            for _ in range(HELLO_ATTEMPTS):
                await self._send_raw(hello)
                try:
                    welcome = await asyncio.wait_for(
                        self._await_welcome(socket), WELCOME_TIMEOUT_SECONDS
                    )
                except TimeoutError:
                    continue
                self.negotiated_timeout_ms = int(
                    welcome.get("negotiatedTimeout") or self.requested_timeout_ms
                )
                break
            else:
                raise TwilioError(SIGNALING_CONNECTION_ERROR, "No welcome from the server")
        except (ConnectionClosed, OSError) as exc:
            await self._abort()
            raise TwilioError(SIGNALING_CONNECTION_ERROR, "Signaling connection error") from exc
        except TwilioError:
            await self._abort()
            raise
        self._last_heard = time.monotonic()
        self._tasks = [
            asyncio.ensure_future(self._read(socket)),
            asyncio.ensure_future(self._heartbeat(socket)),
        ]

    async def _await_welcome(self, socket: ClientConnection) -> dict[str, Any]:
        while True:
            frame = _parse(await socket.recv())
            kind = frame.get("type") if frame else None
            if kind == "welcome":
                return frame  # type: ignore[return-value]
            if kind == "busy":
                retry = frame.get("retryAfter", -1) if frame else -1
                if not isinstance(retry, int | float) or retry < 0:
                    raise TwilioError(SERVER_BUSY)
                raise TwilioError(SERVER_BUSY, f"Server busy, retry after {retry} ms")
            if kind == "bad":
                raise TwilioError(
                    SIGNALING_CONNECTION_ERROR,
                    f"Server refused hello: {frame.get('reason') if frame else ''}",
                )
            # anything before welcome is dropped, as twilio-video.js does

    async def _read(self, socket: ClientConnection) -> None:
        code = 1006
        try:
            async for raw in socket:
                self._last_heard = time.monotonic()
                frame = _parse(raw)
                if frame is None:
                    continue
                kind = frame.get("type")
                if kind == "msg" and isinstance(frame.get("body"), dict):
                    log.debug("<- %s", frame["body"].get("type"))
                    self.inbox.put_nowait(("msg", frame["body"]))
                elif kind == "bad":
                    log.warning("server reported a bad frame: %s", frame.get("reason"))
            code = socket.close_code or 1006
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
        except asyncio.CancelledError:
            return
        finally:
            self._report_closed(code)

    def _report_closed(self, code: int) -> None:
        if not self._closed_reported:
            self._closed_reported = True
            if not self._closing:
                self.inbox.put_nowait(("closed", code))

    async def _heartbeat(self, socket: ClientConnection) -> None:
        interval = self.negotiated_timeout_ms / 1000
        try:
            while True:
                await asyncio.sleep(min(0.5, interval / 4))
                now = time.monotonic()
                if now - self._last_heard > 3 * interval:
                    log.warning("missed 3 heartbeats; closing the signaling socket")
                    await socket.close(HEARTBEATS_MISSED, "Missed 3 heartbeat messages")
                    self._report_closed(HEARTBEATS_MISSED)
                    return
                if now - self._last_sent >= interval - 0.2:
                    await self._send_raw({"type": "heartbeat"})
        except (ConnectionClosed, asyncio.CancelledError):
            return

    async def _send_raw(self, frame: dict[str, Any]) -> None:
        if self._socket is None:
            return
        self._last_sent = time.monotonic()
        await self._socket.send(json.dumps(frame))

    async def send(self, body: dict[str, Any]) -> bool:
        """Send an RSP body as ``msg``; False when the socket is gone."""
        try:
            log.debug("-> %s", body.get("type"))
            await self._send_raw({"type": "msg", "body": body})
            return True
        except (ConnectionClosed, OSError):
            return False

    async def close(self, code: int = NORMAL_CLOSE) -> None:
        """Send ``bye`` and close with ``code`` (1000: a clean, local close)."""
        self._closing = True
        if self._socket is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                if code == NORMAL_CLOSE:
                    await self._send_raw({"type": "bye"})
                await self._socket.close(code)
        await self._abort()

    def drop(self) -> None:
        """Testing aid: abort the TCP connection as a network failure would."""
        if self._socket is not None:
            transport = getattr(self._socket, "transport", None)
            if transport is not None:
                transport.abort()

    async def _abort(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._socket.close(), 2)


def _parse(raw: str | bytes) -> dict[str, Any] | None:
    try:
        frame = json.loads(raw)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None
