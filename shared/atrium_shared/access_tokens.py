"""Minting Access Tokens in Twilio's format (what ``twilio.jwt.access_token.AccessToken`` with a
``VideoGrant`` produces), for Atrium's own tools: the dev-mode token endpoint and the load
generator. Plain hmac/base64/json, so neither needs the ``twilio`` package. The gateway verifies
tokens (``atrium_gateway.tokens``), whoever minted them.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from hashlib import sha256
from typing import Any

DEFAULT_TTL_SECONDS = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def mint_video_token(
    account_sid: str,
    api_key_sid: str,
    api_key_secret: str,
    identity: str,
    room: str | None = None,
    *,
    ttl: int = DEFAULT_TTL_SECONDS,
    now: float | None = None,
) -> str:
    """An HS256 Access Token with a Video grant for ``identity`` (and ``room`` when given)."""
    issued = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"}
    video: dict[str, str] = {"room": room} if room else {}
    payload = {
        "jti": f"{api_key_sid}-{issued}",
        "grants": {"identity": identity, "video": video},
        "iss": api_key_sid,
        "sub": account_sid,
        "nbf": issued,
        "exp": issued + ttl,
    }
    signing_input = f"{_segment(header)}.{_segment(payload)}"
    signature = hmac.new(api_key_secret.encode(), signing_input.encode(), sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"
