"""`atrium run`: the whole stack on one machine, for development (`make run`).

What it does, in order:

1. Takes ``.atrium/run.lock`` so two supervisors never share one data folder.
2. Starts embedded NATS (JetStream) and Redis for whichever of NATS_URL / REDIS_URL is unset, with
   data under ``.atrium/data/`` and the ports of the last run when they are still free
   (``.atrium/ports.json``); writes ``.atrium/run.env`` so the other commands find them. With
   ATRIUM_TURN_EMBEDDED=true it also starts coturn (``turnserver``, ``use-auth-secret``) and gives
   the gateway its URLs and shared secret (ATRIUM_TURN_SECRET, or one generated once and kept in
   ``.atrium/turn.secret``).
3. Provisions the credentials it prints (see :mod:`atrium_cli.provision`).
4. Starts every service (gateway, room, participant, track, recording, callback, media), one
   process each (``python -m atrium_<name>.app``), each with its own ATRIUM_HEALTH_PORT, their
   output prefixed per line; waits until each answers /readyz.
5. Prints the REST base URL and the credentials to stdout (never through logging).

Crash policy: a child (service or embedded server) that exits before it ever became ready stops
the whole run with exit code 1 (it is a bug or a misconfiguration, and restarting would only
repeat it). One that exits after it was ready is restarted with exponential backoff (1 s doubling
to 30 s, reset once it stays up 30 s), as Kubernetes would do, so a crash in development does not
take the stack down. Embedded servers come back on the same ports with the same data folders
(JetStream and the append-only file are on disk); the services reconnect to them by themselves.
Each restart is logged: which child, its exit code, the delay, and when it is ready again.

SIGINT or SIGTERM stops the services with SIGTERM, then SIGKILL after a grace period
(ATRIUM_RUN_GRACE_SECONDS, default 15), then the embedded servers, and exits 0. A second signal
skips the grace period.

For tests only: ATRIUM_RUN_COMMANDS, a JSON object mapping a service name to an argv list,
replaces that service's command (e.g. a stand-in that only serves /readyz).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from atrium_cli.connection import CliError, Endpoint, connected_redis
from atrium_cli.embedded import (
    EmbeddedServerError,
    ServerCommand,
    free_port,
    free_udp_and_tcp_port,
    nats_command,
    redis_command,
    turn_command,
)
from atrium_cli.provision import Credentials, provision
from atrium_cli.state import StateDir, port_is_free, write_env_file, write_secret_file
from atrium_shared.health import PID_HEADER
from atrium_shared.settings import Settings

log = logging.getLogger("atrium.cli.run")

SERVICE_MODULES = {
    "gateway": "atrium_gateway.app",
    "room": "atrium_room.app",
    "participant": "atrium_participant.app",
    "track": "atrium_track.app",
    "recording": "atrium_recording.app",
    "callback": "atrium_callback.app",
    "media": "atrium_media.app",
}
COMMANDS_OVERRIDE_VARIABLE = "ATRIUM_RUN_COMMANDS"
READY_TIMEOUT_VARIABLE = "ATRIUM_RUN_READY_TIMEOUT"
GRACE_VARIABLE = "ATRIUM_RUN_GRACE_SECONDS"
DEFAULT_READY_TIMEOUT_SECONDS = 90.0
DEFAULT_GRACE_SECONDS = 15.0
RESTART_BACKOFF_INITIAL_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0
STABLE_AFTER_SECONDS = 30.0
EMBEDDED_READY_TIMEOUT_SECONDS = 20.0
DUPLICATE_SIGNAL_WINDOW_SECONDS = 1.0
READY_POLL_SECONDS = 0.1
# A service may log a long line (a JSON record with a traceback); don't choke on it.
LINE_LIMIT_BYTES = 1024 * 1024


def _instances() -> list[tuple[str, str]]:
    """(child name, module) for every process to start: media-2, media-3... when scaled."""
    workers = max(1, int(os.environ.get("ATRIUM_MEDIA_WORKERS", "1") or "1"))
    instances = []
    for name, module in SERVICE_MODULES.items():
        if name == "media":
            names = [name] + [f"{name}-{i}" for i in range(2, workers + 1)]
            instances += [(worker, module) for worker in names]
        else:
            instances.append((name, module))
    return instances


_COLORS = {
    "gateway": "36",
    "room": "32",
    "participant": "34",
    "track": "94",
    "recording": "91",
    "callback": "35",
    "media": "96",
    "nats": "90",
    "redis": "90",
    "turn": "90",
    "atrium": "33;1",
}
_PREFIX_WIDTH = max(len(name) for name in _COLORS)


def line_prefix(name: str, colored: bool) -> str:
    prefix = f"{name:<{_PREFIX_WIDTH}} | "
    if colored:
        return f"\x1b[{_COLORS.get(name, '34')}m{prefix}\x1b[0m"
    return prefix


class Output:
    """The supervisor's stdout: children's lines, prefixed, and the banner. Flushed per write,
    so a file or pipe sees each line as it happens."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.colored = stream.isatty()

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            buffer = getattr(self._stream, "buffer", None)
            if buffer is not None:
                buffer.write(data)
                buffer.flush()
            else:
                self._stream.write(data.decode(errors="replace"))
                self._stream.flush()

    def child_line(self, name: str, line: bytes) -> None:
        self._write(line_prefix(name, self.colored).encode() + line.rstrip(b"\r\n") + b"\n")

    def text(self, text: str) -> None:
        self._write(text.encode())


