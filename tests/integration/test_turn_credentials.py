"""The short-lived TURN credentials the gateway hands out (``iced``) open an allocation on a real
coturn configured with ``use-auth-secret``; a wrong secret or an expired credential does not."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import aioice
import pytest

from atrium_shared.turn import ephemeral_credential
from tests.support.coturn import INSTALL_HINT, start_coturn

SECRET = "coturn shared secret"

pytestmark = pytest.mark.integration


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    if shutil.which("turnserver") is None:
        pytest.fail(f"coturn is not installed ({INSTALL_HINT})")
    with start_coturn(tmp_path, "127.0.0.1", secret=SECRET) as server:
        yield server.port


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
