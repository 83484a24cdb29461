"""Liveness and readiness over plain HTTP for processes that have no web server of their own.

``GET /livez`` answers 200 while the event loop runs. ``GET /readyz`` answers 200 only while the
given check passes (NATS and Redis answer, not draining), 503 otherwise. ``GET /metrics`` is the
Prometheus exposition of the process (see ``atrium_shared.metrics``).

``POST /drain`` (from loopback only: Kubernetes' preStop hook runs inside the pod; a media worker on
host networking must not be drained by anyone who reaches the node) starts draining, as SIGTERM
does, and answers 200 ``drained`` once the drain finished, 202 ``draining`` before.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable

from atrium_shared import metrics

log = logging.getLogger("atrium.health")

ReadyCheck = Callable[[], Awaitable[bool]]
# Every answer names the process that gave it: a supervisor that picked this port for its child
# can tell the child's answer from another process's that took the port first (the child then
# failed to bind and exits, and a 200 from the other process must not count as the child ready).
PID_HEADER = "X-Atrium-Pid"
# Starts the drain if it has not started; True once it finished.
DrainCheck = Callable[[], Awaitable[bool]]

REASONS = {
    200: "OK",
    202: "Accepted",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def _is_loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        return ipaddress.ip_address(str(peer[0])).is_loopback
    except ValueError:
        return False


class HealthServer:
    def __init__(
        self, host: str, port: int, ready: ReadyCheck, drain: DrainCheck | None = None
    ) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._drain = drain
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
            method = parts[0] if parts else "GET"
            path = parts[1] if len(parts) > 1 else "/"
            content_type = "text/plain"
            if path.startswith("/metrics"):
                status, body = 200, metrics.render().decode()
                content_type = metrics.CONTENT_TYPE_LATEST
            elif path.startswith("/drain"):
                if method != "POST":
                    status, body = 405, "POST only"
                elif self._drain is None:
                    status, body = 404, "not found"
                elif not _is_loopback(writer.get_extra_info("peername")):
                    status, body = 403, "loopback only"
                else:
                    done = await self._drain()
                    status, body = (200, "drained") if done else (202, "draining")
            elif path.startswith("/livez"):
                status, body = 200, "ok"
            elif path.startswith("/readyz"):
                try:
                    ok = await asyncio.wait_for(self._ready(), timeout=2)
                except Exception:
                    ok = False
                status, body = (200, "ready") if ok else (503, "not ready")
            else:
                status, body = 404, "not found"
            payload = body.encode()
            writer.write(
                f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\n{PID_HEADER}: {os.getpid()}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
