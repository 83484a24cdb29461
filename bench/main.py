"""Start NATS, Redis, the Atrium services and the floor; measure; report; stop everything."""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from atrium_cli.embedded import EmbeddedServer, free_port, start_nats, start_redis
from atrium_shared.accounts import AccountStore
from atrium_shared.workers import WORKERS_KEY
from bench.failover import FailoverResult, failover_figures, measure_failover
from bench.failover import unavailable as failover_unavailable
from bench.forwarding import WorkerError
from bench.join import join_figures, measure_joins
from bench.join import unavailable as join_unavailable
from bench.load import LoadResult, run_load
from bench.loadtest import LoadConfig, loadtest_figures, run_sdk_loadtest
from bench.media import (
    CpuConfig,
    LatencyResult,
    cpu_figures,
    extension_figures,
    extensions_cpu,
    forwarding_cpu,
    latency_figures,
    latency_json,
    measure_latency,
    recorder_cpu,
    recorder_figures,
    recording_cpu,
    recording_figures,
)
from bench.pipeline import PipelineProbe
from bench.procs import REPO_ROOT, Process, ProcessFailed
from bench.report import Comparison, MediaFigure, fmt, print_report, write_json
from bench.simulcast import (
    SIMULCAST_NOTE,
    SimulcastConfig,
    measure_simulcast,
    simulcast_figures,
)
from bench.simulcast import unavailable as simulcast_unavailable
from bench.stats import Summary, match_arrivals, summarize
from bench.subscribe_rules import measure_subscribe_rules, subscribe_rules_figures
from bench.subscribe_rules import unavailable as rules_unavailable
from bench.webhook import WebhookServer

RESULTS_PATH = REPO_ROOT / "bench" / "results" / "latest.json"
# A --simulcast-only run writes its own file and leaves the last full run's figures alone.
SIMULCAST_RESULTS_PATH = REPO_ROOT / "bench" / "results" / "simulcast.json"
READY_TIMEOUT = 45.0
SERVICE_MODULES = {
    "room": "atrium_room.app",
    "participant": "atrium_participant.app",
    "track": "atrium_track.app",
    "media": "atrium_media.app",
    "callback": "atrium_callback.app",
    "gateway": "atrium_gateway.app",
    "floor": "bench.http_floor",
}
DRAIN_TIMEOUT = 45.0


@dataclass(frozen=True)
class Config:
    levels: tuple[int, ...] = (1, 8, 32)
    requests: int = 800  # per level and target, after warm-up
    max_seconds: float = 8.0  # per level and target
    callbacks: int = 200
    callback_concurrency: int = 8
    callback_wait_seconds: float = 20.0
    rest: bool = True  # the create-room and callback phases
    media: bool = True  # worker CPU, media latency, join latency
    media_seconds: float = 4.0  # measured window per CPU / latency measurement
    joins: int = 10
    simulcast_only: bool = False  # of the media phases, only the simulcast one


