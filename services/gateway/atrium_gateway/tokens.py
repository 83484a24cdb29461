"""Verification of Twilio Access Tokens (JWT, HS256) as twilio's helper libraries mint them,
with PyJWT, plus Twilio's own rules (a lifetime of 24 h at most, a bounded size, an active key
of an active account). Which API key SIDs exist is not revealed: an unknown key and a wrong
secret are the same 20107.

Each defect maps to the 2010x code the client SDKs know, so twilio-video.js shows the same error it
would show against Twilio. Pure functions: the caller supplies the API key lookup.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import jwt

from atrium_shared.accounts import Account, ApiKey
from atrium_shared.errors import (
    TOKEN_EXPIRED,
    TOKEN_INVALID,
    TOKEN_INVALID_GRANTS,
    TOKEN_INVALID_HEADER,
    TOKEN_INVALID_ISSUER,
    TOKEN_INVALID_SIGNATURE,
    TOKEN_NOT_YET_VALID,
)

MESSAGES = {
    TOKEN_INVALID: "Invalid Access Token",
    TOKEN_INVALID_HEADER: "Invalid Access Token header",
    TOKEN_INVALID_ISSUER: "Invalid Access Token issuer/subject",
    TOKEN_EXPIRED: "Access Token expired or expiration date invalid",
    TOKEN_NOT_YET_VALID: "Access Token not yet valid",
    TOKEN_INVALID_GRANTS: "Invalid Access Token grants",
    TOKEN_INVALID_SIGNATURE: "Invalid Access Token signature",
}

# Twilio allows a little clock skew between the minting server and itself.
CLOCK_SKEW_SECONDS = 60


class TokenError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(MESSAGES[code])
        self.code = code
        self.message = MESSAGES[code]


@dataclass(frozen=True)
class VideoClaims:
    account_sid: str
    api_key_sid: str
    identity: str
    room: str | None
    expires_at: int


# Twilio caps an Access Token's lifetime (exp - iat, or exp - now without iat) at 24 hours.
MAX_LIFETIME_SECONDS = 24 * 3600
# The longest token taken, in characters. A video token is about 500; a token carrying every
# grant with long values stays under 4 KiB. 8 KiB is also what HTTP servers and proxies commonly
# take as one header (nginx's large_client_header_buffers, Node's max header size), so a token
# that works with Twilio's other products fits. Longer ones are refused before any decoding:
# nobody makes PyJWT decode (or us look a key up for) an arbitrarily large blob.
MAX_TOKEN_LENGTH = 8 * 1024


# What a token naming an unknown API key is checked against (see verify_video_token).
_UNKNOWN_KEY_SECRET = secrets.token_urlsafe(32)


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and payload, not yet trusted: 20102 for the header, 20101 for the payload."""
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.InvalidTokenError, RecursionError):
        raise TokenError(TOKEN_INVALID_HEADER) from None
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, RecursionError):
        raise TokenError(TOKEN_INVALID) from None
    return header, payload


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


ApiKeyLookup = Callable[[str], Awaitable[ApiKey | None]]
AccountLookup = Callable[[str], Awaitable[Account | None]]


async def verify_video_token(
    token: str,
    lookup_key: ApiKeyLookup,
    now: float | None = None,
    lookup_account: AccountLookup | None = None,
) -> VideoClaims:
    """Check signature, lifetime, issuer/subject and the video grant; raise TokenError.

    ``lookup_account``, when given, must find the key's account active (as REST's Basic auth
    does): a closed account's keys sign nothing.
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3 or not all(parts):
        raise TokenError(TOKEN_INVALID)
    header, payload = _unverified(token)
    if header.get("alg") != "HS256" or header.get("typ", "JWT") != "JWT":
        raise TokenError(TOKEN_INVALID_HEADER)
    if header.get("cty", "twilio-fpa;v=1") != "twilio-fpa;v=1":
        raise TokenError(TOKEN_INVALID_HEADER)

    issuer, subject = payload.get("iss"), payload.get("sub")
    if not isinstance(issuer, str) or not isinstance(subject, str):
        raise TokenError(TOKEN_INVALID_ISSUER)
    key = await lookup_key(issuer)
    # The signature is checked first, and against a random secret when the key is unknown: a
    # token nobody signed with a real key's secret gets 20107 whether its key SID exists or not
    # (and for the same work), so guessed SIDs learn nothing. Only a correctly signed token,
    # whose minter knows the secret, hears that the key or its account is not usable (20103).
    secret = (key.secret.get_secret_value() if key is not None else _UNKNOWN_KEY_SECRET).encode()
    try:
        # PyJWT checks the signature (HS256 only) and that exp is there; the time window is
        # checked below against ``now``, which callers may set (PyJWT reads the wall clock).
        jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "require": ["exp"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.MissingRequiredClaimError:
        raise TokenError(TOKEN_EXPIRED) from None
    except (jwt.InvalidTokenError, RecursionError):
        raise TokenError(TOKEN_INVALID_SIGNATURE) from None
    if key is None:  # signed with a secret that matches a random one: never, in practice
        raise TokenError(TOKEN_INVALID_SIGNATURE)
    if key.status != "active" or key.account_sid != subject:
        raise TokenError(TOKEN_INVALID_ISSUER)
    if lookup_account is not None:
        account = await lookup_account(subject)
        if account is None or account.status != "active":
            raise TokenError(TOKEN_INVALID_ISSUER)

    current = time.time() if now is None else now
    expires, not_before, issued = payload.get("exp"), payload.get("nbf"), payload.get("iat")
    if not _is_int(expires) or not (issued is None or _is_int(issued)):
        raise TokenError(TOKEN_EXPIRED)
    if expires + CLOCK_SKEW_SECONDS < current:
        raise TokenError(TOKEN_EXPIRED)
    if not_before is not None and (
        not _is_int(not_before) or not_before - CLOCK_SKEW_SECONDS > current
    ):
        raise TokenError(TOKEN_NOT_YET_VALID)
    # Twilio's cap. Without iat, the time left counts; the minting clock may be a little ahead.
    lifetime = expires - issued if issued is not None else expires - current - CLOCK_SKEW_SECONDS
    if lifetime > MAX_LIFETIME_SECONDS:
        raise TokenError(TOKEN_EXPIRED)

    grants = payload.get("grants")
    if not isinstance(grants, dict):
        raise TokenError(TOKEN_INVALID_GRANTS)
    identity = grants.get("identity")
    video = grants.get("video")
    if not isinstance(identity, str) or not identity or not isinstance(video, dict):
        raise TokenError(TOKEN_INVALID_GRANTS)
    room = video.get("room")
    if room is not None and not isinstance(room, str):
        raise TokenError(TOKEN_INVALID_GRANTS)
    return VideoClaims(
        account_sid=subject,
        api_key_sid=issuer,
        identity=identity,
        room=room,
        expires_at=expires,
    )
