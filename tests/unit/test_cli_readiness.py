"""The supervisor's readiness probe counts only its own child's answer: a port picked for a child
can be taken by another process first, which must not make the child look ready."""

from __future__ import annotations

import asyncio
import os

from atrium_cli.supervisor import http_answer, http_ready
from atrium_shared.health import HealthServer


async def _always_ready() -> bool:
    return True


async def test_own_health_server_is_ready_under_its_pid() -> None:
    server = HealthServer("127.0.0.1", 0, _always_ready)
    await server.start()
    try:
        assert await http_answer(server.port, "/readyz") == (200, os.getpid())
        assert await http_ready([(server.port, "/readyz")])(os.getpid())
        # The same answer for another child's pid: that child is not ready.
        assert not await http_ready([(server.port, "/readyz")])(os.getpid() + 1)
    finally:
        await server.stop()


async def test_a_foreign_200_without_the_pid_header_is_not_ready() -> None:
    async def foreign(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(foreign, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        assert await http_answer(port, "/readyz") == (200, None)
        assert not await http_ready([(port, "/readyz")])(os.getpid())
    finally:
        server.close()
        await server.wait_closed()
