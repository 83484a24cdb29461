"""Verification of Twilio Access Tokens (JWT, HS256) as twilio's helper libraries mint them.

Each defect maps to the 2010x code the client SDKs know, so twilio-video.js shows the same error it
would show against Twilio. Pure functions: the caller supplies the API key lookup.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from atrium_shared.accounts import ApiKey
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


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_segment(segment: str, code: int) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise TokenError(code) from None
    if not isinstance(value, dict):
        raise TokenError(code)
    return value


ApiKeyLookup = Callable[[str], Awaitable[ApiKey | None]]


async def verify_video_token(
    token: str, lookup_key: ApiKeyLookup, now: float | None = None
) -> VideoClaims:
    """Check signature, lifetime, issuer/subject and the video grant; raise TokenError."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not all(parts):
        raise TokenError(TOKEN_INVALID)
    header = _json_segment(parts[0], TOKEN_INVALID_HEADER)
    if header.get("alg") != "HS256" or header.get("typ", "JWT") != "JWT":
        raise TokenError(TOKEN_INVALID_HEADER)
    if header.get("cty", "twilio-fpa;v=1") != "twilio-fpa;v=1":
        raise TokenError(TOKEN_INVALID_HEADER)
    payload = _json_segment(parts[1], TOKEN_INVALID)

    issuer, subject = payload.get("iss"), payload.get("sub")
    if not isinstance(issuer, str) or not isinstance(subject, str):
        raise TokenError(TOKEN_INVALID_ISSUER)
    key = await lookup_key(issuer)
    if key is None or key.status != "active" or key.account_sid != subject:
        raise TokenError(TOKEN_INVALID_ISSUER)

    secret = key.secret.get_secret_value().encode()
    expected = hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), sha256).digest()
    try:
        signature = _b64decode(parts[2])
    except (binascii.Error, ValueError):
        raise TokenError(TOKEN_INVALID_SIGNATURE) from None
    if not hmac.compare_digest(expected, signature):
        raise TokenError(TOKEN_INVALID_SIGNATURE)

    current = time.time() if now is None else now
    expires = payload.get("exp")
    if not isinstance(expires, int) or expires + CLOCK_SKEW_SECONDS < current:
        raise TokenError(TOKEN_EXPIRED)
    not_before = payload.get("nbf")
    if not_before is not None and (
        not isinstance(not_before, int) or not_before - CLOCK_SKEW_SECONDS > current
    ):
        raise TokenError(TOKEN_NOT_YET_VALID)

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
