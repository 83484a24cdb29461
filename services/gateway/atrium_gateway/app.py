"""The gateway process: REST v1 and /signaling under uvicorn (``python -m atrium_gateway.app``)."""

from __future__ import annotations

import signal

import uvicorn
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from atrium_gateway.bootstrap import bootstrap
from atrium_shared import telemetry
from atrium_shared.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The gateway on NATS and Redis, traced (the ASGI app uvicorn serves)."""
    settings = settings or get_settings()
    telemetry.setup("gateway", settings)
    app = bootstrap(settings).app
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