@dataclass
class Stack:
    gateway_url: str
    floor_url: str
    nats_url: str
    redis_url: str
    callback_unavailable: str | None
    media_unavailable: str | None = None
    processes: list[Process] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # of the service processes
    log_dir: Path | None = None

    def check_alive(self) -> None:
        """Stop the run if a service died after it was ready (its log says why)."""
        for process in self.processes:
            if process.name == "callback" and self.callback_unavailable:
                continue
            if process.name == "media" and self.media_unavailable:
                continue
            if process.process is not None and process.process.poll() is not None:
                raise ProcessFailed(
                    f"{process.name} exited with {process.process.returncode} during the run:\n"
                    f"{process.log_tail()}"
                )


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # KeyboardInterrupt, not an Exception: asyncio lets it out of the loop at once, and no
    # ``except Exception`` on the way (a load worker counting errors) can swallow it.
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """Cleanup must finish even if Ctrl-C is pressed again."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _service_env(nats: EmbeddedServer, redis: EmbeddedServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "NATS_URL": nats.url,
            "REDIS_URL": redis.url,
            "ATRIUM_LOG_LEVEL": "WARNING",
            "ATRIUM_LOG_FORMAT": "text",
            "ATRIUM_HTTP_HOST": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            "ATRIUM_MEDIA_HOST_ADDRESSES": "127.0.0.1",  # ICE on loopback only
        }
    )
    return env


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def start_stack(
    console: Console, tmp: Path, servers: list[EmbeddedServer], processes: list[Process]
) -> Stack:
    console.print("[bold]starting[/] NATS (JetStream) and Redis in", tmp)
    nats = start_nats(tmp / "nats")
    servers.append(nats)
    redis = start_redis(tmp / "redis")
    servers.append(redis)
    env = _service_env(nats, redis)

    gateway_port, floor_port = free_port(), free_port()
    room = Process("room", SERVICE_MODULES["room"], env, tmp)
    participant = Process("participant", SERVICE_MODULES["participant"], env, tmp)
    track = Process("track", SERVICE_MODULES["track"], env, tmp)
    media = Process("media", SERVICE_MODULES["media"], env, tmp)
    gateway = Process(
        "gateway",
        SERVICE_MODULES["gateway"],
        {**env, "ATRIUM_HTTP_PORT": str(gateway_port)},
        tmp,
        ready_port=gateway_port,
    )
    floor = Process(
        "floor",
        SERVICE_MODULES["floor"],
        {**env, "ATRIUM_HTTP_PORT": str(floor_port)},
        tmp,
        ready_port=floor_port,
    )
    callback: Process | None = None
    callback_unavailable: str | None = None
    callback_module = SERVICE_MODULES["callback"]
    if not _importable(callback_module):
        callback_unavailable = "callback service unavailable"
        console.print(f"[yellow]skip[/] callback service: {callback_module} not found")
    else:
        callback = Process("callback", callback_module, env, tmp)

    started = [room, participant, track, gateway, floor, media] + ([callback] if callback else [])
    console.print("[bold]starting[/]", ", ".join(p.name for p in started), "(subprocesses)")
    for process in started:
        processes.append(process.launch())
    for process in (room, participant, track, gateway, floor):
        process.wait_ready(READY_TIMEOUT)
    media_unavailable: str | None = None
    try:
        media.wait_ready(READY_TIMEOUT)
    except ProcessFailed as exc:
        media.stop()
        processes.remove(media)
        media_unavailable = "media worker did not start"
        console.print(f"[yellow]skip[/] media worker did not start: {exc}")
    if callback is not None:
        try:
            callback.wait_ready(READY_TIMEOUT)
        except ProcessFailed as exc:
            callback.stop()
            processes.remove(callback)
            callback_unavailable = "callback service unavailable"
            console.print(f"[yellow]skip[/] callback service did not start: {exc}")
    console.print("[green]ready[/]")
    return Stack(
        gateway_url=f"http://127.0.0.1:{gateway_port}",
        floor_url=f"http://127.0.0.1:{floor_port}",
        nats_url=nats.url,
        redis_url=redis.url,
        callback_unavailable=callback_unavailable,
        media_unavailable=media_unavailable,
        processes=processes,
        env=env,
        log_dir=tmp,
    )


@asynccontextmanager
async def _clients(
    base_url: str, count: int, auth: tuple[str, str] | None
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client with one keep-alive connection per worker (see bench/load.py for why)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, auth=auth, limits=limits, timeout=15.0)
            )
            for _ in range(count)
        ]


def _describe(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _summary_line(label: str, summary: Summary) -> str:
    errors = f", [red]{summary.errors} errors[/]" if summary.errors else ""
    return (
        f"  [green]done[/] {label}: p50 {fmt('p50_ms', summary.p50_ms)}, "
        f"p99 {fmt('p99_ms', summary.p99_ms)}, {fmt('rps', summary.rps)} req/s "
        f"({summary.count} ok{errors})"
    )


class Bench:
    def __init__(self, stack: Stack, config: Config, progress: Progress) -> None:
        self.stack = stack
        self.config = config
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:8]
        self.auth: tuple[str, str] = ("", "")
        self.api_key: tuple[str, str] = ("", "")
        self.error_samples: dict[str, list[str]] = {}

    async def create_account(self) -> None:
        redis = Redis.from_url(self.stack.redis_url, decode_responses=True)
        try:
            store = AccountStore(redis)
            account = await store.create_account("bench")
            key = await store.create_api_key(account.sid, "bench key")
        finally:
            await redis.aclose()
        self.auth = (account.sid, account.auth_token.get_secret_value())
        self.api_key = (key.sid, key.secret.get_secret_value())

    def token(self, identity: str, room: str) -> str:
        """An Access Token (Video grant for ``room``) signed with the bench's API key."""
        from tests.browser.harness import mint_token

        return mint_token(
            identity,
            room,
            account_sid=self.auth[0],
            api_key_sid=self.api_key[0],
            api_key_secret=self.api_key[1],
        )

    async def _load(
        self, label: str, clients: list[httpx.AsyncClient], count: int, tag: str
    ) -> LoadResult:
        async def send(worker: int, i: int) -> str | None:
            data = {"UniqueName": f"bench-{self.run_id}-{tag}-{i}"}
            response = await clients[worker].post("/v1/Rooms", data=data)
            return None if response.status_code == 201 else _describe(response)

        task = self.progress.add_task(label, total=count)
        result = await run_load(
            send,
            concurrency=len(clients),
            count=count,
            max_seconds=self.config.max_seconds,
            on_done=lambda: self.progress.advance(task),
        )
        self.progress.update(task, visible=False)
        return result

    async def rest(self, target: str, base_url: str, concurrency: int) -> Summary:
        label = f"{target} create-room c={concurrency}"
        self.stack.check_alive()
        async with _clients(base_url, concurrency, self.auth) as clients:
            warm = max(20, 3 * concurrency)
            await self._load(f"{label} warm-up", clients, warm, f"{target}-w{concurrency}")
            result = await self._load(
                label, clients, self.config.requests, f"{target}-c{concurrency}"
            )
        self.stack.check_alive()
        summary = summarize(result.latencies_s, result.elapsed_s, result.errors)
        if result.error_samples:
            self.error_samples[label] = result.error_samples
        self.progress.console.print(_summary_line(label, summary))
        return summary

    async def _await_arrivals(
        self, webhook: WebhookServer, keys: list[str], timeout: float
    ) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(webhook.recorder.arrived(key) is not None for key in keys):
                return
            await asyncio.sleep(0.02)

    async def _callbacks(
        self,
        webhook: WebhookServer,
        clients: list[httpx.AsyncClient],
        count: int,
        tag: str,
        label: str,
    ) -> tuple[dict[str, float], dict[str, float], LoadResult]:
        sent: dict[str, float] = {}
        answered: dict[str, float] = {}

        async def send(worker: int, i: int) -> str | None:
            name = f"bench-{self.run_id}-{tag}-{i}"
            callback = f"{webhook.url}?k={name}"
            sent[name] = time.perf_counter()
            response = await clients[worker].post(
                "/v1/Rooms", data={"UniqueName": name, "StatusCallback": callback}
            )
            if response.status_code != 201:
                del sent[name]
                return _describe(response)
            answered[name] = time.perf_counter()
            return None

        task = self.progress.add_task(label, total=count)
        result = await run_load(
            send,
            concurrency=len(clients),
            count=count,
            max_seconds=self.config.max_seconds * 2,
            on_done=lambda: self.progress.advance(task),
        )
        self.progress.update(task, visible=False)
        wait = self.progress.add_task(f"{label}: waiting for webhooks", total=None)
        await self._await_arrivals(webhook, list(sent), self.config.callback_wait_seconds)
        self.progress.update(wait, visible=False)
        return sent, answered, result

    async def atrium_callbacks(self, webhook: WebhookServer) -> tuple[Summary, dict[str, Any]]:
        c = self.config.callback_concurrency
        label = f"atrium callback c={c}"
        self.stack.check_alive()
        async with _clients(self.stack.gateway_url, c, self.auth) as clients:
            await self._callbacks(webhook, clients, max(16, 2 * c), "cbw", f"{label} warm-up")
            sent, answered, created = await self._callbacks(
                webhook, clients, self.config.callbacks, "cb", label
            )
        arrivals = {k: t for k in sent if (t := webhook.recorder.arrived(k)) is not None}
        latencies, missing = match_arrivals(sent, arrivals)
        after_response, _ = match_arrivals(answered, arrivals)
        span = (max(arrivals.values()) - min(sent.values())) if arrivals else 0.0
        summary = summarize(latencies, span, errors=created.errors + len(missing))
        events = collections.Counter(
            d.params.get("StatusCallbackEvent", "?") for d in webhook.recorder.deliveries
        )
        extra = {
            "sent": len(sent),
            "delivered": len(latencies),
            "missing": len(missing),
            "create_errors": created.errors,
            "deliveries_by_event": dict(events),
            "create_request": summarize(
                created.latencies_s, created.elapsed_s, created.errors
            ).as_dict(),
            # create response received -> webhook received (0 if the webhook came first)
            "after_create_response": summarize(after_response, span).as_dict(),
        }
        if created.error_samples:
            self.error_samples[label] = created.error_samples
        self.progress.console.print(
            f"  [green]done[/] {label}: delivered {len(latencies)}/{len(sent)}, "
            f"p50 {fmt('p50_ms', summary.p50_ms)}, p99 {fmt('p99_ms', summary.p99_ms)}"
        )
        return summary, extra

    async def floor_callbacks(self, webhook: WebhookServer) -> Summary:
        c = self.config.callback_concurrency
        label = f"floor callback c={c}"
        sent: dict[str, float] = {}

        async def post(worker: int, i: int, tag: str) -> str | None:
            key = f"bench-{self.run_id}-{tag}-{i}"
            form = {
                "AccountSid": self.auth[0],
                "RoomSid": "RM" + uuid.uuid4().hex,
                "RoomName": key,
                "RoomStatus": "in-progress",
                "RoomType": "group",
                "StatusCallbackEvent": "floor",
                "SequenceNumber": "0",
                "Timestamp": datetime.now(UTC).isoformat(),
            }
            sent[key] = time.perf_counter()
            response = await clients[worker].post(webhook.url, params={"k": key}, data=form)
            return None if response.status_code == 200 else _describe(response)

        async with _clients(webhook.url, c, None) as clients:
            await run_load(
                lambda w, i: post(w, i, "cbfw"), concurrency=c, count=max(16, 2 * c), max_seconds=5
            )
            sent.clear()
            task = self.progress.add_task(label, total=self.config.callbacks)
            result = await run_load(
                lambda w, i: post(w, i, "cbf"),
                concurrency=c,
                count=self.config.callbacks,
                max_seconds=self.config.max_seconds,
                on_done=lambda: self.progress.advance(task),
            )
            self.progress.update(task, visible=False)
        await self._await_arrivals(webhook, list(sent), 5)
        arrivals = {k: t for k in sent if (t := webhook.recorder.arrived(k)) is not None}
        latencies, missing = match_arrivals(sent, arrivals)
        summary = summarize(latencies, result.elapsed_s, result.errors + len(missing))
        self.progress.console.print(
            f"  [green]done[/] {label}: p50 {fmt('p50_ms', summary.p50_ms)}, "
            f"p99 {fmt('p99_ms', summary.p99_ms)}"
        )
        return summary


