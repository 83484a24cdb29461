"""Fuzzing the signaling protocol over real sockets, against the real stack, beside a live call.

Several raw sockets send RSP bodies drawn by Hypothesis (well formed connects, updates, syncs,
disconnects and ice requests, the same with one part replaced by any JSON value or removed, and
arbitrary JSON), plus TCMP garbage (text that is not JSON, binary frames, absurd nesting), while
an SDK pair in another room exchanges video. Afterwards: the call's frames kept coming during and
after the fuzz, the gateway and the worker still serve a new participant, REST lists nobody left
connected from the fuzz rooms (well before the 30 s session timeout could have done it), and no
log record of the services carries a traceback or an error.

The corpus is the same on every run (each fuzzer draws with its own fixed Hypothesis seed), so a
failing run repeats. About 15 s in all on the 2-core machine, the fuzz itself 2-8 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from hypothesis import strategies as st

from atrium_media.signaling.session import SESSION_TIMEOUT_SECONDS
from atrium_video import Room, connect, create_local_video_track
from tests.support import rsp_fuzz
from tests.support.logs import recorded
from tests.support.sdk import remote, sees
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.stack(REALTIME)]

SESSION_FUZZERS = 3
BODIES_PER_SESSION = 60
CONNECTS = 30
# Stands for the socket's current session string in drawn bodies (known only once connected).
SESSION = "SESSION"
# Stands for an Access Token minted at send time (a connector's identity is new on each socket).
TOKEN = "TOKEN"
# The loggers a failure of the stack lands in: the services' own, uvicorn's (an exception in
# the ASGI app) and asyncio's (a task that failed unobserved).
WATCHED_LOGGERS = ("atrium", "uvicorn.error", "asyncio")
# No frame for this long while the fuzz runs means the call's media stopped.
LONGEST_MEDIA_GAP_SECONDS = 3.0


def session_corpus(token: str, room: str, run: int) -> list[dict[str, Any]]:
    """A well formed connect, then what a session may be sent: updates, syncs (with this
    session's string, or any), ice requests, stray connects, arbitrary JSON; well formed or
    mutated."""
    connects = rsp_fuzz.connect_bodies(token, room)
    updates = rsp_fuzz.update_bodies(SESSION)
    syncs = rsp_fuzz.sync_bodies(token, SESSION)
    ices = rsp_fuzz.ice_bodies(token)
    garbage = st.dictionaries(rsp_fuzz.text, rsp_fuzz.json_values, max_size=5).map(
        lambda body: {**body, "type": body.get("type", "update")}
    )
    bodies = st.one_of(
        updates,
        rsp_fuzz.mutated(updates),
        updates,
        rsp_fuzz.mutated(updates),
        rsp_fuzz.mutated(syncs),
        ices,
        rsp_fuzz.mutated(ices),
        rsp_fuzz.mutated(connects),
        garbage,
    )
    opening = rsp_fuzz.examples(connects, 1, run)
    return opening + rsp_fuzz.examples(bodies, BODIES_PER_SESSION, run)


def connect_corpus(token: str, room: str) -> list[dict[str, Any]]:
    connects = rsp_fuzz.connect_bodies(token, room)
    return rsp_fuzz.examples(connects | rsp_fuzz.mutated(connects), CONNECTS, 100)


# TCMP frames no client sends: each gets `bad`, those marked closing also a close frame.
TCMP_GARBAGE: list[tuple[str | bytes, bool]] = [
    ("not json", False),
    ("[1, 2, 3]", False),
    ('{"type": "msg", "body": "text"}', False),
    ('{"type": "unknown"}', False),
    ('{"type": "msg", "body": ' + "[" * 100 + "]" * 100 + "}", True),
    ("[" * 100_000 + "]" * 100_000, True),
    (b"\x00\x01binary", True),
]


async def hello(stack: Stack) -> Any:
    socket = await websockets.connect(stack.signaling_url, max_size=None)
    await socket.send(json.dumps({"type": "hello", "timeout": 60_000, "version": 2}))
    return socket


@dataclass
class SessionFuzzer:
    """One raw client on one socket, with its own identity and room: a connect, then fuzz."""

    stack: Stack
    tenant: Tenant
    index: int
    sent: int = 0
    answers: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def room(self) -> str:
        return f"fuzz-{self.index}"

    def draw(self) -> None:
        token = self.tenant.token(f"fuzzer-{self.index}", self.room)
        self.bodies = session_corpus(token, self.room, self.index)

    async def run(self) -> None:
        socket = await hello(self.stack)
        reader = asyncio.create_task(self._read(socket))
        try:
            for body in self.bodies:
                await self._send(socket, body)
            # The session ends as twilio-video.js ends one: its participant must not wait for
            # the session timeout.
            await self._send(socket, {"type": "disconnect", "version": 2, "session": SESSION})
            await socket.send(json.dumps({"type": "bye"}))
            await asyncio.wait_for(reader, 10)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await reader
            await socket.close()

    async def _send(self, socket: Any, body: dict[str, Any]) -> None:
        if body.get("session") == SESSION:
            body = {**body, "session": self.sessions[-1] if self.sessions else "w.none"}
        self.sent += 1
        await socket.send(json.dumps({"type": "msg", "body": body}))
        await asyncio.sleep(0.01)  # a client's pace, not a flood: the stack shares 2 cores

    async def _read(self, socket: Any) -> None:
        async for raw in socket:
            frame = json.loads(raw)
            if frame.get("type") == "msg" and isinstance(frame.get("body"), dict):
                body = frame["body"]
                self.answers.append(body)
                if body.get("type") == "connected":
                    self.sessions.append(body["session"])


@dataclass
class ConnectFuzzer:
    """Well formed and mutated connects, each on a fresh socket: each is answered (never a
    hang), and one that was admitted leaves with `disconnect` before its socket closes."""

    stack: Stack
    tenant: Tenant
    room: str = "fuzz-connects"
    bodies: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def draw(self) -> None:
        self.bodies = connect_corpus(TOKEN, self.room)

    async def run(self) -> None:
        for index, body in enumerate(self.bodies):
            if body.get("token") == TOKEN:  # an identity per socket: no duplicate kicks
                body = {**body, "token": self.tenant.token(f"connector-{index}", self.room)}
            socket = await hello(self.stack)
            try:
                await socket.send(json.dumps({"type": "msg", "body": body}))
                answer = await self._answer(socket)
                assert answer["type"] in ("connected", "error"), (body, answer)
                self.answers.append(answer)
                if answer["type"] == "connected":
                    bye = {"type": "disconnect", "version": 2, "session": answer["session"]}
                    await socket.send(json.dumps({"type": "msg", "body": bye}))
            finally:
                await socket.close()

    @staticmethod
    async def _answer(socket: Any) -> dict[str, Any]:
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame.get("type") == "msg" and frame["body"].get("type") != "update":
                body: dict[str, Any] = frame["body"]
                return body


async def throw_tcmp_garbage(stack: Stack) -> None:
    """Each garbage frame on its own socket: answered with `bad` (and closed when it says so)."""
    for frame, closes in TCMP_GARBAGE:
        async with websockets.connect(stack.signaling_url, max_size=None) as socket:
            await socket.send(json.dumps({"type": "hello", "timeout": 60_000, "version": 2}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "welcome"
            await socket.send(frame)
            answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert answer["type"] == "bad", (frame[:40], answer)
            if closes:
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(socket.recv(), 10)


class FrameCounter:
    """Counts the video frames a subscriber decodes, and the longest gap between two."""

    def __init__(self) -> None:
        self.count = 0
        self.last = time.monotonic()
        self.longest_gap = 0.0
        self.watching = False

    async def run(self, track: Any) -> None:
        while True:
            await track.recv()
            now = time.monotonic()
            if self.watching:
                self.longest_gap = max(self.longest_gap, now - self.last)
            self.count, self.last = self.count + 1, now


async def connected_in(stack: Stack, tenant: Tenant, room: str) -> list[str]:
    """Identities REST lists as connected in ``room`` (none once the room is gone)."""
    client = stack.rest(tenant)

    def listed() -> list[str]:
        rooms = client.video.v1.rooms.list(unique_name=room)
        if not rooms:
            return []
        return sorted(p.identity for p in rooms[0].participants.list(status="connected"))

    return await asyncio.to_thread(listed)


@contextlib.contextmanager
def watched_logs() -> Iterator[list[list[logging.LogRecord]]]:
    """What the watched loggers emit at INFO or above, one list per logger, as it comes."""
    with contextlib.ExitStack() as logs:
        yield [logs.enter_context(recorded(name, logging.INFO)) for name in WATCHED_LOGGERS]


async def join_video(stack: Stack, tenant: Tenant, identity: str, room: str) -> Room:
    return await connect(
        tenant.token(identity),
        url=stack.signaling_url,
        name=room,
        tracks=[create_local_video_track(name="cam")],
    )


async def test_fuzzed_signaling_leaves_the_stack_serving_and_other_rooms_flowing(
    stack: Stack, tenant: Tenant
) -> None:
    # Drawn before anyone joins: Hypothesis blocks the event loop the stack runs on meanwhile.
    fuzzers = [SessionFuzzer(stack, tenant, index) for index in range(SESSION_FUZZERS)]
    connector = ConnectFuzzer(stack, tenant)
    drawing = time.monotonic()
    for fuzzer in fuzzers:
        fuzzer.draw()
    connector.draw()
    drawing = time.monotonic() - drawing
    with watched_logs() as logged:
        alice = await join_video(stack, tenant, "alice", "the-call")
        bob = await join_video(stack, tenant, "bob", "the-call")
        counter = FrameCounter()
        watching: asyncio.Task[None] | None = None
        try:
            await eventually(sees(bob, "alice", 1), timeout=20, message="bob receives alice")
            watching = asyncio.create_task(counter.run(remote(bob, "alice", "video")))
            await eventually(lambda: counter.count > 10, timeout=10, message="frames flow")

            started, before = time.monotonic(), counter.count
            counter.watching = True
            await asyncio.gather(
                throw_tcmp_garbage(stack), connector.run(), *(f.run() for f in fuzzers)
            )
            fuzz_seconds = time.monotonic() - started
            during = counter.count
            counter.watching = False
            print(
                f"fuzz: {fuzz_seconds:.1f} s (corpus drawn in {drawing:.1f} s), video frames"
                f" {before} -> {during}, longest gap {counter.longest_gap:.2f} s"
            )
            assert during > before + 10, (before, during, fuzz_seconds)
            assert counter.longest_gap < LONGEST_MEDIA_GAP_SECONDS, counter.longest_gap
            await eventually(lambda: counter.count > during + 10, timeout=10, message="after")

            # Every socket said `disconnect` (or was refused): nobody is left connected, and
            # well before a session timeout could have removed anyone.
            for room in [f.room for f in fuzzers] + [connector.room]:

                async def nobody_connected(room: str = room) -> bool:
                    return await connected_in(stack, tenant, room) == []

                await eventually(nobody_connected, timeout=10, message=f"{room} empty")
            assert time.monotonic() - started < fuzz_seconds + SESSION_TIMEOUT_SECONDS

            # Still serving: a newcomer joins the call and receives alice's video.
            carol = await join_video(stack, tenant, "carol", "the-call")
            try:
                await eventually(sees(carol, "alice", 1), timeout=20, message="carol joins")
                first = await asyncio.wait_for(remote(carol, "alice", "video").recv(), 10)
                assert first.width > 0
            finally:
                await carol.disconnect()
            assert alice.state == bob.state == "connected"
        finally:
            if watching is not None:
                watching.cancel()
            await bob.disconnect()
            await alice.disconnect()
    records = [record for of_logger in logged for record in of_logger]
    failures = [r for r in records if r.exc_info or r.levelno >= logging.ERROR]
    sent = sum(f.sent for f in fuzzers)
    answered = sum(len(f.answers) for f in fuzzers)
    assert sent > SESSION_FUZZERS * BODIES_PER_SESSION and answered > 0, (sent, answered)
    assert len(connector.answers) == CONNECTS
    assert not failures, [(r.name, r.getMessage(), r.exc_info) for r in failures]
