"""Twilio-style SIDs: a two-letter prefix followed by 32 lowercase hex digits."""

from __future__ import annotations

import re
import secrets

ACCOUNT = "AC"
API_KEY = "SK"
ROOM = "RM"
PARTICIPANT = "PA"
TRACK = "MT"
RECORDING = "RT"

_SID_RE = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def new_sid(prefix: str) -> str:
    """Return a fresh random SID with the given two-letter prefix."""
    if len(prefix) != 2 or not prefix.isupper():
        raise ValueError(f"SID prefix must be two capital letters, got {prefix!r}")
    return prefix + secrets.token_hex(16)


def is_sid(value: str, prefix: str) -> bool:
    """True when ``value`` has the shape of a SID with ``prefix``."""
    return bool(_SID_RE.match(value)) and value.startswith(prefix)