@dataclass
class MediaResults:
    figures: list[MediaFigure] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


async def media_phases(
    stack: Stack, bench: Bench, config: Config, progress: Progress
) -> MediaResults:
    """Worker CPU per forwarded stream, media latency, join latency (bench/media.py, join.py)."""
    out = MediaResults()
    console = progress.console
    if config.simulcast_only:
        await _simulcast(stack, bench, out, progress)
        return out
    cpu_config = CpuConfig(seconds=config.media_seconds)

    task = progress.add_task(
        f"worker CPU: forwarding {cpu_config.forward_counts}, MediaRelay {cpu_config.relay_counts}"
    )
    try:
        forward, relay = await forwarding_cpu(cpu_config)
    except WorkerError as exc:
        forward, relay = [], []
        console.print(f"  [red]worker CPU failed:[/] {exc}")
        out.data["forwarding_cpu_error"] = str(exc)
    progress.update(task, visible=False)
    out.figures += cpu_figures(forward, relay)
    out.data["forwarding_cpu"] = {
        "method": "worker side in its own process; time.process_time() of that process",
        "forward": [row.as_dict() for row in forward],
        "relay": [row.as_dict() for row in relay],
        "config": asdict(cpu_config),
    }
    task = progress.add_task(
        f"worker CPU: A+V forwarding {cpu_config.extension_counts}, extensions off / on"
    )
    try:
        ext_off, ext_on = await extensions_cpu(cpu_config)
    except WorkerError as exc:
        ext_off, ext_on = [], []
        console.print(f"  [red]extensions CPU failed:[/] {exc}")
        out.data["extensions_cpu_error"] = str(exc)
    progress.update(task, visible=False)
    out.figures += extension_figures(ext_off, ext_on)
    out.data["extensions_cpu"] = {
        "off": [row.as_dict() for row in ext_off],
        "on": [row.as_dict() for row in ext_on],
    }
    task = progress.add_task(
        f"worker CPU: A+V forwarding {cpu_config.recording_counts}, every track recorded on / off"
    )
    try:
        rec_off, rec_on = await recording_cpu(cpu_config, ext_off)
    except WorkerError as exc:
        rec_off, rec_on = [], []
        console.print(f"  [red]recording CPU failed:[/] {exc}")
        out.data["recording_cpu_error"] = str(exc)
    progress.update(task, visible=False)
    out.figures += recording_figures(rec_off, rec_on)
    task = progress.add_task(
        f"recorder CPU: {cpu_config.recorder_tracks} video, then audio recorders (bench/recording)"
    )
    try:
        recorders = await recorder_cpu(cpu_config)
    except Exception as exc:  # in-process: a failure costs these rows, not the whole run
        recorders = []
        console.print(f"  [red]recorder CPU failed:[/] {exc!r}")
        out.data["recorder_cpu_error"] = repr(exc)
    progress.update(task, visible=False)
    out.figures += recorder_figures(recorders, forward, ext_off + rec_off)
    out.data["recording_cpu"] = {
        "off": [row.as_dict() for row in rec_off],
        "on": [row.as_dict() for row in rec_on],
        "recorder": [asdict(row) for row in recorders],
    }
    for row in forward + relay + ext_off + ext_on + rec_on:
        console.print(
            f"  [green]done[/] worker CPU {row.mode} N={row.subscribers}: "
            f"{row.cpu_percent:.1f}% total, {row.cpu_percent_per_stream:.2f}%/stream, "
            f"{row.frames_per_second:.1f} fps/sub"
            + (
                f", recorder pool {row.recorder_cpu_percent:.2f}%"
                if row.recorder_cpu_percent is not None
                else ""
            )
        )
    for rec in recorders:
        console.print(
            f"  [green]done[/] recorder CPU {rec.tracks} {rec.kind}: "
            f"{rec.cpu_percent_per_track:.3f}%/track ({rec.packets_dropped} dropped)"
        )

    task = progress.add_task("media latency publisher -> subscriber (via worker, direct)")
    latency: dict[str, LatencyResult | None] = {"worker": None, "direct": None}
    failure: str | None = None
    try:
        for path in latency:
            latency[path] = await measure_latency(path, config.media_seconds, warmup=1.5)
    except WorkerError as exc:
        failure = "worker failed"
        console.print(f"  [red]media latency failed:[/] {exc}")
    progress.update(task, visible=False)
    out.figures += latency_figures(latency["worker"], latency["direct"], failure)
    out.data["latency"] = {path: latency_json(result) for path, result in latency.items()}
    worker_latency = latency["worker"]
    if worker_latency is not None:
        dist = worker_latency.latency
        console.print(
            f"  [green]done[/] media latency via worker: p50 {fmt('p50_ms', dist.p50_ms)},"
            f" p95 {fmt('p95_ms', dist.p95_ms)}"
        )

    stack.check_alive()
    if stack.media_unavailable:
        joins = join_unavailable(stack.media_unavailable, config.joins)
    else:
        task = progress.add_task("join latency (headless Chromium)", total=config.joins)
        joins = await measure_joins(
            stack.gateway_url,
            bench.token,
            joins=config.joins,
            on_join=lambda: progress.advance(task),
        )
        progress.update(task, visible=False)
    out.figures += join_figures(joins)
    out.data["join"] = joins.as_dict()
    if joins.unavailable:
        console.print(f"  [yellow]join latency n/a:[/] {joins.unavailable}")
    else:
        console.print(
            f"  [green]done[/] join: connected p50 {fmt('p50_ms', joins.connected.p50_ms)}, "
            f"first frame p50 {fmt('p50_ms', joins.first_frame.p50_ms)} "
            f"({joins.joins - joins.failures}/{joins.joins} ok)"
        )

    await _simulcast(stack, bench, out, progress)  # Chromium simulcast (bench/simulcast.py)

    stack.check_alive()  # SubscribeRules: rules POST -> first frame (bench/subscribe_rules.py)
    rules = (
        rules_unavailable(stack.media_unavailable)
        if stack.media_unavailable
        else await measure_subscribe_rules(stack.gateway_url, bench.auth, bench.api_key)
    )
    out.figures += subscribe_rules_figures(rules)
    out.data["subscribe_rules"] = rules.as_dict()
    console.print(
        f"  [green]done[/] SubscribeRules: first frame p50 "
        f"{fmt('p50_ms', rules.first_frame.p50_ms)}, p95 "
        f"{fmt('p95_ms', rules.first_frame.p95_ms)} ({rules.unavailable or 'ok'})"
    )

    stack.check_alive()  # `atrium loadtest` (SDK participants), small: R x P for a few seconds
    if stack.media_unavailable:
        out.figures += loadtest_figures(None, stack.media_unavailable)
    else:
        sdk_load = await run_sdk_loadtest(
            stack.gateway_url, bench.auth[0], bench.api_key, LoadConfig(), progress
        )
        out.figures += loadtest_figures(sdk_load)
        out.data["loadtest"] = sdk_load.as_dict()
        console.print(sdk_load.table("  SDK loadtest (atrium loadtest)"))

    stack.check_alive()  # failover, last: it kills a media worker (bench/failover.py)
    failover = (
        failover_unavailable(stack.media_unavailable)
        if stack.media_unavailable
        else await _failover(stack, bench)
    )
    out.figures += failover_figures(failover)
    out.data["failover"] = failover.as_dict()
    console.print(
        f"  [green]done[/] failover: kill -9 -> media p50 "
        f"{fmt('p50_ms', failover.resumed.p50_ms)}, max {fmt('max_ms', failover.resumed.max_ms)}"
        f" ({failover.unavailable or 'ok'})"
    )
    return out


