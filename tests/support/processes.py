"""Run Atrium services as real subprocesses (to kill -9 one, or to run gateway replicas)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from atrium_cli.embedded import free_port
from atrium_cli.supervisor import SERVICE_MODULES
from tests.support.ready import wait_ready


class ServiceProcess:
    """``python -m <the service's module>`` in its own session, logging to a file.

    Ready when ``/readyz`` answers 200: on the health port, or on the HTTP port for the gateway
    (its REST and signaling port, which is what a load balancer checks).
    """

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.health_port = free_port()
        self.env = dict(env)
        self.env["ATRIUM_HEALTH_PORT"] = str(self.health_port)
        self.env.setdefault("ATRIUM_LOG_FORMAT", "text")
        self.http_port: int | None = None
        if name == "gateway":
            self.http_port = free_port()
            self.env.update(ATRIUM_HTTP_PORT=str(self.http_port), ATRIUM_HTTP_HOST="127.0.0.1")
        self.log_path = log_dir / f"{name}-{self.health_port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port or self.health_port}/readyz"

    @property
    def signaling_url(self) -> str:
        assert self.http_port is not None, f"{self.name} serves no signaling"
        return f"ws://127.0.0.1:{self.http_port}/signaling"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", SERVICE_MODULES[self.name]],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_ready(self.process, self.ready_url, name=self.name, timeout=timeout, log=self.log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.process.returncode


async def run_to_end(*command: str, env: Mapping[str, str], timeout: float) -> tuple[int, str]:
    """Run ``command`` (stdin closed, stderr with stdout, its own session) to its end: the exit
    code and the output. Killed if still running after ``timeout`` (TimeoutError)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")
