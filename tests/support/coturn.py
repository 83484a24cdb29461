"""A real coturn (Debian's ``turnserver``) with ``use-auth-secret``, on a free port, for a test.

``start_coturn(directory, address)`` runs one listening and relaying on ``address`` (TCP and, unless
``udp=False``, UDP on the same port) and stops it on leaving the block. Its log (``--simple-log``,
``--verbose``) is what a test reads to see that a client allocated a relay and how much media the
relay carried: coturn writes a ``usage: ... rp=, rb=, sp=, sb=`` line per session (received and
sent packets and bytes between client and server) when the session ends.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from atrium_cli.embedded import free_udp_and_tcp_port
from tests.support.waiting import eventually_sync

INSTALL_HINT = "scripts/install-browser-deps.sh installs it"

# coturn 4.6: "session 000000000000000001: usage: realm=<atrium.test>, username=<...>, rp=1, rb=2,
# sp=3, sb=4" (received/sent packets/bytes, client side), logged when a session closes.
_USAGE = re.compile(
    r"session (?P<session>\d+): usage: realm=<[^>]*>, username=<(?P<username>[^>]*)>, "
    r"rp=(?P<rp>\d+), rb=(?P<rb>\d+), sp=(?P<sp>\d+), sb=(?P<sb>\d+)"
)


@dataclass(frozen=True)
class RelayUsage:
    """What one TURN session carried, from coturn's closing ``usage`` line."""

    session: str
    username: str
    received_packets: int
    received_bytes: int
    sent_packets: int
    sent_bytes: int


@dataclass(frozen=True)
class Coturn:
    address: str
    port: int
    secret: str
    realm: str
    log_path: Path

    def url(self, transport: str = "udp") -> str:
        return f"turn:{self.address}:{self.port}?transport={transport}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def usage(self) -> list[RelayUsage]:
        """Every ended session's usage line, in log order."""
        return [
            RelayUsage(
                m["session"],
                m["username"],
                int(m["rp"]),
                int(m["rb"]),
                int(m["sp"]),
                int(m["sb"]),
            )
            for m in _USAGE.finditer(self.log())
        ]


def accepts_tcp(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def start_coturn(
    directory: Path,
    address: str = "127.0.0.1",
    *,
    secret: str,
    realm: str = "atrium.test",
    udp: bool = True,
    timeout: float = 10.0,
) -> Iterator[Coturn]:
    """coturn listening and relaying on ``address``; ``udp=False``: TCP clients only."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise RuntimeError(f"coturn is not installed ({INSTALL_HINT})")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_udp_and_tcp_port(address)
    log_path = directory / f"turnserver-{port}.log"
    command = [
        binary,
        "-n",  # no configuration file: everything is on this command line
        f"--listening-ip={address}",
        f"--relay-ip={address}",
        f"--listening-port={port}",
        "--min-port=49160",
        "--max-port=49200",
        "--use-auth-secret",
        f"--static-auth-secret={secret}",
        f"--realm={realm}",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-stun-backward-compatibility",
        "--allow-loopback-peers",
        "--verbose",
        f"--log-file={log_path}",
        "--simple-log",
        f"--pidfile={directory / f'turnserver-{port}.pid'}",
    ]
    if not udp:
        command.append("--no-udp")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Coturn(address, port, secret, realm, log_path)
    try:
        eventually_sync(
            lambda: process.poll() is not None or accepts_tcp(address, port),
            timeout=timeout,
            message="coturn listening",
        )
        if process.poll() is not None:
            raise RuntimeError(f"coturn exited with {process.returncode}: {server.log()[-2000:]}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