async def _simulcast(stack: Stack, bench: Bench, out: MediaResults, progress: Progress) -> None:
    """3-layer vs 1-layer worker CPU, layer switch latency, switched-off bytes (Chromium)."""
    stack.check_alive()
    config = SimulcastConfig()
    if stack.media_unavailable:
        result = simulcast_unavailable(stack.media_unavailable)
    else:
        media = next((p for p in stack.processes if p.name == "media"), None)
        pid = media.process.pid if media is not None and media.process is not None else None
        task = progress.add_task("simulcast (headless Chromium)", total=None)
        result = await measure_simulcast(
            stack.gateway_url,
            bench.token,
            pid,
            config,
            on_step=lambda step: progress.update(task, description=f"simulcast: {step}"),
        )
        progress.update(task, visible=False)
    out.figures += simulcast_figures(result, config.subscribers)
    out.data["simulcast"] = {**result.as_dict(), "config": asdict(config)}
    console = progress.console
    for mode, sample in result.cpu.items():
        console.print(
            f"  [green]done[/] simulcast CPU {mode}: {sample.cpu_percent:.1f}% total, "
            f"{sample.cpu_percent_per_leg:.2f}%/leg, {sample.kbps_per_leg:.0f} kbit/s and "
            f"{sample.fps_per_leg:.1f} fps per leg ({'/'.join(sorted(set(sample.received_sizes)))})"
        )
    if result.unavailable:
        console.print(f"  [yellow]simulcast n/a:[/] {result.unavailable}")
    else:
        console.print(
            f"  [green]done[/] simulcast in {result.elapsed_s}s; switch: p50 "
            f"{fmt('p50_ms', result.switch.p50_ms)}, "
            f"p95 {fmt('p95_ms', result.switch.p95_ms)}; switchOn p50 "
            f"{fmt('p50_ms', result.switch_on.p50_ms)}; switched off "
            f"{result.off_bytes_per_s} B/s vs on {result.on_bytes_per_s} B/s"
        )
    for error in result.errors:
        console.print(f"  [red]simulcast:[/] {error}")


