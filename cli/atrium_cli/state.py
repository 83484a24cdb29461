"""The `.atrium/` folder of a working directory: data, remembered ports, the running stack's URLs.

`atrium run` owns it: it keeps the embedded servers' data in ``.atrium/data/``, remembers their
ports in ``.atrium/ports.json`` (so clients configured once keep working across restarts), keeps
the embedded coturn's generated secret in ``.atrium/turn.secret`` (mode 0600), and writes
``.atrium/run.env`` while the stack runs so that the other commands find NATS and Redis.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

STATE_DIR_NAME = ".atrium"
RUN_ENV_NAME = "run.env"


@dataclass(frozen=True)
class StateDir:
    root: Path

    @classmethod
    def in_directory(cls, directory: Path) -> StateDir:
        return cls(directory / STATE_DIR_NAME)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def run_env_file(self) -> Path:
        return self.root / RUN_ENV_NAME

    @property
    def lock_file(self) -> Path:
        return self.root / "run.lock"

    @property
    def turn_secret_file(self) -> Path:
        """The embedded coturn's generated shared secret (when ATRIUM_TURN_SECRET is unset)."""
        return self.root / "turn.secret"

    def remembered_ports(self) -> dict[str, int]:
        try:
            raw = json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(raw, dict):
            return {}
        return {str(name): int(port) for name, port in raw.items() if isinstance(port, int)}

    def remember_ports(self, ports: dict[str, int]) -> None:
        merged = {**self.remembered_ports(), **ports}
        write_atomically(self.ports_file, json.dumps(merged, indent=2, sort_keys=True) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Readers never see a half-written file: write a sibling, then rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)


def write_secret_file(path: Path, text: str) -> None:
    """Like :func:`write_atomically`, readable and writable only by this user from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    partial.replace(path)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; blank lines and ``#`` comments are skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: dict[str, str], comment: str) -> None:
    lines = [f"# {comment}"] + [f"{key}={value}" for key, value in values.items()]
    write_atomically(path, "\n".join(lines) + "\n")


def find_run_env(start: Path) -> Path | None:
    """The nearest ``.atrium/run.env`` in ``start`` or a parent, as git finds ``.git``."""
    for directory in (start, *start.parents):
        candidate = directory / STATE_DIR_NAME / RUN_ENV_NAME
        if candidate.is_file():
            return candidate
    return None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option servers use, so a port in TIME_WAIT after our last run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