def configure_logging() -> None:
    """The supervisor's own messages go to stderr, prefixed like a service's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(line_prefix("atrium", sys.stderr.isatty()) + "%(levelname)s %(message)s")
    )
    root = logging.getLogger("atrium.cli")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


async def http_answer(port: int, path: str, timeout: float = 1.0) -> tuple[int, int | None] | None:
    """Status code of ``GET path`` on 127.0.0.1:port and the pid the answer names (the services'
    ``X-Atrium-Pid`` header, None without it); None if nothing answers.

    Plain asyncio rather than an HTTP client library: the CLI must not need one, and a
    readiness probe needs nothing but the status line and one header.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        pid = None
        pid_header = PID_HEADER.lower().encode() + b":"
        while line := (await asyncio.wait_for(reader.readline(), timeout)).strip():
            if line.lower().startswith(pid_header):
                value = line[len(pid_header) :].strip()
                pid = int(value) if value.isdigit() else None
        return int(parts[1]), pid
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


# Whether the child with this pid is ready.
ReadyCheck = Callable[[int], Awaitable[bool]]


def http_ready(probes: list[tuple[int, str]]) -> ReadyCheck:
    """Ready when any of ``(port, path)`` answers 200 from the child itself: services serve /readyz
    on their health port; the gateway may serve it on its HTTP port instead. An answer from another
    process (one that took the port before the child could bind it) does not count."""

    async def ready(pid: int) -> bool:
        for port, path in probes:
            if await http_answer(port, path) == (200, pid):
                return True
        return False

    return ready


def service_ready(env: dict[str, str], *, serves_http: bool) -> ReadyCheck:
    """A service's /readyz on its health port (read from ``env`` at each probe, so a new port
    given for a restart counts); the gateway (``serves_http``) answers on its HTTP port too."""

    async def ready(pid: int) -> bool:
        probes = [(int(env["ATRIUM_HEALTH_PORT"]), "/readyz")]
        if serves_http:
            probes.append((int(env["ATRIUM_HTTP_PORT"]), "/readyz"))
        return await http_ready(probes)(pid)

    return ready


def server_ready(command: ServerCommand) -> ReadyCheck:
    """An embedded server's own check (blocking, about a second at most), off the event loop."""

    async def ready(pid: int) -> bool:
        return await asyncio.to_thread(command.ready)

    return ready


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready: ReadyCheck
    # Where an embedded server writes its log (its stdout is empty): quoted when it fails.
    log_path: Path | None = None


