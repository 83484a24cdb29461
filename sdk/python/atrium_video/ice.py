"""ICE: the servers a client uses (``iced`` or the application's), and loopback candidates.

Let aioice gather 127.0.0.1, so the SDK reaches a media worker on the same host.

aioice never gathers loopback addresses; a client and a worker on one machine (a dev stack, tests,
a bot beside its server) then have no candidate pair that works everywhere. This rebinds
``aioice.ice.get_host_addresses`` (looked up at gathering time) to add 127.0.0.1 to whatever the
current function returns. Process-wide and idempotent; it only ever adds the loopback address.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aioice.ice
from aiortc import RTCIceServer

log = logging.getLogger("atrium_video")

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


def rtc_ice_servers(entries: object) -> list[RTCIceServer]:
    """RTCIceServer objects from twilio-video.js's ``iceServers`` shape (``iced``'s
    ``ice_servers``, or what an application passes to :func:`atrium_video.connect`).

    Each entry is an ``RTCIceServer`` or a mapping ``{"urls": str | [str], "username",
    "credential"}``; entries that are neither, or have no ``stun:``/``turn:``/``turns:`` URL, are
    skipped (a server hands out what it likes; a bad entry must not cost the whole join).
    aiortc then uses the first STUN and the first TURN URL it supports (``turn:`` over UDP or
    TCP, ``turns:`` over TCP), so list the TURN URL clients should use first.
    """
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        return []
    servers: list[RTCIceServer] = []
    for entry in entries:
        if isinstance(entry, RTCIceServer):
            servers.append(entry)
            continue
        if not isinstance(entry, Mapping):
            log.warning("ignoring an ICE server that is not an object")
            continue
        raw_urls = entry.get("urls", entry.get("url"))
        candidates = [raw_urls] if isinstance(raw_urls, str) else raw_urls
        urls = [
            u
            for u in (candidates if isinstance(candidates, Sequence) else [])
            if isinstance(u, str) and u.startswith(("stun:", "stuns:", "turn:", "turns:"))
        ]
        if not urls:
            log.warning("ignoring an ICE server without a stun:/turn: URL")
            continue
        username = entry.get("username")
        credential = entry.get("credential")
        servers.append(
            RTCIceServer(
                urls=urls,
                username=username if isinstance(username, str) else None,
                credential=credential if isinstance(credential, str) else None,
            )
        )
    return servers


def _turn_transport(url: str) -> str | None:
    """``udp`` or ``tcp`` for a TURN URL (``turns:`` is TLS over TCP), None for anything else."""
    if url.startswith("turns:"):
        return "tcp"
    if not url.startswith("turn:"):
        return None
    _, _, query = url.partition("?")
    for parameter in query.split("&"):
        name, _, value = parameter.partition("=")
        if name == "transport":
            return value.lower()
    return "udp"


def prefer_turn_transport(servers: Sequence[RTCIceServer], transport: str) -> list[RTCIceServer]:
    """``servers`` with the TURN URLs over ``transport`` (``udp`` or ``tcp``) first.

    aiortc relays through one TURN URL only, the first one it supports, while a server usually
    lists UDP first (it is faster) and TCP after it (it passes firewalls that drop UDP). A client
    that knows its network drops UDP asks for ``tcp`` here; the order is otherwise kept.
    """
    reordered = [
        RTCIceServer(
            urls=sorted(urls, key=lambda u: _turn_transport(u) not in (None, transport)),
            username=server.username,
            credential=server.credential,
            credentialType=server.credentialType,
        )
        for server in servers
        for urls in [[server.urls] if isinstance(server.urls, str) else list(server.urls)]
    ]
    return sorted(
        reordered,
        key=lambda server: not any(_turn_transport(u) == transport for u in server.urls),
    )
