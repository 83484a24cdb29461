"""HTTP Basic auth against Atrium accounts: Account SID + Auth Token, or API Key SID + Secret."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from atrium_shared import errors
from atrium_shared.accounts import Account, AccountStore
from atrium_shared.errors import AtriumError


class AuthenticationFailed(AtriumError):
    def __init__(self, message: str) -> None:
        super().__init__(errors.AUTHENTICATE, message, 401)


def _credentials(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthenticationFailed("Authentication Error - No credentials provided")
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed("Authenticate") from None
    if not sep:
        raise AuthenticationFailed("Authenticate")
    return username, password


async def authenticated_account(request: Request) -> Account:
    """FastAPI dependency: the account the request's credentials belong to, or a 20003 (401)."""
    username, password = _credentials(request)
    store: AccountStore = request.app.state.accounts
    account = await store.authenticate(username, password)
    if account is None:
        raise AuthenticationFailed("Authenticate")
    return account
