"""Probes and process metrics, outside the REST API (and not routed by the proxies)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from atrium_gateway.api.dependencies import Ports
from atrium_shared import metrics
from atrium_shared.health import PID_HEADER

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
@router.get("/livez")
async def livez() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/readyz")
async def readyz(request: Request, ports: Ports) -> PlainTextResponse:
    """Ready once started and while every connection the gateway needs answers."""
    try:
        answers = [await probe.ready() for probe in ports.readiness]
        ok = request.app.state.ready and all(answers)
    except Exception:
        ok = False
    return PlainTextResponse(
        "ready" if ok else "not ready",
        status_code=200 if ok else 503,
        headers={PID_HEADER: str(os.getpid())},
    )


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)
