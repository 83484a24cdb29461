"""The Atrium services running in the test's own event loop, on real NATS and Redis.

In-process services share the test's tracer provider, which lets a test see a whole trace. Tests
that need to kill a service use subprocesses instead (tests/support/processes.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import httpx
import uvicorn
from fastapi import FastAPI

from atrium_cli.embedded import free_port
from atrium_shared.service import ServiceRuntime
from atrium_shared.settings import Settings

# Every service of a real-time room, media worker included.
REALTIME = ("room", "participant", "track", "callback", "media")
# The services REST Rooms needs (no callbacks). The participant service needs the track service
# (it unpublishes a participant's tracks before disconnecting it).
CONTROL_PLANE = ("room", "participant", "track")


@dataclass
class Stack:
    settings: Settings
    base_url: str
    runtimes: list[ServiceRuntime] = field(default_factory=list)
    gateway: FastAPI | None = None


def _build(name: str, settings: Settings) -> ServiceRuntime:
    if name == "room":
        from atrium_room.app import build as build_room

        return build_room(settings)
    if name == "participant":
        from atrium_participant.app import build as build_participant

        return build_participant(settings)
    if name == "track":
        from atrium_track.app import build as build_track

        return build_track(settings)
    if name == "media":
        from atrium_media.app import build as build_media

        return build_media(settings)
    if name == "callback":
        from atrium_callback.app import build as build_callback

        return build_callback(settings)
    raise ValueError(name)


@contextlib.asynccontextmanager
async def running_stack(
    settings: Settings, services: Sequence[str] = ("room", "participant", "track", "callback")
) -> AsyncIterator[Stack]:
    port = free_port()
    settings = settings.model_copy(update={"http_port": port, "http_host": "127.0.0.1"})
    runtimes = [_build(name, settings) for name in services]
    for runtime in runtimes:
        await runtime.start()

    from atrium_gateway.app import create_app

    gateway = create_app(settings)
    config = uvicorn.Config(gateway, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    serve = asyncio.create_task(server.serve())
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(400):
                try:
                    if (await client.get(f"{base_url}/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if serve.done():
                    serve.result()
                await asyncio.sleep(0.025)
            else:
                raise RuntimeError("gateway did not become ready")
        yield Stack(settings, base_url, runtimes, gateway)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serve, 15)
        for runtime in reversed(runtimes):
            await runtime.stop()
