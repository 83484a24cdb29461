"""Drive the unmodified twilio-video.js SDK in Debian's headless Chromium.

* :class:`StaticServer` serves ``web/`` on 127.0.0.1 (a secure context, so getUserMedia works
  and ``ws://`` is allowed).
* :class:`Browser` launches the real Chromium binary (not Debian's ``/usr/bin`` wrapper, which
  does not ``exec``) in its own process group with a fresh profile and fake media devices,
  and talks the DevTools protocol (CDP) over its WebSocket with aiohttp. ``close()`` ends
  the whole process group, whatever state the browser is in.
* :class:`Page` is one tab: ``eval(js)`` (promises awaited, result returned by value),
  console messages and uncaught page errors, screenshots.

The flags follow the headless-Chromium appendix of the twilio-video signaling reference
(twilio-video-signaling.md): fake media, autoplay, loopback ICE, no background networking.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGKILL
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.tenants import mint_token as mint_token  # re-exported: bench mints with it
from tests.support.waiting import eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = REPO_ROOT / "web"
TWILIO_VIDEO_DIR = WEB_DIR / "node_modules" / "twilio-video"
TWILIO_VIDEO_BUNDLE = TWILIO_VIDEO_DIR / "dist" / "twilio-video.min.js"
ROOM_PAGE = "/test/room.html"
INSTALL_HINT = "run: bash scripts/install-browser-deps.sh"

# The real binaries. /usr/bin/chromium* are shell wrappers that do not exec the browser.
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium-headless-shell",  # Debian package chromium-headless-shell
    "/usr/lib/chromium/chromium",  # Debian package chromium (needs --headless)
)

CHROMIUM_FLAGS = (
    "--no-sandbox",  # required as root (CI); the browser only loads our own local pages
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-features=WebRtcHideLocalIpsWithMdns,Translate,MediaRouter",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class HarnessError(RuntimeError):
    """The browser or the DevTools connection misbehaved."""


class JSError(AssertionError):
    """A script evaluated in the page threw (or its promise rejected)."""

    def __init__(self, description: str, details: dict[str, Any]) -> None:
        super().__init__(description)
        self.description = description
        self.details = details


# ---------------------------------------------------------------------------------------------
# Locating things
# ---------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    """The Chromium binary to launch: ``$ATRIUM_CHROMIUM``, else Debian's real binaries."""
    override = os.environ.get("ATRIUM_CHROMIUM")
    if override:
        return override if os.access(override, os.X_OK) else None
    for candidate in CHROMIUM_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def chromium_version(binary: str) -> str:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return out.stdout.strip()


def pinned_twilio_video_version() -> str:
    """The twilio-video version that web/package.json pins (an exact version)."""
    pkg = json.loads((WEB_DIR / "package.json").read_text())
    return str(pkg["dependencies"]["twilio-video"])


def installed_twilio_video_version() -> str | None:
    try:
        pkg = json.loads((TWILIO_VIDEO_DIR / "package.json").read_text())
    except FileNotFoundError:
        return None
    if not TWILIO_VIDEO_BUNDLE.is_file():
        return None
    return str(pkg["version"])


def missing_prerequisites() -> list[str]:
    """What the browser tests need but this machine lacks (empty when all is in place)."""
    missing = []
    if find_chromium() is None:
        looked = os.environ.get("ATRIUM_CHROMIUM") or ", ".join(CHROMIUM_CANDIDATES)
        missing.append(f"no Chromium binary (looked for {looked})")
    if installed_twilio_video_version() != pinned_twilio_video_version():
        missing.append(f"twilio-video {pinned_twilio_video_version()} not in web/node_modules")
    return missing


