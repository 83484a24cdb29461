"""Let aioice gather 127.0.0.1, so the SDK reaches a media worker on the same host.

aioice never gathers loopback addresses; a client and a worker on one machine (a dev stack, tests,
a bot beside its server) then have no candidate pair that works everywhere. This rebinds
``aioice.ice.get_host_addresses`` (looked up at gathering time) to add 127.0.0.1 to whatever the
current function returns. Process-wide and idempotent; it only ever adds the loopback address.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import aioice.ice

LOOPBACK = "127.0.0.1"
_MARK = "_atrium_video_loopback"
_lock = threading.Lock()


def enable_loopback_candidates() -> None:
    """Make every later ICE gathering in this process include 127.0.0.1 (IPv4 only)."""
    with _lock:
        current: Callable[..., list[str]] = aioice.ice.get_host_addresses
        if getattr(current, _MARK, False):
            return

        def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            found = list(current(use_ipv4=use_ipv4, use_ipv6=use_ipv6))
            if use_ipv4 and LOOPBACK not in found:
                found.append(LOOPBACK)
            return found

        setattr(get_host_addresses, _MARK, True)
        aioice.ice.get_host_addresses = get_host_addresses


def loopback_enabled() -> bool:
    function: Any = aioice.ice.get_host_addresses
    return bool(getattr(function, _MARK, False))


def is_loopback_url(url: str) -> bool:
    """True for ws(s)://127.x / localhost / [::1] URLs."""
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"
