"""Host-candidate control for aioice: gather 127.0.0.1 and/or a fixed address list.

aioice never gathers loopback addresses, so peers on a loopback-only host (tests, a local dev stack)
never connect. :func:`configure_host_addresses` rebinds ``aioice.ice.get_host_addresses`` (a
module global looked up at gathering time) once per process:

* ``ATRIUM_MEDIA_HOST_ADDRESSES`` set (e.g. ``127.0.0.1`` or ``10.0.0.5,127.0.0.1``): gather exactly
  these addresses (IPv4/IPv6 ones kept according to aioice's use_ipv4/use_ipv6 flags). This is also
  the production way to pin the public NIC address.
* unset or empty: aioice's own addresses plus 127.0.0.1.

Every address costs one UDP socket per ICE transport.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Sequence

import aioice.ice

from atrium_media import aiortc_compat  # noqa: F401  (checks the private names at import)

LOOPBACK = "127.0.0.1"

_original: Callable[..., list[str]] = aioice.ice.get_host_addresses
_lock = threading.Lock()
_configured: tuple[str, ...] | None = None


def parse_addresses(value: str) -> tuple[str, ...]:
    """Parse a comma list of IP addresses; raises ValueError on anything else."""
    result: list[str] = []
    for part in value.split(","):
        item = part.strip()
        if not item:
            continue
        result.append(str(ipaddress.ip_address(item)))
    return tuple(dict.fromkeys(result))


def _filtered(addresses: Sequence[str], use_ipv4: bool, use_ipv6: bool) -> list[str]:
    out: list[str] = []
    for address in addresses:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            out.append(address)
    return out


def _make_fixed(addresses: tuple[str, ...]) -> Callable[..., list[str]]:
    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return _filtered(addresses, use_ipv4, use_ipv6)

    return get_host_addresses


def _with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    found = list(_original(use_ipv4=use_ipv4, use_ipv6=use_ipv6))
    if use_ipv4 and LOOPBACK not in found:
        found.append(LOOPBACK)
    return found


def configure_host_addresses(addresses: Sequence[str] | None = None) -> tuple[str, ...] | None:
    """Install the host-address policy (idempotent; the first call wins for the process).

    ``addresses``: the fixed list (``Settings.media_host_addresses``); ``None`` or empty means
    aioice's own addresses plus 127.0.0.1.
    Returns the fixed address list, or None for "aioice's addresses plus 127.0.0.1".
    """
    global _configured
    with _lock:
        if _configured is not None or aioice.ice.get_host_addresses is not _original:
            return _configured or None
        fixed = parse_addresses(",".join(addresses or ()))
        if fixed:
            aioice.ice.get_host_addresses = _make_fixed(fixed)
        else:
            aioice.ice.get_host_addresses = _with_loopback
        _configured = fixed
        return fixed or None


def is_configured() -> bool:
    return aioice.ice.get_host_addresses is not _original
