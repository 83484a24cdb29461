"""What every REST handler of the gateway needs: the account, base URL, RPC and JSON replies."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atrium_gateway.auth import authenticated_account
from atrium_shared.accounts import Account
from atrium_shared.rpc import call

ResultT = TypeVar("ResultT", bound=BaseModel)

Auth = Annotated[Account, Depends(authenticated_account)]


def base_url(request: Request) -> str:
    """ATRIUM_PUBLIC_URL when set, otherwise the scheme and Host the client used."""
    configured: str | None = request.app.state.settings.public_url
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


async def rpc(
    request: Request, subject: str, body: BaseModel, result_type: type[ResultT]
) -> ResultT:
    state = request.app.state
    return await call(state.broker, subject, body, result_type, state.settings.rpc_timeout_seconds)


def json_response(resource: BaseModel, status: int) -> JSONResponse:
    return JSONResponse(resource.model_dump(mode="json"), status_code=status)


def filters_in_order(*pairs: tuple[str, str | None]) -> list[tuple[str, str]]:
    """List filters as Twilio echoes them in ``meta`` URLs: in its order, unset ones left out."""
    return [(name, value) for name, value in pairs if value is not None]
