"""Liveness and readiness over plain HTTP for processes that have no web server of their own.

``GET /livez`` answers 200 while the event loop runs. ``GET /readyz`` answers 200 only while the
given check passes (NATS and Redis answer, not draining), 503 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("atrium.health")

ReadyCheck = Callable[[], Awaitable[bool]]


class HealthServer:
    def __init__(self, host: str, port: int, ready: ReadyCheck) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path.startswith("/livez"):
                status, body = 200, "ok"
            elif path.startswith("/readyz"):
                try:
                    ok = await asyncio.wait_for(self._ready(), timeout=2)
                except Exception:
                    ok = False
                status, body = (200, "ready") if ok else (503, "not ready")
            else:
                status, body = 404, "not found"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
