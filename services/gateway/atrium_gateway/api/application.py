"""The ASGI application: the REST routers, the signaling socket, probes, Twilio's error bodies.

:func:`atrium_gateway.bootstrap.bootstrap` builds it with real adapters or with fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atrium_gateway import wire
from atrium_gateway.api import (
    devtools,
    health,
    participants,
    recording_rules,
    recording_settings,
    recordings,
    rooms,
    signaling,
    subscribe_rules,
    tracks,
)
from atrium_gateway.api.dependencies import FORM_ERROR_STATE, GatewayPorts
from atrium_gateway.api.errors import install_error_handlers
from atrium_gateway.api.signaling import SignalingHub
from atrium_gateway.media_links import MediaUrlSigner
from atrium_shared.errors import AtriumError
from atrium_shared.settings import Settings

Step = Callable[[], Awaitable[None]]


class StripTrailingSlash:
    """Twilio's docs write resource paths with a trailing slash; the helper libraries send none.

    Both must reach the same handler without a redirect (the libraries do not follow redirects).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path.rstrip("/") or "/"
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


FORM_CONTENT_TYPE = b"application/x-www-form-urlencoded"


class CheckFormEncoding:
    """Reads an urlencoded body before the form parser does (which decodes raw bytes as Latin-1
    and invalid escapes as U+FFFD) and checks it (:func:`wire.check_urlencoded`).

    It does not answer: it leaves the error in the request's state, and the REST routes raise
    it after authenticating (a request without credentials is a 401 whatever its body). The body
    is passed on unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or ()) if scope["type"] == "http" else {}
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type != FORM_CONTENT_TYPE:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            wire.check_urlencoded("body", body)
        except AtriumError as error:
            scope = dict(scope)
            scope["state"] = {**scope.get("state", {}), FORM_ERROR_STATE: error}
        replayed = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([replayed], None, receive), send)


def _replay(messages: list[Message], last: Message | None, receive: Receive) -> Receive:
    pending = [*messages, *([last] if last is not None else [])]

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


def build_application(
    settings: Settings,
    ports: GatewayPorts,
    hub: SignalingHub,
    media_signer: MediaUrlSigner,
    *,
    on_startup: Sequence[Step] = (),
    on_shutdown: Sequence[Step] = (),
) -> FastAPI:
    """``on_startup`` runs before the app is ready (``/readyz``), ``on_shutdown`` after it.
    ``media_signer`` signs (and checks) the download URLs of recordings in the local folder."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for step in on_startup:
            await step()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            for step in on_shutdown:
                await step()

    app = FastAPI(
        title="Atrium REST API",
        version="1.0",
        summary="Twilio Programmable Video REST v1, self-hosted",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ports = ports
    app.state.signaling = hub
    app.state.media_signer = media_signer
    app.state.ready = False
    for module in (
        rooms,
        participants,
        tracks,
        subscribe_rules,
        recordings,
        recording_rules,
        recording_settings,
    ):
        app.include_router(module.router)
    app.include_router(recordings.media_files)
    if settings.dev_mode:  # the demo page and POST /dev/token; never in production
        app.include_router(devtools.router)
    app.include_router(signaling.router)
    app.include_router(health.router)
    install_error_handlers(app)
    app.add_middleware(CheckFormEncoding)
    app.add_middleware(StripTrailingSlash)
    return app
