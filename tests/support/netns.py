"""A network namespace whose UDP to the host is dropped while TCP passes: a client behind a
firewall that only lets TCP out (hotel, corporate and some mobile networks).

``udp_blocked_namespace()`` creates, as root:

* a namespace ``atr<pid>n<k>`` with ``lo`` up and one end of a veth pair, ``10.x.y.2/30``;
* the other end in the root namespace, ``10.x.y.1/30`` (a /30 no local address or route uses), so
  servers the test starts on that address are reachable from the namespace over the veth;
* in the namespace, an nftables table that drops every UDP packet out of and into the veth (with
  counters: :meth:`UdpBlockedNamespace.dropped_udp` says how many packets the firewall dropped),
  and nothing else: TCP (signaling, TURN over TCP) passes.

On leaving the block, even after a failure: every process still in the namespace is killed (only
processes of this namespace, which the test started, by their pid), then the namespace and the
veth are deleted.

Needs ``ip`` (iproute2) and ``nft`` (nftables): scripts/install-browser-deps.sh installs both.
Where the kernel or the container refuses namespaces, veths or nftables (an unprivileged
container), :class:`NamespacesUnavailable` carries the exact command and error, for a skip.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

INSTALL_HINT = "scripts/install-browser-deps.sh installs iproute2 and nftables"
TABLE = "atrium_udp_block"

# What a kernel or container that does not allow this says: EPERM, EACCES, or no such feature.
_REFUSALS = ("Operation not permitted", "Permission denied", "not supported", "Not supported")
_counter = itertools.count()


class NamespacesUnavailable(Exception):
    """This machine does not let the test build the namespace (the message says what refused)."""


class ToolMissing(Exception):
    """``ip`` or ``nft`` is not installed."""


@dataclass(frozen=True)
class UdpBlockedNamespace:
    name: str
    host_interface: str
    namespace_interface: str
    host_address: str  # the root namespace's end of the veth: where the servers listen
    namespace_address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def dropped_udp(self) -> dict[str, int]:
        """Packets the namespace's firewall dropped: ``{"out": n, "in": m}``."""
        listing = json.loads(_run(self.command(["nft", "-j", "list", "table", "inet", TABLE])))
        dropped = {"out": 0, "in": 0}
        for item in listing.get("nftables", []):
            rule = item.get("rule")
            if not rule:
                continue
            direction = "out" if rule.get("chain") == "output" else "in"
            for expression in rule.get("expr", []):
                if "counter" in expression:
                    dropped[direction] += int(expression["counter"]["packets"])
        return dropped

    def pids(self) -> list[int]:
        listed = _run(["ip", "netns", "pids", self.name], check=False)
        return [int(p) for p in listed.split()]


def _run(argv: Sequence[str], *, input: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        list(argv), input=input, capture_output=True, text=True, timeout=15, check=False
    )
    if check and result.returncode != 0:
        error = (result.stderr or result.stdout).strip()
        message = f"`{' '.join(argv)}` failed ({result.returncode}): {error}"
        if any(refusal in error for refusal in _REFUSALS):
            raise NamespacesUnavailable(message)
        raise RuntimeError(message)
    return result.stdout


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.200.0.0-10.254.255.255 that overlaps no local address or route."""
    taken: list[ipaddress.IPv4Network] = []
    for route in json.loads(_run(["ip", "-j", "-4", "route", "show", "table", "all"]) or "[]"):
        destination = route.get("dst", "")
        if destination in ("default", "") or not destination[0].isdigit():
            continue
        with contextlib.suppress(ValueError):
            taken.append(ipaddress.IPv4Network(destination, strict=False))
    for link in json.loads(_run(["ip", "-j", "-4", "address", "show"]) or "[]"):
        for address in link.get("addr_info", []):
            with contextlib.suppress(ValueError, KeyError):
                taken.append(
                    ipaddress.IPv4Network(f"{address['local']}/{address['prefixlen']}", False)
                )
    chooser = random.Random()
    for _ in range(1000):
        second, third = chooser.randint(200, 254), chooser.randint(0, 255)
        fourth = chooser.randrange(0, 256, 4)
        subnet = ipaddress.IPv4Network(f"10.{second}.{third}.{fourth}/30")
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise RuntimeError("no free /30 in 10.200.0.0-10.254.255.255 for the test's veth pair")


def _rules(interface: str) -> str:
    return f"""
table inet {TABLE} {{
    chain output {{
        type filter hook output priority filter; policy accept;
        oifname "{interface}" meta l4proto udp counter drop
    }}
    chain input {{
        type filter hook input priority filter; policy accept;
        iifname "{interface}" meta l4proto udp counter drop
    }}
}}
"""


@contextlib.contextmanager
def udp_blocked_namespace() -> Iterator[UdpBlockedNamespace]:
    """The namespace described in the module docstring; torn down on leaving the block."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            raise ToolMissing(f"`{tool}` is not installed ({INSTALL_HINT})")
    tag = f"{os.getpid()}n{next(_counter)}"
    subnet = _free_subnet()
    host_address, namespace_address = (str(a) for a in subnet.hosts())
    namespace = UdpBlockedNamespace(
        name=f"atr{tag}",
        host_interface=f"atrh{tag}"[:15],
        namespace_interface=f"atrv{tag}"[:15],
        host_address=host_address,
        namespace_address=namespace_address,
    )
    created_namespace = created_link = False
    try:
        _run(["ip", "netns", "add", namespace.name])
        created_namespace = True
        veth = [namespace.host_interface, "type", "veth", "peer", "name"]
        _run(["ip", "link", "add", *veth, namespace.namespace_interface, "netns", namespace.name])
        created_link = True
        _run(["ip", "address", "add", f"{host_address}/30", "dev", namespace.host_interface])
        _run(["ip", "link", "set", namespace.host_interface, "up"])
        inside = ["ip", "-n", namespace.name]
        address = [f"{namespace_address}/30", "dev", namespace.namespace_interface]
        _run([*inside, "address", "add", *address])
        _run([*inside, "link", "set", namespace.namespace_interface, "up"])
        _run([*inside, "link", "set", "lo", "up"])
        _run(namespace.command(["nft", "-f", "-"]), input=_rules(namespace.namespace_interface))
        yield namespace
    finally:
        if created_namespace:
            for pid in namespace.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _run(["ip", "netns", "delete", namespace.name], check=False)
        if created_link:  # gone with the namespace, unless a process kept the namespace alive
            _run(["ip", "link", "delete", namespace.host_interface], check=False)
