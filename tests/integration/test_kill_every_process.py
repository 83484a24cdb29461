"""kill -9 of every process of `make run`'s stack in turn, under a bounded load.

The load creates rooms over REST with a status callback, has a Python SDK participant join some
of them, and completes them, all the time. Each process (every service, one of the two media
workers, the embedded NATS and valkey, which runs with an append-only file) is killed in turn;
`atrium run` must restart it and the stack serve again. At the end no acknowledged room has lost a
callback (an acknowledged create has its `room-created`, an acknowledged completion its
`room-ended`, an acknowledged join its `participant-connected` and `participant-disconnected`),
and every room's callbacks arrived in order with no sequence number missing or repeated (a retry
of the same callback aside).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from atrium_cli.embedded import free_port
from atrium_shared.errors import STATUS_INVALID
from tests.support.atrium_run import (
    REAL_STACK_READY_SECONDS,
    AtriumRun,
    Banner,
    assert_stops_cleanly,
    pids_running,
    process_tree,
    run_env,
    serves_rest,
    start_run,
)
from tests.support.tenants import mint_token
from tests.support.waiting import eventually
from tests.support.webhook import Received, Webhook

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table"),
]

# (what the supervisor calls the child, as a pattern; what its command line runs). The media
# worker is either of the two.
VICTIMS = (
    ("gateway", "atrium_gateway.app"),
    ("room", "atrium_room.app"),
    ("participant", "atrium_participant.app"),
    ("track", "atrium_track.app"),
    ("recording", "atrium_recording.app"),
    ("callback", "atrium_callback.app"),
    ("media(?:-2)?", "atrium_media.app"),
    ("nats", "nats-server"),
    ("redis", "valkey-server"),
)
RECOVERY_SECONDS = 60.0  # deadline for a restarted child to be ready and REST to serve
SETTLE_SECONDS = 90.0  # deadline for every expected callback once the load has stopped


@dataclass
class Ledger:
    """What the stack acknowledged to the load."""

    created: set[str] = field(default_factory=set)
    completed: set[str] = field(default_factory=set)
    joined: set[str] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    cycles_done: int = 0  # rooms created and completed

    def expected(self, room_sid: str) -> set[str]:
        events = {"room-created"}
        if room_sid in self.joined:
            events |= {"participant-connected", "participant-disconnected"}
        if room_sid in self.completed:
            events.add("room-ended")
        return events


class Load:
    """Two clients: one creating and completing rooms, one also joining each room with the SDK."""

    def __init__(self, banner: Banner, webhook: Webhook) -> None:
        self.banner = banner
        self.webhook = webhook
        self.ledger = Ledger()
        self.signaling = banner.base_url.removesuffix("/v1").replace("http://", "ws://")
        self.signaling += "/signaling"
        self._names = itertools.count()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.hangs: list[str] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._client(with_participant=False)),
            asyncio.create_task(self._client(with_participant=True)),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    async def _client(self, *, with_participant: bool) -> None:
        auth = (self.banner.account_sid, self.banner.auth_token)
        async with httpx.AsyncClient(base_url=self.banner.base_url, auth=auth) as rest:
            while not self._stopping.is_set():
                await self._cycle(rest, with_participant)
                try:
                    await asyncio.wait_for(self._stopping.wait(), 0.1)
                except TimeoutError:
                    pass
            # Whatever was left open is completed now that every process is back.
            for sid in sorted(self.ledger.created - self.ledger.completed):
                await self._complete(rest, sid, attempts=20)

    async def _cycle(self, rest: httpx.AsyncClient, with_participant: bool) -> None:
        name = f"load-{next(self._names)}"
        answer = await self._post(rest, "/Rooms", UniqueName=name, StatusCallback=self._hook)
        if answer is None or answer.status_code != 201:
            self._refuse("create", answer)
            return
        sid = str(answer.json()["sid"])
        self.ledger.created.add(sid)
        if with_participant:
            await self._join(name, sid)
        if await self._complete(rest, sid, attempts=1):
            self.ledger.cycles_done += 1

    async def _join(self, name: str, sid: str) -> None:
        from atrium_video import connect

        token = mint_token(
            f"guest-{name}",
            account_sid=self.banner.account_sid,
            api_key_sid=self.banner.api_key_sid,
            api_key_secret=self.banner.api_key_secret,
        )
        try:
            room = await asyncio.wait_for(
                connect(token, url=self.signaling, name=name, timeout=10), 20
            )
        except TimeoutError:
            self.hangs.append(f"connect {name}")
            return
        except Exception as exc:  # refused or timed out while a process was down
            self.ledger.refused[f"join: {type(exc).__name__}"] += 1
            return
        self.ledger.joined.add(sid)
        try:
            await asyncio.wait_for(room.disconnect(), 20)
        except TimeoutError:
            self.hangs.append(f"disconnect {name}")

    async def _complete(self, rest: httpx.AsyncClient, sid: str, attempts: int) -> bool:
        for attempt in range(attempts):
            answer = await self._post(rest, f"/Rooms/{sid}", Status="completed")
            if answer is not None and answer.status_code in (200, 202):
                self.ledger.completed.add(sid)
                return True
            if answer is not None and answer.json().get("code") == STATUS_INVALID:
                # Not in progress: an earlier request completed it but answered 503 or nothing
                # (the process answering it was killed). The room's own status says so.
                if await self._status(rest, sid) == "completed":
                    self.ledger.completed.add(sid)
                    return True
            self._refuse("complete", answer)
            if attempt + 1 < attempts:
                await asyncio.sleep(0.5)
        return False

    async def _status(self, rest: httpx.AsyncClient, sid: str) -> str | None:
        try:
            answer = await rest.get(f"/Rooms/{sid}", timeout=10)
        except httpx.HTTPError:
            return None
        return str(answer.json()["status"]) if answer.status_code == 200 else None

    @property
    def _hook(self) -> str:
        return self.webhook.url("/status")

    async def _post(self, rest: httpx.AsyncClient, path: str, **form: str) -> httpx.Response | None:
        try:
            return await rest.post(path, data=form, timeout=10)
        except httpx.HTTPError:
            return None

    def _refuse(self, what: str, answer: httpx.Response | None) -> None:
        status = "no answer" if answer is None else str(answer.status_code)
        if answer is not None:
            # Refusals carry Twilio's body, never a bare 5xx.
            body = answer.json()
            assert {"code", "message", "more_info", "status"} <= body.keys(), answer.text
        self.ledger.refused[f"{what}: {status}"] += 1


def collapsed_sequences(requests: Sequence[Received]) -> list[int]:
    """A room's sequence numbers as they arrived, a retry of the one before collapsed."""
    collapsed: list[int] = []
    for request in requests:
        if not collapsed or collapsed[-1] != request.sequence:
            collapsed.append(request.sequence)
    return collapsed


