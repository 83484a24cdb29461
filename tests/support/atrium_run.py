"""`atrium run` as a real supervisor process in tests: started the way `make run` starts it,
minus the terminal (stdin closed, output to a file), watched through what it prints and through
the process table, and torn down with everything it started."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis as SyncRedis

from tests.support.waiting import eventually_sync

REAL_STACK_READY_SECONDS = 120.0
STAND_IN_READY_SECONDS = 60.0
STOP_SECONDS = 60.0
# Variables of the developer's shell that would change what `atrium run` does.
INHERITED_SETTINGS = (
    "NATS_URL",
    "REDIS_URL",
    "ATRIUM_NATS_URL",
    "ATRIUM_REDIS_URL",
    "ATRIUM_ACCOUNT_SID",
    "ATRIUM_AUTH_TOKEN",
    "ATRIUM_API_KEY_SID",
    "ATRIUM_API_KEY_SECRET",
    "ATRIUM_RUN_COMMANDS",
    "ATRIUM_HEALTH_PORT",
    "ATRIUM_PUBLIC_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


# Process table -----------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first, then ppid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def process_tree(root: int) -> dict[int, str]:
    """Every descendant of ``root``, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found[pid] = _cmdline(pid)
        pending.extend(children.get(pid, []))
    return found


def still_running(processes: dict[int, str]) -> dict[int, str]:
    """Those of ``processes`` that still run (same pid and command line, not a zombie)."""
    alive = {}
    for pid, cmdline in processes.items():
        fields = _stat_fields(pid)
        if fields is not None and fields[0] != "Z" and _cmdline(pid) == cmdline:
            alive[pid] = cmdline
    return alive


def wait_until_gone(processes: dict[int, str], timeout: float) -> dict[int, str]:
    """Those of ``processes`` still running after waiting up to ``timeout`` for them to end."""
    try:
        eventually_sync(lambda: not still_running(processes), timeout=timeout)
    except AssertionError:
        pass
    return still_running(processes)


# `atrium run` as a process -----------------------------------------------------------------------
def redis_client(url: str) -> SyncRedis[str]:
    return SyncRedis.from_url(url, decode_responses=True)


def run_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in INHERITED_SETTINGS}
    env.update(extra)
    return env


@dataclass
class Banner:
    base_url: str
    account_sid: str
    auth_token: str
    api_key_sid: str
    api_key_secret: str
    nats_url: str
    redis_url: str


class AtriumRun:
    """`atrium run` in ``workdir``, with stdin closed and stdout+stderr going to a file."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.output_path = workdir / f"atrium-run-{time.monotonic_ns()}.log"
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "atrium_cli.main", "run"],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started: dict[int, str] = {}

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` matches of ``pattern`` in the output, once there are that many."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            matches = list(regex.finditer(self.output()))
            if len(matches) >= count:
                return matches[:count]
            if self.process.poll() is not None:
                matches = list(regex.finditer(self.output()))
                if len(matches) >= count:
                    return matches[:count]
                pytest.fail(
                    f"atrium run exited with {self.process.returncode} before printing "
                    f"{pattern!r}:\n{self.output()[-6000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} after {timeout}s:\n{self.output()[-6000:]}")
            time.sleep(0.05)

    def wait_for_banner(self, timeout: float) -> Banner:
        self.wait_for(r"^Press Ctrl-C to stop\.$", timeout)
        # Everything it started is up now: remember it, to check that it all stops.
        self.started = process_tree(self.process.pid)
        text = self.output()

        def field(label: str) -> str:
            match = re.search(rf"^\s*{re.escape(label)}:\s+(\S+)\s*$", text, re.MULTILINE)
            assert match is not None, f"no {label} in:\n{text}"
            return match.group(1)

        return Banner(
            base_url=field("REST API base URL"),
            account_sid=field("Account SID"),
            auth_token=field("Auth Token"),
            api_key_sid=field("API Key SID"),
            api_key_secret=field("API Key Secret"),
            nats_url=field("NATS"),
            redis_url=field("Redis"),
        )

    def stop(self, timeout: float = STOP_SECONDS) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"atrium run still running {timeout}s after SIGTERM:\n{self.output()}")

    def kill_everything(self) -> None:
        """Teardown after a failure: nothing this test started may outlive it."""
        self.started.update(process_tree(self.process.pid))
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in still_running(self.started):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def start_run(runs: list[AtriumRun], workdir: Path, env: dict[str, str]) -> AtriumRun:
    run = AtriumRun(workdir, env)
    runs.append(run)
    return run


def assert_stops_cleanly(run: AtriumRun) -> None:
    assert run.started, "took no snapshot of the processes atrium run started"
    assert run.stop() == 0, run.output()[-6000:]
    left = wait_until_gone(run.started, timeout=10)
    assert not left, f"left running after atrium run exited: {left}"
    assert not (run.workdir / ".atrium" / "run.env").exists(), "run.env outlived the stack"


def http_get(url: str, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def pids_running(run: AtriumRun, program: str) -> list[int]:
    """The children of ``run`` running ``program``: an executable's name, or a module run with
    ``python -m``."""
    return [
        pid
        for pid, cmdline in process_tree(run.process.pid).items()
        if Path(cmdline.split(" ", 1)[0]).name == program or f" -m {program}" in cmdline
    ]


def child_pid(run: AtriumRun, program: str) -> int:
    """The pid of the one running child of ``run`` running ``program``."""
    [pid] = pids_running(run, program)
    return pid


def kill_child(run: AtriumRun, program: str) -> int:
    """kill -9 the child running ``program``; its pid."""
    pid = child_pid(run, program)
    os.kill(pid, signal.SIGKILL)
    return pid


def serves_rest(banner: Banner) -> bool:
    """REST answers with its own data again: auth (Redis) and a room list (NATS + room service)."""
    rooms = f"{banner.base_url}/Rooms"
    try:
        return http_get(rooms, (banner.account_sid, banner.auth_token)) == 200
    except OSError:
        return False
