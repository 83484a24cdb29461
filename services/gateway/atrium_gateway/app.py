"""Wires the gateway: FastAPI for REST v1, the NATS broker for RPC, Redis for accounts."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from atrium_gateway import devtools, participants, rooms, subscribe_rules, tracks
from atrium_gateway.signaling import SignalingHub
from atrium_shared import errors, metrics, telemetry
from atrium_shared.accounts import AccountStore
from atrium_shared.errors import AtriumError
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.settings import Settings, get_settings

log = logging.getLogger("atrium.gateway")


def _error(exc: AtriumError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="Atrium"'} if exc.status == 401 else None
    return JSONResponse(exc.body().model_dump(), status_code=exc.status, headers=headers)


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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    telemetry.setup("gateway", settings)
    broker = make_broker(settings)
    redis = make_redis(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await broker.stop()
            await redis.aclose()

    app = FastAPI(
        title="Atrium REST API",
        version="1.0",
        summary="Twilio Programmable Video REST v1, self-hosted",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.broker = broker
    app.state.redis = redis
    app.state.accounts = AccountStore(redis)
    hub = SignalingHub(broker, app.state.accounts, settings)
    hub.register()
    app.state.signaling = hub
    app.state.ready = False
    app.include_router(rooms.router)
    app.include_router(participants.router)
    app.include_router(tracks.router)
    app.include_router(subscribe_rules.router)
    if settings.dev_mode:  # the demo page and POST /dev/token; never in production
        app.include_router(devtools.router)

    @app.exception_handler(AtriumError)
    async def atrium_error(request: Request, exc: AtriumError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(str(err.get("loc", ["?"])[-1]) for err in exc.errors())
        return _error(AtriumError(errors.INVALID_PARAMETER, f"Invalid parameter: {fields}", 400))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            path = request.url.path.removeprefix("/v1")
            return _error(errors.not_found(path))
        if exc.status_code == 405:
            return _error(AtriumError(errors.METHOD_NOT_ALLOWED, "Method not allowed", 405))
        return _error(AtriumError(errors.INVALID_PARAMETER, str(exc.detail), exc.status_code))

    @app.websocket("/signaling")
    async def signaling(socket: WebSocket) -> None:
        await hub.serve(socket)

    @app.get("/healthz", include_in_schema=False)
    @app.get("/livez", include_in_schema=False)
    async def livez() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> PlainTextResponse:
        try:
            await asyncio.wait_for(redis.ping(), 2)
            ok = app.state.ready and bool(broker.config.connection_state)
        except Exception:
            ok = False
        return PlainTextResponse("ready" if ok else "not ready", status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:  # process metrics; not routed by the proxies
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    app.add_middleware(StripTrailingSlash)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,livez,readyz,metrics")
    return app


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    settings = get_settings()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler it
    # found installed: make that handler a clean exit 0 (what Kubernetes and compose expect).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
