"""Waiting for a started process to answer ``GET /readyz`` with 200: the one readiness wait of the
tests (service subprocesses, image entry points) and of the benchmark (``bench/procs.py``)."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Callable

from tests.support.waiting import eventually_sync


def answers_200(url: str, timeout: float = 1.0) -> bool:
    """Whether ``GET url`` answers 200 now (a refused or failed request is a no)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def wait_ready(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    name: str,
    timeout: float,
    log: Callable[[], str] = str,
    error: Callable[[str], BaseException] = RuntimeError,
    interval: float = 0.05,
) -> None:
    """Poll ``url`` until it answers 200. ``error(text)`` (with the tail of ``log()``) is raised as
    soon as ``process`` exits, or at the deadline."""

    def ready() -> bool:
        if process.poll() is not None:
            raise error(f"{name} exited with {process.returncode} before it was ready:\n{log()}")
        return answers_200(url)

    def not_ready(text: str) -> BaseException:
        return error(f"{name} not ready ({text}):\n{log()}")

    eventually_sync(
        ready, timeout=timeout, interval=interval, message=url, error=not_ready, retry_on=()
    )
