"""Short-lived TURN credentials, as coturn's ``use-auth-secret`` (the TURN REST API) checks them.

The gateway hands each client that asks (``iced``) a username ``<expiry>:<user>`` and a password
``base64(HMAC-SHA1(secret, username))``. The TURN server, sharing only the secret, recomputes the
password and refuses a username whose expiry has passed; nothing is stored, and a leaked credential
stops working by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def ephemeral_credential(secret: str, user: str, now: float, ttl_seconds: int) -> tuple[str, str]:
    """(username, credential) valid until ``now + ttl_seconds`` (Unix seconds)."""
    username = f"{int(now) + ttl_seconds}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def turn_servers(
    urls: Sequence[str], secret: str, user: str, now: float, ttl_seconds: int
) -> list[dict[str, object]]:
    """The RTCIceServer entry for ``urls`` with a fresh credential (none without urls)."""
    if not urls:
        return []
    username, credential = ephemeral_credential(secret, user, now, ttl_seconds)
    return [{"urls": list(urls), "username": username, "credential": credential}]
