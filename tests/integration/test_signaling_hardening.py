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
from tests.support.waiting import eventually

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
                assert (refused["type"], refused.get("code")) == ("error", 53001), refused
                # Nothing of the victim's on this socket: a disconnect here ends nothing.
                bye = {"type": "disconnect", "version": 2, "session": session}
                await socket.send(json.dumps({"type": "msg", "body": bye}))
                await asyncio.sleep(0.5)
        assert alice.state == "connected"
        assert await connected_identities(stack, tenant, "guarded-session") == ["alice"]
        assert seen.errors == []
    finally:
        await alice.disconnect()


def connect_body(token: str, room: str, **fields: Any) -> dict[str, Any]:
    return {"type": "connect", "version": 2, "token": token, "name": room, **fields}


async def rest_participants(stack: Stack, tenant: Tenant, room: str) -> list[tuple[str, str]]:
    """(identity, status) of every participant the room had, [] if there is no such room."""
    client = stack.rest(tenant)

    def listed() -> list[tuple[str, str]]:
        rooms = client.video.v1.rooms.list(unique_name=room)
        if not rooms:
            return []
        return sorted((p.identity, p.status) for p in rooms[0].participants.list())

    return await asyncio.to_thread(listed)


@pytest.mark.parametrize(
    "fields",
    [
        {"participant": "alice"},
        {"participant": [1, 2]},
        {"participant": {"revision": 1, "tracks": "all of them"}},
        {"participant": {"revision": "one", "tracks": []}},
        {"peer_connections": {"id": "pc"}},
        {"peer_connections": [{"id": "pc", "description": "offer"}]},
    ],
)
async def test_a_malformed_connect_is_refused_and_admits_nobody(
    stack: Stack, tenant: Tenant, fields: dict[str, Any]
) -> None:
    async with raw_socket(stack) as socket:
        body = connect_body(tenant.token("mallory", "malformed"), "malformed", **fields)
        await socket.send(json.dumps({"type": "msg", "body": body}))
        refused = await next_body(socket)
        assert (refused["type"], refused.get("code")) == ("error", 53003), refused
    assert await rest_participants(stack, tenant, "malformed") == []


@pytest.mark.parametrize(
    "sdp",
    [
        "v=0\r\nthis is not SDP\r\n",  # aiortc would answer it
        "v=0\r\nm=audio x y z\r\n",  # aiortc raises (AssertionError)
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n",  # no ICE
    ],
)
async def test_a_garbage_offer_is_53403_and_gives_the_seat_back(
    stack: Stack, tenant: Tenant, sdp: str
) -> None:
    client = stack.rest(tenant)
    await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(unique_name="garbage-sdp", max_participants=1)
    )
    offer = {"type": "offer", "revision": 1, "sdp": sdp}
    async with raw_socket(stack) as socket:
        body = connect_body(
            tenant.token("mallory", "garbage-sdp"),
            "garbage-sdp",
            participant={"revision": 1, "tracks": []},
            peer_connections=[{"id": "pc1", "description": offer}],
        )
        await socket.send(json.dumps({"type": "msg", "body": body}))
        refused = await next_body(socket)
        assert (refused["type"], refused.get("code")) == ("error", 53403), refused

    async def all_disconnected() -> bool:
        statuses = await rest_participants(stack, tenant, "garbage-sdp")
        return all(status == "disconnected" for _, status in statuses)

    await eventually(all_disconnected, message="mallory disconnected")
    statuses = await rest_participants(stack, tenant, "garbage-sdp")
    assert all(status == "disconnected" for _, status in statuses), statuses
    # The one seat is free again: a real participant takes it.
    alice, _ = await join(stack, tenant, "alice", "garbage-sdp")
    try:
        assert alice.state == "connected"
    finally:
        await alice.disconnect()


@pytest.mark.parametrize(
    "update",
    [
        {"participant": "alice"},
        {"participant": {"revision": 2, "tracks": [{"id": 7, "kind": "audio"}]}},
        {"participant": {"revision": 2, "tracks": [{"id": "t", "kind": "audio", "enabled": 1}]}},
        {"peer_connections": {"id": "pc1"}},
        {"peer_connections": [{"id": "pc1", "description": {"type": "offer", "sdp": 5}}]},
        {"peer_connections": [{"id": "pc1", "description": {"type": "answer", "revision": "2"}}]},
        {"peer_connections": [{"id": "pc1", "ice": {"ufrag": "u", "candidates": "all"}}]},
        {"peer_connections": [{"id": "pc1", "ice": {"candidates": [{"candidate": 1}]}}]},
    ],
)
async def test_a_malformed_update_is_53003_and_leaves_the_session_alone(
    stack: Stack, tenant: Tenant, update: dict[str, Any]
) -> None:
    """An admitted participant's malformed update is answered and changes nothing: the
    participant stays connected, and a well formed update afterwards is applied."""
    async with raw_socket(stack) as socket:
        body = connect_body(
            tenant.token("mallory", "bad-update"),
            "bad-update",
            participant={"revision": 1, "tracks": []},
            peer_connections=[],
        )
        await socket.send(json.dumps({"type": "msg", "body": body}))
        connected = await next_body(socket)
        assert connected["type"] == "connected", connected
        session = connected["session"]
        bad = {"type": "update", "version": 2, "session": session, **update}
        await socket.send(json.dumps({"type": "msg", "body": bad}))
        refused = await next_body(socket)
        assert (refused["type"], refused.get("code")) == ("error", 53003), refused
        assert await rest_participants(stack, tenant, "bad-update") == [("mallory", "connected")]
        track = {"id": "t1", "kind": "data", "name": "chat", "enabled": True}
        good = {"type": "update", "version": 2, "session": session}
        good["participant"] = {"revision": 2, "tracks": [track]}
        await socket.send(json.dumps({"type": "msg", "body": good}))
        while (answered := await next_body(socket)).get("published") is None:
            assert answered["type"] != "error", answered
        assert [t["id"] for t in answered["published"]["tracks"]] == ["t1"]
        await socket.send(json.dumps({"type": "msg", "body": {"type": "disconnect"}}))

    async def gone() -> bool:
        # Disconnected, or already gone with its room (an empty room ends within seconds here).
        statuses = await rest_participants(stack, tenant, "bad-update")
        return all(status == "disconnected" for _, status in statuses)

    await eventually(gone, message="mallory left")


async def test_a_garbage_offer_in_an_update_is_53403_and_the_session_stays(
    stack: Stack, tenant: Tenant
) -> None:
    async with raw_socket(stack) as socket:
        body = connect_body(
            tenant.token("mallory", "bad-offer"), "bad-offer", participant={}, peer_connections=[]
        )
        await socket.send(json.dumps({"type": "msg", "body": body}))
        connected = await next_body(socket)
        assert connected["type"] == "connected", connected
        for sdp in ("v=0\r\nthis is not SDP\r\n", "v=0\r\nm=audio x y z\r\n"):
            offer = {"type": "offer", "revision": 1, "sdp": sdp}
            update = {"type": "update", "peer_connections": [{"id": "pc1", "description": offer}]}
            await socket.send(json.dumps({"type": "msg", "body": update}))
            refused = await next_body(socket)
            assert (refused["type"], refused.get("code")) == ("error", 53403), refused
        assert await rest_participants(stack, tenant, "bad-offer") == [("mallory", "connected")]
