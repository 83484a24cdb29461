"""Subprocesses the benchmark starts (Atrium services, the floor) and stops, whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from atrium_cli.embedded import free_port
from tests.support.ready import wait_ready  # the tests' readiness wait, not a copy of it

REPO_ROOT = Path(__file__).resolve().parent.parent


class ProcessFailed(RuntimeError):
    pass


class Process:
    """``python -m <module>`` in its own session, logging to a file, ready when /readyz is 200."""

    def __init__(
        self,
        name: str,
        module: str,
        env: Mapping[str, str],
        log_dir: Path,
        ready_port: int | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.health_port = free_port()
        self.ready_port = ready_port or self.health_port
        self.env = {**env, "ATRIUM_HEALTH_PORT": str(self.health_port)}
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> Process:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float) -> None:
        assert self.process is not None, "launch() first"
        wait_ready(
            self.process,
            f"http://127.0.0.1:{self.ready_port}/readyz",
            name=self.name,
            timeout=timeout,
            log=self.log_tail,
            error=ProcessFailed,
        )

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful drain); SIGKILL to its process group if it is still up after that."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            # Still running, so its pid (= its session's group id) cannot have been reused.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
