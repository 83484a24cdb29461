"""While Redis or NATS is down, REST answers 503 with Twilio's body (20503) and `/signaling`
answers Twilio's error in an RSP `error` body, in bounded time, never a bare 500, a dropped socket
or a hang; once the server is back (same port, same data), everything answers normally again.

The servers are the test's own real ``valkey-server`` and ``nats-server``, stopped and started
again by the test (:func:`tests.support.stack.server_down`); the gateway and services run in the
test's event loop and reconnect by themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets

from atrium_shared import errors
from tests.support.logs import recorded
from tests.support.stack import Servers, Stack, server_down
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# Every answer while a server is down comes within this (the RPC timeout is 5 s).
ANSWER_WITHIN_SECONDS = 12.0
UNAVAILABLE_BODY_KEYS = {"code", "message", "more_info", "status"}


async def rest(stack: Stack, tenant: Tenant, method: str, path: str, **form: str) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=stack.base_url,
        auth=(tenant.account.sid, tenant.auth_token),
        timeout=ANSWER_WITHIN_SECONDS + 5,
    ) as client:
        return await asyncio.wait_for(
            client.request(method, f"/v1{path}", data=form or None), ANSWER_WITHIN_SECONDS
        )


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    body = response.json()
    assert set(body) == UNAVAILABLE_BODY_KEYS, body
    assert body["code"] == errors.SERVICE_UNAVAILABLE and body["status"] == 503
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20503"


@asynccontextmanager
async def signaling_socket(stack: Stack) -> AsyncIterator[Any]:
    async with websockets.connect(stack.signaling_url) as socket:
        await socket.send(json.dumps({"type": "hello", "version": 2, "timeout": 60_000}))
        welcome = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert welcome["type"] == "welcome"
        yield socket


async def answer(socket: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The RSP body the gateway answers ``body`` with (heartbeats skipped), in bounded time."""
    await socket.send(json.dumps({"type": "msg", "body": body}))

    async def next_body() -> dict[str, Any]:
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("type") == "msg":
                reply: dict[str, Any] = frame["body"]
                return reply

    return await asyncio.wait_for(next_body(), ANSWER_WITHIN_SECONDS)


def assert_rsp_unavailable(reply: dict[str, Any]) -> None:
    assert reply["type"] == "error" and reply["code"] == errors.SERVICE_UNAVAILABLE, reply
    assert reply["message"]


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    """Records logged with a traceback, but FastStream's own "Connection broken" warning (it
    always attaches the NATS client's error; the outage is the point of the test)."""
    return [
        r.getMessage()
        for r in records
        if r.exc_info is not None and not r.getMessage().startswith("Connection broken")
    ]


async def rest_answers_again(stack: Stack, tenant: Tenant) -> None:
    async def answers() -> bool:
        try:
            return (await rest(stack, tenant, "GET", "/Rooms")).status_code == 200
        except (httpx.TransportError, TimeoutError):
            return False

    await eventually(answers, timeout=60, interval=0.25, message="REST answering again")


async def test_redis_down_is_503_on_rest_and_an_rsp_error_on_signaling(
    stack: Stack, tenant: Tenant, servers: Servers
) -> None:
    token = tenant.token("alice", "outage-room")
    created = await rest(stack, tenant, "POST", "/Rooms", UniqueName="before-redis-outage")
    assert created.status_code == 201, created.text

    with recorded("atrium", logging.WARNING) as records:
        async with signaling_socket(stack) as socket:
            with server_down(servers.redis):
                # The auth path reads the account from Redis: every REST route is a 503.
                assert_unavailable(await rest(stack, tenant, "GET", "/Rooms"))
                assert_unavailable(
                    await rest(stack, tenant, "GET", f"/Rooms/{created.json()['sid']}")
                )
                assert_unavailable(await rest(stack, tenant, "POST", "/Rooms", UniqueName="during"))
                # Signaling checks the token's key and account in Redis: an RSP error, and the
                # socket stays open for the next attempt.
                assert_rsp_unavailable(await answer(socket, {"type": "ice", "token": token}))
                assert_rsp_unavailable(
                    await answer(
                        socket,
                        {"type": "connect", "token": token, "name": "outage-room", "version": 2},
                    )
                )
                assert_rsp_unavailable(await answer(socket, {"type": "ice", "token": token}))
                readyz = await asyncio.wait_for(
                    httpx.AsyncClient().get(f"{stack.base_url}/readyz"), ANSWER_WITHIN_SECONDS
                )
                assert readyz.status_code == 503

            await rest_answers_again(stack, tenant)
            # The same socket, the same data: the key, the account and the room survived.
            assert (await answer(socket, {"type": "ice", "token": token}))["type"] == "iced"
        fetched = await rest(stack, tenant, "GET", "/Rooms/before-redis-outage")
        assert fetched.status_code == 200 and fetched.json()["sid"] == created.json()["sid"]
        assert (await rest(stack, tenant, "POST", "/Rooms", UniqueName="after")).status_code == 201
    assert not tracebacks(records)


async def test_nats_down_is_503_on_rest_and_an_rsp_error_on_signaling(
    stack: Stack, tenant: Tenant, servers: Servers
) -> None:
    token = tenant.token("bob", "nats-outage-room")
    assert (await rest(stack, tenant, "GET", "/Rooms")).status_code == 200

    with recorded("atrium", logging.WARNING) as records:
        async with signaling_socket(stack) as socket:
            with server_down(servers.nats):
                # Authentication still works (Redis); the room service is out of reach.
                assert_unavailable(await rest(stack, tenant, "GET", "/Rooms"))
                assert_unavailable(await rest(stack, tenant, "POST", "/Rooms", UniqueName="during"))
                # A join needs the room service: an RSP error instead of a hang.
                assert_rsp_unavailable(
                    await answer(
                        socket,
                        {
                            "type": "connect",
                            "token": token,
                            "name": "nats-outage-room",
                            "version": 2,
                        },
                    )
                )
                # ICE servers need only the token: still answered.
                assert (await answer(socket, {"type": "ice", "token": token}))["type"] == "iced"

            await rest_answers_again(stack, tenant)
        created = await rest(stack, tenant, "POST", "/Rooms", UniqueName="after-nats-outage")
        assert created.status_code == 201, created.text
        listed = await rest(stack, tenant, "GET", "/Rooms")
        assert [r["unique_name"] for r in listed.json()["rooms"]] == ["after-nats-outage"]
    assert not tracebacks(records)
