"""Dev mode only: the demo page, twilio-video.js and a token endpoint for the dev account.

Mounted by :func:`atrium_gateway.bootstrap.bootstrap` when ``ATRIUM_DEV_MODE`` is on (``atrium run``
turns it on). ``POST /dev/token`` hands anyone who can reach the gateway a working Access Token
for the dev account, so this must never be on in production.

* ``GET /`` is ``web/demo/index.html``; ``GET /demo/<file>`` the rest of ``web/demo/``.
* ``GET /vendor/twilio-video.min.js`` is the SDK that ``scripts/install-browser-deps.sh`` put in
  ``web/node_modules``.
* ``POST /dev/token`` (form or JSON: ``identity``, optional ``room``) mints a Video Access Token.

``web/`` is found from the repository root, or at ``$ATRIUM_WEB_DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from atrium_gateway.api.dependencies import Accounts, AppSettings, BaseUrl
from atrium_gateway.ports import AccountsPort
from atrium_shared import errors
from atrium_shared.access_tokens import mint_video_token
from atrium_shared.accounts import ApiKey
from atrium_shared.errors import AtriumError
from atrium_shared.settings import Settings

MAX_IDENTITY_LENGTH = 256
INSTALL_HINT = "run: bash scripts/install-browser-deps.sh (or make install)"
# Dev files change while the page is open; never let the browser keep a stale copy.
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(include_in_schema=False)


async def dev_api_key(store: AccountsPort, settings: Settings) -> ApiKey:
    """The key to sign with: the dev account `atrium run` remembers, else the ATRIUM_* key it
    was given, else the first active account's first active key."""

    async def usable(key_sid: str | None, account_sid: str | None = None) -> ApiKey | None:
        key = await store.get_api_key(key_sid) if key_sid else None
        if key is None or key.status != "active":
            return None
        if account_sid is not None and key.account_sid != account_sid:
            return None
        account = await store.get_account(key.account_sid)
        return key if account is not None and account.status == "active" else None

    remembered = await store.dev_account()
    if remembered is not None:
        return remembered[1]
    key = await usable(settings.api_key_sid, settings.account_sid)
    if key is not None:
        return key
    for account in await store.list_accounts():
        if account.status != "active":
            continue
        for candidate in await store.list_api_keys(account.sid):
            if candidate.status == "active":
                return candidate
    raise AtriumError(
        errors.SERVICE_UNAVAILABLE,
        "No active account with an active API key to mint dev tokens for; "
        "start the stack with `atrium run`, which provisions one",
        503,
    )


async def _token_request(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise AtriumError(errors.INVALID_PARAMETER, "Body is not valid JSON", 400) from None
        if not isinstance(body, dict):
            raise AtriumError(errors.INVALID_PARAMETER, "Body must be a JSON object", 400)
        return body
    return dict(await request.form())


@router.post("/dev/token")
async def dev_token(
    request: Request, accounts: Accounts, settings: AppSettings, base: BaseUrl
) -> JSONResponse:
    body = await _token_request(request)
    identity = body.get("identity")
    room = body.get("room") or None
    if not isinstance(identity, str) or not identity.strip():
        raise AtriumError(errors.INVALID_PARAMETER, "Required parameter identity missing", 400)
    identity = identity.strip()
    if len(identity) > MAX_IDENTITY_LENGTH:
        raise AtriumError(errors.INVALID_PARAMETER, "Parameter identity is too long", 400)
    if room is not None:
        if not isinstance(room, str):
            raise AtriumError(errors.INVALID_PARAMETER, "Parameter room must be a string", 400)
        room = room.strip() or None

    key = await dev_api_key(accounts, settings)
    token = mint_video_token(
        key.account_sid, key.sid, key.secret.get_secret_value(), identity, room
    )
    scheme, _, host = base.partition("://")
    ws_server = f"{'wss' if scheme == 'https' else 'ws'}://{host}/signaling"
    return JSONResponse(
        {"token": token, "identity": identity, "room": room, "wsServer": ws_server},
        headers=NO_STORE,
    )


# Static files ----------------------------------------------------------------------------------
def web_dir(settings: Settings) -> Path:
    """``web/`` of this checkout (services/gateway/atrium_gateway/api/ is four levels below the
    repository root), or ``ATRIUM_WEB_DIR``."""
    if settings.web_dir:
        return Path(settings.web_dir).resolve()
    return Path(__file__).resolve().parents[4] / "web"


def _file(path: Path, missing: str) -> FileResponse:
    if not path.is_file():
        raise AtriumError(errors.NOT_FOUND, missing, 404)
    return FileResponse(path, headers=NO_STORE)


@router.get("/")
async def demo_index(settings: AppSettings) -> FileResponse:
    demo = web_dir(settings) / "demo"
    return _file(demo / "index.html", f"The demo page {demo / 'index.html'} is missing")


@router.get("/demo/{name:path}")
async def demo_file(name: str, settings: AppSettings) -> FileResponse:
    demo = (web_dir(settings) / "demo").resolve()
    path = (demo / name).resolve()
    # No escaping web/demo with ../ or a symlink.
    if not path.is_relative_to(demo):
        raise errors.not_found(f"/demo/{name}")
    return _file(path, f"The requested resource /demo/{name} was not found")


@router.get("/vendor/twilio-video.min.js")
async def twilio_video(settings: AppSettings) -> FileResponse:
    bundle = web_dir(settings) / "node_modules" / "twilio-video" / "dist" / "twilio-video.min.js"
    return _file(bundle, f"twilio-video is not installed ({bundle} is missing); {INSTALL_HINT}")