async def _failover(stack: Stack, bench: Bench) -> FailoverResult:
    """A second media worker beside the bench's own, then kill -9 of the one hosting rooms."""
    assert stack.log_dir is not None
    spare = Process(
        "media-spare",
        SERVICE_MODULES["media"],
        {**stack.env, "ATRIUM_MEDIA_WORKER_ID": "bench-spare"},
        stack.log_dir,
    ).launch()
    stack.processes.append(spare)
    try:
        spare.wait_ready(READY_TIMEOUT)
    except ProcessFailed as exc:
        return failover_unavailable(f"second media worker did not start: {exc}")
    redis = Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        ids = [str(w) for w in await redis.zrange(WORKERS_KEY, 0, -1)]
    finally:
        await redis.aclose()
    own = next((w for w in ids if w != "bench-spare"), None)
    media = next((p for p in stack.processes if p.name == "media"), None)
    if own is None or media is None:
        return failover_unavailable("the bench's media worker is not registered")
    workers = {own: media, "bench-spare": spare}
    result = await measure_failover(
        stack.gateway_url.replace("http://", "ws://") + "/signaling",
        bench.auth[0],
        bench.api_key,
        stack.redis_url,
        workers,
    )
    for process in workers.values():  # the killed one must not fail check_alive
        if process.process is not None and process.process.poll() is not None:
            stack.processes.remove(process)
    return result