def require_chromium() -> str:
    """The Chromium binary; skip the test when prerequisites are missing, fail under ``CI``."""
    import pytest

    missing = missing_prerequisites()
    if missing:
        reason = "; ".join(missing) + f" ({INSTALL_HINT})"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    binary = find_chromium()
    assert binary is not None
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens (just now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Static file server
# ---------------------------------------------------------------------------------------------


class StaticServer:
    """Serve a directory over HTTP on 127.0.0.1 (free port) with aiohttp."""

    def __init__(self, root: Path = WEB_DIR) -> None:
        self.root = root
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = ROOM_PAGE) -> str:
        return self.origin + path

    async def start(self) -> StaticServer:
        @web.middleware
        async def no_store(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            response = await handler(request)
            response.headers["Cache-Control"] = "no-store"
            return response

        app = web.Application(middlewares=[no_store])
        app.router.add_static("/", self.root, show_index=False, follow_symlinks=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# ---------------------------------------------------------------------------------------------
# DevTools protocol
# ---------------------------------------------------------------------------------------------

EventHandler = Callable[[dict[str, Any]], None]


class CdpConnection:
    """One WebSocket to the browser endpoint; page sessions are multiplexed (flatten mode)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession) -> None:
        self._ws = ws
        self._http = http
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._handlers: dict[str | None, list[EventHandler]] = {}
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")
        self.closed_reason: str | None = None

    @classmethod
    async def open(cls, url: str) -> CdpConnection:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, max_msg_size=0, autoping=True)
        except BaseException:
            await http.close()
            raise
        return cls(ws, http)

    def on(self, session_id: str | None, handler: EventHandler) -> None:
        """Call ``handler(message)`` for every event of ``session_id`` (None: the browser)."""
        self._handlers.setdefault(session_id, []).append(handler)

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        if self.closed_reason is not None:
            raise HarnessError(f"DevTools connection closed ({self.closed_reason}); {method}")
        msg_id = next(self._ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        try:
            await self._ws.send_str(json.dumps(message))
            response = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise HarnessError(f"DevTools {method} got no answer within {timeout}s") from None
        finally:
            self._pending.pop(msg_id, None)
        if "error" in response:
            raise HarnessError(f"DevTools {method} failed: {response['error']}")
        result: dict[str, Any] = response.get("result", {})
        return result

    async def _read(self) -> None:
        reason = "socket closed"
        try:
            async for msg in self._ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._pending.get(data["id"])
                    if future is not None and not future.done():
                        future.set_result(data)
                    continue
                for handler in self._handlers.get(data.get("sessionId"), ()):
                    handler(data)
        except Exception as exc:  # keep the reason; callers see it on their next send
            reason = f"reader failed: {exc!r}"
        finally:
            self.closed_reason = reason
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(HarnessError(f"DevTools connection lost ({reason})"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self._http.close()


@dataclass
class ConsoleMessage:
    level: str
    text: str
    source: str = "console"

    def __str__(self) -> str:
        return f"[{self.source}:{self.level}] {self.text}"


@dataclass
class Page:
    """One browser tab, attached with its own CDP session."""

    cdp: CdpConnection
    target_id: str
    session_id: str
    console: list[ConsoleMessage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions in the page
    requests: list[str] = field(default_factory=list)  # URLs of every HTTP(S) request
    websockets: list[str] = field(default_factory=list)  # URLs of every WebSocket opened
    crashed: bool = False

    def _on_event(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        params = message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            parts = [_remote_object_text(arg) for arg in params.get("args", [])]
            self.console.append(ConsoleMessage(params.get("type", "log"), " ".join(parts)))
        elif method == "Runtime.exceptionThrown":
            text = _exception_text(params.get("exceptionDetails", {}))
            self.errors.append(text)
            self.console.append(ConsoleMessage("error", text, source="exception"))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            text = entry.get("text", "")
            if entry.get("url"):
                text += f" ({entry['url']})"
            self.console.append(ConsoleMessage(entry.get("level", "info"), text, entry["source"]))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))
        elif method == "Network.webSocketCreated":
            self.websockets.append(params.get("url", ""))
        elif method in ("Inspector.targetCrashed", "Target.targetCrashed"):
            self.crashed = True
            self.errors.append("page crashed")

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.cdp.send(method, params, session_id=self.session_id)

    async def eval(self, expression: str, *, timeout: float = 30.0) -> Any:
        """Evaluate ``expression``; await it if it is a promise; return the value as JSON.

        A thrown exception or rejected promise raises :class:`JSError`.
        """
        result = await self.cdp.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": True,
                "timeout": int(timeout * 1000),
            },
            session_id=self.session_id,
            timeout=timeout + 5,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise JSError(_exception_text(details), details)
        return result.get("result", {}).get("value")

    async def wait_for(
        self, expression: str, *, timeout: float = 10.0, interval: float = 0.1
    ) -> Any:
        """Evaluate ``expression`` until it is truthy; return that value."""

        async def probe() -> Any:
            return await self.eval(expression)

        # A script that throws (JSError) ends the wait at once: it is a bug, not "not yet".
        return await eventually(
            probe, timeout=timeout, interval=interval, message=expression, retry_on=()
        )

    async def goto(self, url: str, *, ready: str | None = "window.atrium && atrium.ready") -> None:
        """Navigate, then wait until ``ready`` evaluates truthy (no fixed sleeps)."""
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise HarnessError(f"navigating to {url} failed: {result['errorText']}")
        if ready is not None:
            try:
                await self.wait_for(ready, timeout=15)
            except AssertionError:
                load_error = await self.eval("window.atrium && atrium.loadError")
                raise HarnessError(
                    f"{url} not ready: {load_error or 'window.atrium missing'}\n"
                    + self.console_text()
                ) from None

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(result["data"]))
        return path

    def foreign_urls(self) -> list[str]:
        """Requests and WebSockets to anywhere but this machine's loopback."""
        local = ("http://127.0.0.1:", "ws://127.0.0.1:", "http://localhost:", "ws://localhost:")
        return [
            url
            for url in self.requests + self.websockets
            if not url.startswith(local) and not url.startswith(("data:", "blob:", "about:"))
        ]

    def console_text(self) -> str:
        return "\n".join(str(m) for m in self.console)

    async def close(self) -> None:
        with contextlib.suppress(HarnessError):
            await self.cdp.send("Target.closeTarget", {"targetId": self.target_id}, timeout=5)


def _remote_object_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        value = obj["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type"))


def _exception_text(details: dict[str, Any]) -> str:
    exc = details.get("exception") or {}
    text = exc.get("description") or exc.get("value") or details.get("text") or "exception"
    return str(text)


# ---------------------------------------------------------------------------------------------
# Browser process
# ---------------------------------------------------------------------------------------------


class Browser:
    """A headless Chromium in its own process group, driven over CDP."""

    def __init__(self, binary: str, *, extra_flags: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.extra_flags = extra_flags
        self.profile = Path(tempfile.mkdtemp(prefix="atrium-chromium-"))
        self.log_path = self.profile / "chromium.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.cdp: CdpConnection | None = None
        self.pages: list[Page] = []
        self.version = ""

    @property
    def args(self) -> list[str]:
        args = [self.binary, *CHROMIUM_FLAGS, *self.extra_flags]
        if not self.binary.endswith("chromium-headless-shell"):
            args.append("--headless")
        args += [f"--user-data-dir={self.profile}", "about:blank"]
        return args

    async def start(self, *, timeout: float = 30.0) -> Browser:
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: close() ends it all
            )
        finally:
            log.close()
        try:
            ws_url = await self._devtools_url(timeout)
            self.cdp = await CdpConnection.open(ws_url)
            info = await self.cdp.send("Browser.getVersion")
            self.version = str(info.get("product", ""))
        except BaseException:
            await self.close()
            raise
        return self

    async def _devtools_url(self, timeout: float) -> str:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if port_file.is_file():
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"chromium exited with {self.proc.returncode} before DevTools was up:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise HarnessError(f"no DevToolsActivePort after {timeout}s:\n" + self.log_tail())
            await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def grant_media_permissions(self, origin: str) -> None:
        """Camera and microphone for ``origin``; without this Chromium hides loopback ICE
        candidates even with --allow-loopback-in-peer-connection."""
        assert self.cdp is not None
        await self.cdp.send(
            "Browser.grantPermissions",
            {"origin": origin, "permissions": ["videoCapture", "audioCapture"]},
        )

    async def new_page(self, url: str | None = None, *, ready: str | None = None) -> Page:
        """Open a tab (camera/mic granted for ``url``'s origin) and navigate to ``url``.

        For the test page, ``ready`` defaults to waiting for ``window.atrium.ready``.
        """
        assert self.cdp is not None
        target = await self.cdp.send("Target.createTarget", {"url": "about:blank"})
        target_id = target["targetId"]
        attached = await self.cdp.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        page = Page(self.cdp, target_id, attached["sessionId"])
        self.cdp.on(page.session_id, page._on_event)
        self.pages.append(page)
        for domain in ("Runtime", "Page", "Log", "Inspector", "Network"):
            await page.send(f"{domain}.enable")
        if url is not None:
            origin = "/".join(url.split("/", 3)[:3])
            if origin.startswith("http"):
                await self.grant_media_permissions(origin)
            if ready is None and ROOM_PAGE in url:
                ready = "window.atrium && (atrium.ready || !!atrium.loadError)"
            await page.goto(url, ready=ready)
        return page

    async def close(self) -> None:
        """End the browser: politely over CDP, then SIGKILL its whole process group."""
        if self.cdp is not None:
            with contextlib.suppress(Exception):
                await self.cdp.send("Browser.close", timeout=5)
            await self.cdp.close()
            self.cdp = None
        if self.proc is not None:
            deadline = time.monotonic() + 5
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            pgid = self.proc.pid
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            # Renderer, GPU and zygote processes take a moment to die after SIGKILL.
            deadline = time.monotonic() + 5
            while process_group_alive(pgid) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            self.proc = None
        await asyncio.to_thread(_rmtree, self.profile)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def process_group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process of group ``pgid`` exists.

    Killed children are reparented to PID 1, which may reap them only later; a zombie holds
    no resources, so it does not count.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def random_identity(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