@dataclass
class Child:
    spec: ChildSpec
    output: Output
    process: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = None
    started_at: float = 0.0
    ever_ready: bool = False
    consecutive_crashes: int = 0
    stopping: bool = False
    keep_alive: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=self.spec.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=LINE_LIMIT_BYTES,
            # Its own process group: a terminal's Ctrl-C reaches only the supervisor, which then
            # stops the services in order, and a SIGKILL to the group catches their children.
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)
        self.pump = asyncio.create_task(self._pump(self.process))

    async def _pump(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line over the limit: pass on what is buffered
                line = await process.stdout.read(LINE_LIMIT_BYTES)
            if not line:
                return
            self.output.child_line(self.name, line)

    async def is_ready(self) -> bool:
        return self.process is not None and await self.spec.ready(self.process.pid)

    def log_tail(self) -> str:
        if self.spec.log_path is None:
            return "see its output above"
        try:
            tail = self.spec.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return f"no log at {self.spec.log_path}"
        return f"log {self.spec.log_path}:\n{tail}"

    def send(self, sig: signal.Signals) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL whatever is left of the process group, even after its leader exited.

        Safe against pid reuse: Linux does not hand out a pid still in use as a group id."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def drain_output(self) -> None:
        if self.pump is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.pump, 5)


def _float_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise CliError(f"{name} must be a number of seconds, got {raw!r}") from None


def _command_overrides() -> dict[str, list[str]]:
    raw = os.environ.get(COMMANDS_OVERRIDE_VARIABLE)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise TypeError
        return {str(name): [str(arg) for arg in argv] for name, argv in parsed.items()}
    except (ValueError, TypeError):
        raise CliError(
            f"{COMMANDS_OVERRIDE_VARIABLE} must be a JSON object of name -> argv list"
        ) from None