async def measure(
    stack: Stack, config: Config, console: Console
) -> tuple[list[Comparison], MediaResults]:
    comparisons: list[Comparison] = []
    media = MediaResults()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    webhook = WebhookServer()
    probe = PipelineProbe(stack.nats_url, stack.redis_url)
    await webhook.start()
    try:
        await probe.start()
        with Progress(*columns, console=console, transient=True) as progress:

            async def drain(after: str) -> float | None:
                task = progress.add_task(f"waiting for the event pipeline to drain ({after})")
                took = await probe.wait_idle(DRAIN_TIMEOUT)
                progress.update(task, visible=False)
                if took is None:
                    backlog = await probe.backlog()
                    progress.console.print(
                        f"  [yellow]pipeline still busy[/] after {after}: {backlog} events left "
                        f"after {DRAIN_TIMEOUT:.0f}s; going on"
                    )
                elif took > 0.5:
                    progress.console.print(f"  pipeline drained {took:.1f}s after {after}")
                return took

            bench = Bench(stack, config, progress)
            await bench.create_account()
            await drain("startup")
            for c in config.levels if config.rest else ():
                # The floor first, then Atrium, at each level; then let Atrium's event backlog
                # drain so neither the next floor phase nor the next level pays for it.
                floor = await bench.rest("floor", stack.floor_url, c)
                atrium = await bench.rest("atrium", stack.gateway_url, c)
                drained = await drain(f"atrium c={c}")
                comparisons.append(
                    Comparison(
                        f"create_room_c{c}",
                        f"create-room c={c}",
                        c,
                        atrium,
                        floor,
                        extra={"pipeline_drain_after_s": drained},
                    )
                )
            c = config.callback_concurrency
            floor_cb = await bench.floor_callbacks(webhook) if config.rest else None
            if floor_cb is None:
                pass
            elif stack.callback_unavailable:
                comparisons.append(
                    Comparison(
                        "callback",
                        f"callback c={c}",
                        c,
                        None,
                        floor_cb,
                        metrics=("p50_ms", "p99_ms"),
                        unavailable=stack.callback_unavailable,
                    )
                )
            else:
                atrium_cb, extra = await bench.atrium_callbacks(webhook)
                unavailable = None if atrium_cb.count else "no webhook received"
                comparisons.append(
                    Comparison(
                        "callback",
                        f"callback c={c}",
                        c,
                        atrium_cb,
                        floor_cb,
                        metrics=("p50_ms", "p99_ms"),
                        unavailable=unavailable,
                        extra=extra,
                    )
                )
            if config.media:
                if config.rest:
                    await drain("callbacks")
                media = await media_phases(stack, bench, config, progress)
            for label, samples in bench.error_samples.items():
                console.print(f"[red]errors[/] {label}: {samples}")
    finally:
        await probe.close()
        await webhook.stop()
    return comparisons, media


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _busy_note(load_before: float) -> str | None:
    cpus = os.cpu_count() or 1
    if load_before <= 0.5 * cpus:
        return None
    return (
        f"WARNING: the machine was already busy before the bench started (1-min load "
        f"{load_before:.1f} on {cpus} CPUs): these figures are noisy; rerun on an idle machine."
    )