async def kill_and_recover(run: AtriumRun, banner: Banner, child: str, program: str) -> float:
    """kill -9 ``child``; seconds until it is ready again and REST serves."""
    killed_at = time.monotonic()
    os.kill(min(pids_running(run, program)), signal.SIGKILL)
    name = child
    await asyncio.to_thread(
        run.wait_for, rf"{name} exited unexpectedly with code -9 after [\d.]+s", RECOVERY_SECONDS
    )
    await asyncio.to_thread(
        run.wait_for, rf"{name} is ready again \(restart \d+\)", RECOVERY_SECONDS
    )
    await eventually(
        lambda: asyncio.to_thread(serves_rest, banner),
        timeout=RECOVERY_SECONDS,
        message=f"REST serving after {child} came back",
    )
    return time.monotonic() - killed_at


async def test_kill_9_of_each_process_in_turn_loses_and_reorders_no_callback(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    env = run_env(ATRIUM_HTTP_PORT=str(free_port()), ATRIUM_MEDIA_WORKERS="2")
    run = start_run(atrium_runs, tmp_path, env)
    banner = await asyncio.to_thread(run.wait_for_banner, REAL_STACK_READY_SECONDS)
    webhook = Webhook(banner.auth_token)
    await webhook.start()
    load = Load(banner, webhook)
    recovered: dict[str, float] = {}
    try:
        load.start()
        await eventually(lambda: load.ledger.cycles_done >= 5, timeout=60, message="load runs")
        for child, program in VICTIMS:
            label = program.removeprefix("atrium_").removesuffix(".app")
            recovered[label] = await kill_and_recover(run, banner, child, program)
            # The load itself gets through again: a room created and completed after the restart.
            done = load.ledger.cycles_done
            await eventually(
                lambda done=done: load.ledger.cycles_done >= done + 2,  # type: ignore[misc]
                timeout=RECOVERY_SECONDS,
                message=f"rooms created and completed after {child} came back",
            )
        await load.stop()
        assert not load.hangs, f"SDK calls that outlived their own timeout: {load.hangs}"

        ledger = load.ledger

        async def all_arrived() -> bool:
            return all(
                ledger.expected(sid) <= _events(webhook.for_room(sid)) for sid in ledger.created
            )

        await eventually(all_arrived, timeout=SETTLE_SECONDS, message="every callback")
        _print_figures(recovered, ledger, webhook)

        assert all(r.valid_signature for r in webhook.received)
        assert len(ledger.created) >= 20 and ledger.joined, ledger
        for sid in {r.room_sid for r in webhook.received}:
            requests = webhook.for_room(sid)
            sequences = collapsed_sequences(requests)
            assert sequences == list(range(len(sequences))), (sid, _described(requests))
            events = [r.params["StatusCallbackEvent"] for r in requests]
            assert events[0] == "room-created", (sid, events)
            if "room-ended" in events:
                assert events[-1] == "room-ended", (sid, events)
    finally:
        if load._tasks and not load._stopping.is_set():
            load._stopping.set()
            await asyncio.gather(*load._tasks, return_exceptions=True)
        await webhook.stop()
    run.started.update(process_tree(run.process.pid))  # the restarted children too
    await asyncio.to_thread(assert_stops_cleanly, run)


def _events(requests: Sequence[Received]) -> set[str]:
    return {r.params.get("StatusCallbackEvent", "") for r in requests}


def _described(requests: Sequence[Received]) -> list[tuple[int, str]]:
    return [(r.sequence, r.params.get("StatusCallbackEvent", "")) for r in requests]


def _print_figures(recovered: dict[str, float], ledger: Ledger, webhook: Webhook) -> None:
    rows: list[Any] = [f"{child:<12} {seconds:5.1f} s" for child, seconds in recovered.items()]
    print("\nkill -9 -> ready again and REST serving:\n  " + "\n  ".join(rows))
    print(
        f"rooms acknowledged: {len(ledger.created)} created, {len(ledger.completed)} completed, "
        f"{len(ledger.joined)} joined; callbacks received: {len(webhook.received)}; "
        f"refused while a process was down: {dict(ledger.refused)}"
    )