@contextlib.contextmanager
def run_lock(state: StateDir) -> Iterator[None]:
    state.root.mkdir(parents=True, exist_ok=True)
    # Opened without O_TRUNC so a loser can still read the owner's pid; the fd is not inherited
    # by children (PEP 446), so the lock dies with this process even if the services linger.
    with state.lock_file.open("a+") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            raise CliError(
                f"another `atrium run` (pid {owner}) is already using {state.root}; "
                "stop it first, or run from another directory"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


class Supervisor:
    def __init__(self, workdir: Path, output: Output) -> None:
        self.state = StateDir.in_directory(workdir)
        self.output = output
        self.stop_requested = asyncio.Event()
        self.force_kill = False
        self.first_signal_at = 0.0
        self.children: list[Child] = []
        # The embedded servers (NATS, Redis, coturn), supervised like the services; stopped after
        # them.
        self.servers: list[Child] = []
        self.turn_url: str | None = None
        self.grace_seconds = _float_from_env(GRACE_VARIABLE, DEFAULT_GRACE_SECONDS)
        self.ready_timeout = _float_from_env(READY_TIMEOUT_VARIABLE, DEFAULT_READY_TIMEOUT_SECONDS)

    # Entry point -------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            with run_lock(self.state):
                async with contextlib.AsyncExitStack() as cleanup:
                    await self._start(cleanup)
                    if not self.stop_requested.is_set():
                        await self.stop_requested.wait()
            log.info("stopped")
            return 0
        except CliError as exc:
            log.error("%s", exc)
            return exc.exit_code
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        now = time.monotonic()
        if not self.stop_requested.is_set():
            log.info("%s received: stopping (send it again to kill at once)", sig.name)
            self.first_signal_at = now
            self.stop_requested.set()
            return
        if now - self.first_signal_at < DUPLICATE_SIGNAL_WINDOW_SECONDS:
            # The same stop request delivered twice (e.g. `timeout` signals its whole process
            # group and `uv run` forwards it too), not an impatient second Ctrl-C.
            return
        log.warning("%s received again: killing the services now", sig.name)
        self.force_kill = True
        for child in self.children + self.servers:
            child.send(signal.SIGKILL)

    # Startup -----------------------------------------------------------------------------------
    async def _start(self, cleanup: contextlib.AsyncExitStack) -> None:
        try:
            settings = Settings()
        except ValidationError as exc:
            raise CliError(f"invalid ATRIUM_* / NATS_URL / REDIS_URL settings: {exc}") from None
        if not port_is_free(settings.http_port, settings.http_host):
            raise CliError(
                f"port {settings.http_port} is in use, so the gateway could not listen on it; "
                "set ATRIUM_HTTP_PORT to a free port"
            )

        cleanup.push_async_callback(self._stop_children, self.servers)
        nats_url = await self._server_url("NATS_URL", "nats")
        if self.stop_requested.is_set():
            return
        redis_url = await self._server_url("REDIS_URL", "redis")
        if self.stop_requested.is_set():
            return
        turn_env: dict[str, str] = {}
        if settings.turn_embedded:
            turn_env = await self._start_turn(settings)
            if self.stop_requested.is_set():
                return
        write_env_file(
            self.state.run_env_file,
            {
                "NATS_URL": nats_url,
                "REDIS_URL": redis_url,
                "ATRIUM_HTTP_PORT": str(settings.http_port),
                "ATRIUM_RUN_PID": str(os.getpid()),
            },
            "written by `atrium run` while it runs; removed when it stops",
        )
        cleanup.callback(self.state.run_env_file.unlink, missing_ok=True)

        async with connected_redis(Endpoint("Redis", redis_url, "atrium run")) as redis:
            credentials = await provision(redis)

        cleanup.push_async_callback(self._stop_children, self.children)
        await self._start_children(nats_url, redis_url, settings.http_port, turn_env)
        if self.stop_requested.is_set():
            return
        for child in self.children:
            child.keep_alive = asyncio.create_task(self._keep_alive(child))
        self._print_banner(settings, credentials, nats_url, redis_url)

    async def _server_url(self, variable: str, kind: str) -> str:
        for name in (variable, f"ATRIUM_{variable}"):
            if os.environ.get(name):
                log.info("using %s from $%s", kind, name)
                return os.environ[name]
        remembered = self.state.remembered_ports().get(kind)
        port = remembered if remembered and port_is_free(remembered) else free_port()
        if remembered and port != remembered:
            log.warning("port %d of the last run is taken; %s moves to %d", remembered, kind, port)
        data_dir = self.state.data_dir / kind
        try:
            command = (
                nats_command(data_dir, port) if kind == "nats" else redis_command(data_dir, port)
            )
        except EmbeddedServerError as exc:
            raise CliError(f"could not start embedded {kind}: {exc}") from None
        await self._start_server(command)
        self.state.remember_ports({kind: command.port})
        log.info("embedded %s at %s (data in %s)", kind, command.url, data_dir)
        return command.url

    async def _start_turn(self, settings: Settings) -> dict[str, str]:
        """coturn on the remembered (or a free) port of ``settings.turn_embedded_address``; the
        variables that give the gateway its URLs and secret."""
        address = settings.turn_embedded_address
        if settings.turn_urls:
            log.warning("ATRIUM_TURN_URLS is replaced by the embedded coturn's URLs")
        port = settings.turn_embedded_port or self.state.remembered_ports().get("turn")
        if port and not (port_is_free(port, address) and _udp_port_is_free(port, address)):
            if settings.turn_embedded_port:
                raise CliError(
                    f"ATRIUM_TURN_EMBEDDED_PORT {port} is in use on {address}; "
                    "set another or leave it unset for a free one"
                )
            log.warning("port %d of the last run is taken; turn moves", port)
            port = None
        secret = self._turn_secret(settings)
        try:
            command = turn_command(
                self.state.data_dir / "turn",
                secret,
                address=address,
                port=port or free_udp_and_tcp_port(address),
            )
        except (EmbeddedServerError, ValueError) as exc:
            raise CliError(f"could not start embedded coturn: {exc}") from None
        await self._start_server(command)
        self.state.remember_ports({"turn": command.port})
        self.turn_url = command.url
        log.info("embedded coturn at %s (udp and tcp, use-auth-secret)", command.url)
        urls = f"{command.url}?transport=udp,{command.url}?transport=tcp"
        return {"ATRIUM_TURN_URLS": urls, "ATRIUM_TURN_SECRET": secret}

    def _turn_secret(self, settings: Settings) -> str:
        """ATRIUM_TURN_SECRET, else the one generated by an earlier run (credentials handed out
        before a restart keep working), else a new one, kept readable only by this user."""
        if settings.turn_secret is not None and settings.turn_secret.get_secret_value():
            return settings.turn_secret.get_secret_value()
        path = self.state.turn_secret_file
        with contextlib.suppress(OSError):
            kept = path.read_text().strip()
            if kept:
                return kept
        secret = secrets.token_urlsafe(32)
        write_secret_file(path, secret + "\n")
        return secret

    async def _start_server(self, command: ServerCommand) -> None:
        """Start an embedded server as a supervised child; return once it answers."""
        spec = ChildSpec(
            command.name, command.argv, dict(os.environ), server_ready(command), command.log_path
        )
        child = Child(spec, self.output)
        self.servers.append(child)
        command.log_path.touch()
        try:
            await child.start()
        except OSError as exc:
            raise CliError(f"could not start {command.name} ({command.argv[0]}): {exc}") from None
        await self._wait_ready([child], EMBEDDED_READY_TIMEOUT_SECONDS)
        if not self.stop_requested.is_set():
            child.keep_alive = asyncio.create_task(self._keep_alive(child))

    def _child_specs(
        self, nats_url: str, redis_url: str, http_port: int, gateway_env: dict[str, str]
    ) -> list[ChildSpec]:
        """One child per service; ATRIUM_MEDIA_WORKERS media workers (default 1)."""
        overrides = _command_overrides()
        specs = []
        taken = {http_port}
        for name, module in _instances():
            # Distinct within the run: two children told the same port would both look ready
            # while one of them cannot bind it.
            health_port = free_port()
            while health_port in taken:
                health_port = free_port()
            taken.add(health_port)
            env = dict(os.environ)
            env.update(
                {
                    "NATS_URL": nats_url,
                    "REDIS_URL": redis_url,
                    "ATRIUM_HEALTH_PORT": str(health_port),
                    "ATRIUM_HTTP_PORT": str(http_port),
                    # Lines must reach the terminal as they happen, not when a buffer fills.
                    "PYTHONUNBUFFERED": "1",
                }
            )
            # Dev output is read by people: text logs unless asked otherwise.
            env.setdefault("ATRIUM_LOG_FORMAT", "text")
            if name == "gateway":
                env.setdefault("ATRIUM_DEV_MODE", "true")  # the demo page at http://HOST:PORT/
                env.update(gateway_env)
            argv = overrides.get(name.partition("-")[0], [sys.executable, "-m", module])
            specs.append(
                ChildSpec(name, argv, env, service_ready(env, serves_http=name == "gateway"))
            )
        return specs

    async def _start_children(
        self, nats_url: str, redis_url: str, http_port: int, gateway_env: dict[str, str]
    ) -> None:
        for spec in self._child_specs(nats_url, redis_url, http_port, gateway_env):
            child = Child(spec, self.output)
            self.children.append(child)
            try:
                await child.start()
            except OSError as exc:
                raise CliError(f"could not start {spec.name} ({spec.argv[0]}): {exc}") from None
        await self._wait_ready(self.children, self.ready_timeout)

    async def _wait_ready(self, children: list[Child], timeout: float) -> None:
        """Until every one of ``children`` is ready; a CliError if one exits first or time runs
        out."""
        deadline = time.monotonic() + timeout
        waiting = list(children)
        while waiting and not self.stop_requested.is_set():
            for child in list(waiting):
                assert child.process is not None
                if child.process.returncode is not None:
                    await child.drain_output()
                    raise CliError(
                        f"{child.name} exited with code {child.process.returncode} before it "
                        f"became ready; {child.log_tail()}"
                    )
                if await child.is_ready():
                    child.ever_ready = True
                    waiting.remove(child)
                    log.info("%s is ready", child.name)
            if not waiting:
                break
            if time.monotonic() > deadline:
                names = ", ".join(child.name for child in waiting)
                raise CliError(
                    f"{names} not ready after {timeout:.0f}s "
                    f"(set {READY_TIMEOUT_VARIABLE} to wait longer)"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), READY_POLL_SECONDS)

    # Running -----------------------------------------------------------------------------------
    async def _keep_alive(self, child: Child) -> None:
        """Restart ``child`` with backoff whenever it exits without being asked to."""
        while True:
            assert child.process is not None
            code = await child.process.wait()
            await child.drain_output()
            if child.stopping or self.stop_requested.is_set():
                return
            uptime = time.monotonic() - child.started_at
            if uptime >= STABLE_AFTER_SECONDS:
                child.consecutive_crashes = 0
            delay = min(
                RESTART_BACKOFF_INITIAL_SECONDS * 2**child.consecutive_crashes,
                RESTART_BACKOFF_MAX_SECONDS,
            )
            child.consecutive_crashes += 1
            log.error(
                "%s exited unexpectedly with code %s after %.1fs; restarting in %.0fs",
                child.name,
                code,
                uptime,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), delay)
            if self.stop_requested.is_set():
                return
            self._move_health_port_if_taken(child)
            try:
                await child.start()
            except OSError as exc:
                log.error("could not restart %s: %s; stopping", child.name, exc)
                self.stop_requested.set()
                return
            await self._announce_ready_again(child)

    @staticmethod
    def _move_health_port_if_taken(child: Child) -> None:
        """Another process took the dead child's health port: the restart gets a new one, or it
        would fail to bind it again and again."""
        port = child.spec.env.get("ATRIUM_HEALTH_PORT")
        if port is None or port_is_free(int(port)):
            return
        child.spec.env["ATRIUM_HEALTH_PORT"] = str(free_port())
        log.warning(
            "%s's health port %s is taken; restarting it on %s",
            child.name,
            port,
            child.spec.env["ATRIUM_HEALTH_PORT"],
        )

    async def _announce_ready_again(self, child: Child) -> None:
        """Log once the restarted ``child`` answers again (or that it did not in time)."""
        deadline = time.monotonic() + self.ready_timeout
        while not self.stop_requested.is_set() and child.running:
            if await child.is_ready():
                log.info("%s is ready again (restart %d)", child.name, child.consecutive_crashes)
                return
            if time.monotonic() > deadline:
                log.warning("%s not ready %.0fs after its restart", child.name, self.ready_timeout)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), READY_POLL_SECONDS)

    async def _stop_children(self, children: list[Child]) -> None:
        for child in children:
            child.stopping = True
        running = [child for child in children if child.running]
        for child in running:
            child.send(signal.SIGTERM)
        if running:
            log.info("stopping %s", ", ".join(child.name for child in running))
        deadline = time.monotonic() + self.grace_seconds
        for child in running:
            assert child.process is not None
            remaining = 0.0 if self.force_kill else max(deadline - time.monotonic(), 0.0)
            try:
                await asyncio.wait_for(child.process.wait(), remaining or 0.01)
            except TimeoutError:
                if not self.force_kill:
                    log.warning(
                        "%s still running after %.0fs: killing it", child.name, self.grace_seconds
                    )
                child.send(signal.SIGKILL)
                await child.process.wait()
            if child.process.returncode not in (0, -signal.SIGTERM):
                log.info("%s exited with code %s", child.name, child.process.returncode)
        for child in children:
            # The process group may outlive its leader (a service's own children): end it too.
            child.kill_group()
            await child.drain_output()
            if child.keep_alive is not None:
                child.keep_alive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await child.keep_alive

    # Banner ------------------------------------------------------------------------------------
    def _print_banner(
        self, settings: Settings, credentials: Credentials, nats_url: str, redis_url: str
    ) -> None:
        origin = f"http://127.0.0.1:{settings.http_port}"
        account = credentials.account
        key = credentials.api_key
        lines = [
            "",
            "Atrium is running.",
            "",
            f"  REST API base URL: {origin}/v1",
        ]
        if settings.public_url:
            lines.append(f"  Public URL:        {settings.public_url}")
        lines += [
            "",
            "  twilio-python:",
            "      from twilio.rest import Client",
            f'      client = Client("{key.sid}", "{key.secret.get_secret_value()}", '
            f'"{account.sid}")',
            f'      client.video.base_url = "{origin}"',
            "",
            f"  Credentials ({credentials.origin}):",
            f"      Account SID:    {account.sid}",
            f"      Auth Token:     {account.auth_token.get_secret_value()}",
            f"      API Key SID:    {key.sid}",
            f"      API Key Secret: {key.secret.get_secret_value()}",
            "",
            f"  NATS:  {nats_url}",
            f"  Redis: {redis_url}",
        ]
        if self.turn_url is not None:
            lines.append(f"  TURN:  {self.turn_url} (udp, tcp; credentials per client in `iced`)")
        lines += [
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
        self.output.text("\n".join(lines) + "\n")


def _udp_port_is_free(port: int, host: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def run_stack(workdir: Path | None = None) -> int:
    configure_logging()
    supervisor_output = Output(sys.stdout)
    return asyncio.run(Supervisor(workdir or Path.cwd(), supervisor_output).run())
