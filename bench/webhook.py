"""An in-process status-callback receiver that stamps each arrival with the bench's own clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Keys a delivery can be found by: our own query tag, Twilio's RoomSid, and the room's name.
MATCH_FIELDS = ("k", "RoomSid", "RoomName")


@dataclass
class Delivery:
    arrived: float
    method: str
    params: dict[str, str]


@dataclass
class WebhookRecorder:
    """First arrival time per key, plus every delivery (duplicates mean retries)."""

    first: dict[str, float] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)

    def record(self, arrived: float, method: str, params: dict[str, str]) -> None:
        self.deliveries.append(Delivery(arrived, method, params))
        for name in MATCH_FIELDS:
            value = params.get(name)
            if value:
                self.first.setdefault(value, arrived)

    def arrived(self, key: str) -> float | None:
        return self.first.get(key)


def _params(request: Request, body: bytes) -> dict[str, str]:
    params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if body and "json" in content_type:
        with contextlib.suppress(ValueError):
            data = json.loads(body)
            if isinstance(data, dict):
                params.update({str(k): str(v) for k, v in data.items()})
    elif body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


class _Server(uvicorn.Server):
    """uvicorn without its signal capture: Ctrl-C must stop the bench, not just this server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebhookServer:
    def __init__(self) -> None:
        self.recorder = WebhookRecorder()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        app = Starlette(routes=[Route("/hook", self._hook, methods=["GET", "POST"])])
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def _hook(self, request: Request) -> Response:
        arrived = time.perf_counter()
        body = await request.body()
        self.recorder.record(arrived, request.method, _params(request, body))
        return Response(status_code=200)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("webhook server stopped during startup")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        self._sock.close()
