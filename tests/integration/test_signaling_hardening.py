"""Hostile signaling against the real stack: a raw websocket beside SDK participants.

A session belongs to the account and identity that created it; malformed frames and connects get
an answer and a close, never a dropped socket or a taken seat.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis

from tests.support.sdk import join
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant, make_tenant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.stack(REALTIME)]


@asynccontextmanager
async def raw_socket(stack: Stack) -> AsyncIterator[Any]:
    """A TCMP socket past its hello, as twilio-video.js opens it."""
    async with websockets.connect(stack.signaling_url) as socket:
        await socket.send(json.dumps({"type": "hello", "timeout": 60_000, "version": 2}))
        welcome = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert welcome["type"] == "welcome"
        yield socket


async def next_body(socket: Any) -> dict[str, Any]:
    """The next RSP body the server sends (heartbeats skipped)."""
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if frame.get("type") == "msg":
            body: dict[str, Any] = frame["body"]
            return body


async def connected_identities(stack: Stack, tenant: Tenant, room: str) -> list[str]:
    client = stack.rest(tenant)
    listed = await asyncio.to_thread(
        lambda: client.video.v1.rooms(room).participants.list(status="connected")
    )
    return sorted(p.identity for p in listed)


async def test_a_session_is_resumed_only_by_its_own_participant(
    stack: Stack, tenant: Tenant, redis: Redis
) -> None:
    alice, seen = await join(stack, tenant, "alice", "guarded-session")
    try:
        session = alice._session
        assert session
        other_tenant = await make_tenant(redis, "tenant-b")
        thieves = [
            tenant.token("mallory", "guarded-session"),  # same account, another identity
            other_tenant.token("alice", "guarded-session"),  # another account, same identity
        ]
        for thief in thieves:
            async with raw_socket(stack) as socket:
                sync = {"type": "sync", "version": 2, "token": thief, "session": session}
                await socket.send(json.dumps({"type": "msg", "body": sync}))
                refused = await next_body(socket)
                assert (refused["type"], refused["code"]) == ("error", 53001), refused
                # Nothing of the victim's on this socket: a disconnect here ends nothing.
                bye = {"type": "disconnect", "version": 2, "session": session}
                await socket.send(json.dumps({"type": "msg", "body": bye}))
                await asyncio.sleep(0.5)
        assert alice.state == "connected"
        assert await connected_identities(stack, tenant, "guarded-session") == ["alice"]
        assert seen.errors == []
    finally:
        await alice.disconnect()
