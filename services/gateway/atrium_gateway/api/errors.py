"""Every failure answered as Twilio answers it: its JSON error body and HTTP status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.infra import UNREACHABLE, unavailable

log = logging.getLogger("atrium.gateway.api")


def error_response(exc: AtriumError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="Atrium"'} if exc.status == 401 else None
    return JSONResponse(exc.body().model_dump(), status_code=exc.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AtriumError)
    async def atrium_error(request: Request, exc: AtriumError) -> JSONResponse:
        return error_response(exc)

    async def backend_unreachable(request: Request, exc: Exception) -> JSONResponse:
        """Redis or NATS down (the account lookup of every request, an RPC): 20503, never a
        bare 500; the client may retry."""
        log.warning(
            "%s %s: %s unreachable: %s", request.method, request.url.path, type(exc).__name__, exc
        )
        return error_response(unavailable(exc))

    for unreachable in UNREACHABLE:
        app.add_exception_handler(unreachable, backend_unreachable)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(str(err.get("loc", ["?"])[-1]) for err in exc.errors())
        return error_response(
            AtriumError(errors.INVALID_PARAMETER, f"Invalid parameter: {fields}", 400)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Starlette's own 404 and 405 (no such route, no such method), in Twilio's words."""
        if exc.status_code == 404:
            return error_response(errors.not_found(request.url.path.removeprefix("/v1")))
        if exc.status_code == 405:
            return error_response(AtriumError(errors.METHOD_NOT_ALLOWED, "Method not allowed", 405))
        return error_response(
            AtriumError(errors.INVALID_PARAMETER, str(exc.detail), exc.status_code)
        )
