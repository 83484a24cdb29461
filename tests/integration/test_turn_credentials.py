"""The short-lived TURN credentials the gateway hands out (``iced``) open an allocation on a real
coturn configured with ``use-auth-secret``; a wrong secret or an expired credential does not."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aioice
import pytest

from atrium_shared.turn import ephemeral_credential
from tests.support.waiting import eventually_sync

SECRET = "coturn shared secret"

pytestmark = pytest.mark.integration


def free_udp_and_tcp_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def accepts_tcp(port: int) -> bool:
    """coturn listens on TCP and UDP on the same port; a TCP connect says it is up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("coturn is not installed (scripts/install-browser-deps.sh installs it)")
    port = free_udp_and_tcp_port()
    log = tmp_path / "turnserver.log"
    process = subprocess.Popen(
        [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            "--min-port=49160",
            "--max-port=49200",
            "--use-auth-secret",
            f"--static-auth-secret={SECRET}",
            "--realm=atrium.test",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--no-stun-backward-compatibility",
            "--allow-loopback-peers",
            f"--log-file={log}",
            "--simple-log",
            f"--pidfile={tmp_path / 'turnserver.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually_sync(
            lambda: process.poll() is not None or accepts_tcp(port),
            timeout=10,
            message="coturn listening",
        )
        assert process.poll() is None, log.read_text(errors="replace")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def relay_candidates(port: int, username: str, password: str) -> list[str]:
    connection = aioice.Connection(
        ice_controlling=True,
        components=1,
        use_ipv6=False,
        turn_server=("127.0.0.1", port),
        turn_username=username,
        turn_password=password,
        turn_transport="udp",
    )
    try:
        await asyncio.wait_for(connection.gather_candidates(), 15)
        return [c.host for c in connection.local_candidates if c.type == "relay"]
    finally:
        await connection.close()


async def test_a_fresh_credential_allocates_a_relay(coturn: int) -> None:
    username, password = ephemeral_credential(SECRET, "AC" + "a" * 32, time.time(), 600)
    assert await relay_candidates(coturn, username, password) == ["127.0.0.1"]


async def test_a_wrong_secret_or_an_expired_credential_is_refused(coturn: int) -> None:
    username, password = ephemeral_credential("not the secret", "AC" + "a" * 32, time.time(), 600)
    assert await relay_candidates(coturn, username, password) == []
    stale, stale_password = ephemeral_credential(SECRET, "AC" + "a" * 32, time.time() - 3600, 600)
    assert await relay_candidates(coturn, stale, stale_password) == []