def _notes(
    config: Config, comparisons: list[Comparison], load_before: float, media: MediaResults
) -> list[str]:
    busy = _busy_note(load_before)
    notes = [busy] if busy else []
    if config.rest:
        notes += [
            "create-room: closed loop, httpx.AsyncClient + Basic auth, POST /v1/Rooms with a "
            f"unique UniqueName; up to {config.requests} requests or {config.max_seconds:.0f}s "
            "per level after warm-up. Floor: FastAPI/uvicorn subprocess doing one Redis SET.",
            "callback: create request sent -> room-created webhook received (in-process "
            "receiver); floor: the bench POSTs a Twilio-like form straight to the same receiver.",
        ]
    notes.append(
        f"Load generator, services, NATS and Redis share this machine's {os.cpu_count()} CPUs."
    )
    if media.figures and not config.simulcast_only:
        notes += [
            "worker CPU: publisher (aiortc, 640x480 30 fps VP8 of changing blocky pictures) and "
            "subscribers (frames counted, not decoded) in the bench process; the worker side "
            "alone in a process of its own, its CPU = process_time (all threads) / wall time. "
            "Forwarding = atrium_media.forwarding.router.MediaRouter; baseline = aiortc MediaRelay "
            "(1 decode + 1 VP8 encode per subscriber).",
            "speaker + quality on/off: the publisher adds a 440 Hz tone (its audio level rides "
            "on every packet); 'on' runs dominant speaker detection on every audio level, a "
            "link sample and network quality estimate per participant each second and a "
            "network_quality answer to each participant every 1.2 s; baseline = the same "
            "audio + video forwarding with them off.",
            "recording on/off: the same A+V forwarding (a CPU/leg figure: 2 legs per "
            "subscriber) with both published tracks recorded in the worker process as a room "
            "host records them (MediaRouter.record taps into TrackRecorders on a RecorderPool, "
            "Matroska into a temporary folder, files completed after the window); its CPU "
            "includes the pool threads; baseline = forward-av from the same run.",
            "recorder CPU: bench/recording.py, N TrackRecorders fed pre-recorded RTP (640x480 "
            "VP8 ~0.6 Mbit/s, or 20 ms Opus) in real time through feed() and a RecorderPool; "
            "process CPU minus the same playback to no-op sinks, per track; baseline = worker "
            "CPU of forwarding one leg of the same kind to N subscribers in this run (audio "
            "derived: (A+V - video-only total) / N).",
            "media latency: frame number stamped into the picture; send = frame handed to the "
            "encoder, arrival = decoded frame out of the subscriber's track (same clock); "
            "baseline = the same aiortc pair connected directly.",
            f"SDK loadtest: `atrium loadtest` in the bench process, {LoadConfig().rooms} rooms x "
            f"{LoadConfig().participants} Python SDK participants (tone + 320x240 test pattern) "
            f"for {LoadConfig().seconds:.0f}s; join = connect() -> connected; fps = decoded "
            "video frames/s per subscription.",
            f"join: {config.joins} fresh tabs (after 1 warm-up) join a room where one tab "
            "publishes the fake camera; twilio-video SDK via gateway /signaling and the room, "
            "participant, track and media service subprocesses.",
        ]
    if "simulcast" in media.data:
        notes.append(SIMULCAST_NOTE)
    for comparison in comparisons:
        missing = comparison.extra.get("missing")
        if missing:
            notes.append(f"{comparison.title}: {missing} webhooks never arrived (counted as err)")
    return notes


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levels", default="1,8,32", help="concurrency levels (default 1,8,32)")
    parser.add_argument("--requests", type=int, default=Config.requests)
    parser.add_argument("--max-seconds", type=float, default=Config.max_seconds)
    parser.add_argument("--callbacks", type=int, default=Config.callbacks)
    parser.add_argument("--media-seconds", type=float, default=Config.media_seconds)
    parser.add_argument("--joins", type=int, default=Config.joins)
    phases = parser.add_mutually_exclusive_group()
    phases.add_argument("--no-media", action="store_true", help="REST and callback phases only")
    phases.add_argument("--media-only", action="store_true", help="media phases only")
    phases.add_argument(
        "--simulcast-only", action="store_true", help="the simulcast media phase only"
    )
    args = parser.parse_args(argv)
    levels = tuple(int(level) for level in args.levels.split(",") if level.strip())
    return Config(
        levels=levels,
        requests=args.requests,
        max_seconds=args.max_seconds,
        callbacks=args.callbacks,
        rest=not (args.media_only or args.simulcast_only),
        media=not args.no_media,
        media_seconds=args.media_seconds,
        joins=args.joins,
        simulcast_only=args.simulcast_only,
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    console = Console()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    tmp = Path(tempfile.mkdtemp(prefix="atrium-bench-"))
    servers: list[EmbeddedServer] = []
    processes: list[Process] = []
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    succeeded = False
    try:
        stack = start_stack(console, tmp, servers, processes)
        comparisons, media = asyncio.run(measure(stack, config, console))
        notes = _notes(config, comparisons, load_before, media)
        print_report(console, comparisons, notes, media.figures)
        meta = {
            "generated_at": datetime.now(UTC).isoformat(),
            "git_commit": _git_commit(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_1m_before": load_before,
            "loadavg_1m_after": os.getloadavg()[0],
            "config": asdict(config),
            "notes": notes,
        }
        results = SIMULCAST_RESULTS_PATH if config.simulcast_only else RESULTS_PATH
        write_json(results, meta, comparisons, media.data if config.media else None)
        console.print(f"wrote {results.relative_to(REPO_ROOT)}")
        succeeded = True
        return 0
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]interrupted[/] {exc or ''}".rstrip())
        return 130
    except ProcessFailed as exc:
        console.print(f"[red]failed to start:[/] {exc}")
        return 1
    finally:
        with _signals_ignored():
            console.print("stopping", ", ".join(p.name for p in reversed(processes)), "...")
            for process in reversed(processes):
                try:
                    process.stop()
                except Exception as exc:
                    console.print(f"[red]could not stop {process.name}:[/] {exc}")
            for server in reversed(servers):
                server.stop()
            if succeeded:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                console.print(f"logs kept in {tmp}")
            console.print(f"total {time.perf_counter() - started:.0f}s")
