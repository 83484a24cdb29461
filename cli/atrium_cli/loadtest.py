"""``atrium loadtest``: R rooms x P participants built on the Python SDK (atrium_video).

Every participant is an SDK client in this process that publishes a synthetic tone and a moving
test pattern and subscribes to everyone else in its room. The run is bounded: joins (each at most
``join_timeout``), then ``duration`` seconds of steady state, then everyone leaves. Afterwards a
table shows join latency (``connect()`` called -> ``connected``) p50/p95, the video frame rate
each subscription received (decoded frames/s), failed joins and dropped connections.

It only ever connects to the signaling URL it is given (and to the media addresses that server
hands out in its SDP answers); loopback URLs only, unless ``--allow-remote``. Access Tokens are
minted here with the API key given (flags or ``ATRIUM_ACCOUNT_SID`` / ``ATRIUM_API_KEY_SID`` /
``ATRIUM_API_KEY_SECRET``), so no other service is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from atrium_cli.connection import CliError
from atrium_shared.access_tokens import mint_video_token

if TYPE_CHECKING:
    from atrium_video import RemoteMediaTrack, Room


# Configuration and results -------------------------------------------------------------------
@dataclass(frozen=True)
class LoadtestConfig:
    url: str  # ws://HOST:PORT/signaling
    account_sid: str
    api_key_sid: str
    api_key_secret: str
    rooms: int = 2
    participants: int = 3  # per room
    duration: float = 15.0  # seconds of steady state once the joins are done
    join_timeout: float = 30.0
    ramp: float = 0.05  # seconds between starting two joins
    width: int = 320
    height: int = 240
    room_prefix: str = ""  # default: loadtest-<random>

    def prefix(self) -> str:
        return self.room_prefix or f"loadtest-{uuid.uuid4().hex[:6]}"


@dataclass
class Subscription:
    kind: str
    track: RemoteMediaTrack
    start_frames: int = 0
    start_time: float = 0.0
    fps: float | None = None


@dataclass
class ParticipantRun:
    room: str
    identity: str
    join_ms: float | None = None
    error: str | None = None
    dropped: str | None = None  # disconnected during the run: the error
    reconnects: int = 0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # by track SID


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class LoadtestResult:
    rooms: int
    participants_per_room: int
    duration_s: float
    joins_attempted: int
    joins_ok: int
    failed_joins: int
    join_p50_ms: float | None
    join_p95_ms: float | None
    join_max_ms: float | None
    video_subscriptions_expected: int
    video_subscriptions: int
    video_fps_mean: float | None
    video_fps_min: float | None
    audio_fps_mean: float | None
    dropped_connections: int
    reconnects: int
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(metric, value) rows of the result table."""

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f} ms"

        def fps(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f} fps"

        return [
            (
                "rooms x participants",
                f"{self.rooms} x {self.participants_per_room}, {self.duration_s:.0f} s",
            ),
            ("joins ok", f"{self.joins_ok} / {self.joins_attempted}"),
            ("join latency p50", ms(self.join_p50_ms)),
            ("join latency p95", ms(self.join_p95_ms)),
            (
                "video subscriptions",
                f"{self.video_subscriptions} / {self.video_subscriptions_expected}",
            ),
            ("video frame rate / subscription (mean)", fps(self.video_fps_mean)),
            ("video frame rate / subscription (min)", fps(self.video_fps_min)),
            ("audio frames/s / subscription (mean)", fps(self.audio_fps_mean)),
            ("failed joins", str(self.failed_joins)),
            ("dropped connections", str(self.dropped_connections)),
            ("reconnects", str(self.reconnects)),
        ]

    def table(self, title: str = "atrium loadtest") -> Table:
        out = Table(title=title, title_justify="left")
        out.add_column("Metric", no_wrap=True)
        out.add_column("Value", justify="right")
        for metric, value in self.rows():
            out.add_row(metric, value)
        return out


# The run ---------------------------------------------------------------------------------------
class Loadtest:
    def __init__(self, config: LoadtestConfig) -> None:
        self.config = config
        self.runs: list[ParticipantRun] = []
        self.rooms: list[Room] = []
        self.measuring = False

    def _subscribed(self, run: ParticipantRun) -> Callable[..., None]:
        from atrium_video import RemoteMediaTrack

        def on_subscribed(track: Any, publication: Any, participant: Any) -> None:
            if isinstance(track, RemoteMediaTrack):
                sub = Subscription(track.kind, track)
                if self.measuring:
                    sub.start_frames, sub.start_time = track.frames_received, time.monotonic()
                run.subscriptions[track.sid] = sub

        return on_subscribed

    async def _join(self, run: ParticipantRun, delay: float) -> None:
        from atrium_video import (
            TestPatternSource,
            TwilioError,
            connect,
            create_local_audio_track,
            create_local_video_track,
        )

        await asyncio.sleep(delay)
        config = self.config
        token = mint_video_token(
            config.account_sid, config.api_key_sid, config.api_key_secret, run.identity, run.room
        )
        tracks: list[Any] = [
            create_local_audio_track(name="tone"),
            create_local_video_track(
                name="pattern", source=TestPatternSource(config.width, config.height)
            ),
        ]
        started = time.monotonic()
        try:
            room = await connect(
                token, url=config.url, name=run.room, tracks=tracks, timeout=config.join_timeout
            )
        except TwilioError as exc:
            run.error = str(exc)
            for track in tracks:
                track.stop()
            return
        except Exception as exc:  # anything else is a failed join too, reported by kind
            run.error = f"{type(exc).__name__}: {exc}"
            for track in tracks:
                track.stop()
            return
        run.join_ms = (time.monotonic() - started) * 1000
        self.rooms.append(room)
        on_subscribed = self._subscribed(run)
        room.on("track_subscribed", on_subscribed)
        for participant in room.participants.values():
            for publication in participant.tracks.values():
                if publication.track is not None:
                    on_subscribed(publication.track, publication, participant)

        def on_reconnecting(error: Any) -> None:
            run.reconnects += 1

        def on_disconnected(_room: Any, error: Any) -> None:
            run.dropped = str(error) if error is not None else "disconnected by the server"

        room.on("reconnecting", on_reconnecting)
        room.on("disconnected", on_disconnected)

    def start_measuring(self) -> None:
        now = time.monotonic()
        self.measuring = True
        for run in self.runs:
            for sub in run.subscriptions.values():
                sub.start_frames, sub.start_time = sub.track.frames_received, now

    def stop_measuring(self) -> None:
        now = time.monotonic()
        for run in self.runs:
            for sub in run.subscriptions.values():
                elapsed = now - sub.start_time
                if sub.start_time and elapsed > 0.5:
                    sub.fps = (sub.track.frames_received - sub.start_frames) / elapsed

    def live_figures(self) -> str:
        joined = sum(1 for r in self.runs if r.join_ms is not None)
        failed = sum(1 for r in self.runs if r.error is not None)
        dropped = sum(1 for r in self.runs if r.dropped is not None)
        videos = [s for r in self.runs for s in r.subscriptions.values() if s.kind == "video"]
        frames = sum(s.track.frames_received for s in videos)
        return (
            f"joined {joined}/{len(self.runs)}, failed {failed}, dropped {dropped}, "
            f"video subscriptions {len(videos)}, video frames {frames}"
        )

    async def run(self, progress: Progress | None = None) -> LoadtestResult:
        config = self.config
        prefix = config.prefix()
        self.runs = [
            ParticipantRun(f"{prefix}-{r}", f"{prefix}-{r}-p{p}")
            for r in range(config.rooms)
            for p in range(config.participants)
        ]
        joins_task = progress.add_task("joining", total=len(self.runs)) if progress else None
        try:
            pending = {
                asyncio.ensure_future(self._join(run, index * config.ramp))
                for index, run in enumerate(self.runs)
            }
            while pending:
                _, pending = await asyncio.wait(pending, timeout=0.25)
                if progress is not None and joins_task is not None:
                    done = sum(1 for r in self.runs if r.join_ms is not None or r.error)
                    progress.update(
                        joins_task, completed=done, description=f"joining: {self.live_figures()}"
                    )
            if progress is not None and joins_task is not None:
                progress.update(joins_task, visible=False)
            self.start_measuring()
            steady = progress.add_task("running", total=config.duration) if progress else None
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < config.duration:
                if progress is not None and steady is not None:
                    progress.update(
                        steady, completed=elapsed, description=f"running: {self.live_figures()}"
                    )
                await asyncio.sleep(min(0.5, max(0.0, config.duration - elapsed)))
            self.stop_measuring()
            if progress is not None and steady is not None:
                progress.update(steady, visible=False)
        finally:
            await self._leave()
        return self.result()

    async def _leave(self) -> None:
        rooms, self.rooms = self.rooms, []
        for room in rooms:
            room.off("disconnected")  # leaving is not a dropped connection
        results = await asyncio.gather(
            *(room.disconnect() for room in rooms), return_exceptions=True
        )
        for room, outcome in zip(rooms, results, strict=True):
            if isinstance(outcome, BaseException):
                with contextlib.suppress(Exception):
                    await room._teardown(None, emit=False)
            for publication in room.local_participant.tracks.values():
                publication.track.stop()

    def result(self) -> LoadtestResult:
        config = self.config
        joins = [r.join_ms for r in self.runs if r.join_ms is not None]
        video = [
            s.fps
            for r in self.runs
            for s in r.subscriptions.values()
            if s.kind == "video" and s.fps is not None
        ]
        audio = [
            s.fps
            for r in self.runs
            for s in r.subscriptions.values()
            if s.kind == "audio" and s.fps is not None
        ]
        ok = len(joins)
        per_room: dict[str, int] = {}
        for run in self.runs:
            if run.join_ms is not None:
                per_room[run.room] = per_room.get(run.room, 0) + 1
        expected = sum(n * (n - 1) for n in per_room.values())  # each joined one sees the others
        errors = sorted(
            {r.error for r in self.runs if r.error}
            | {f"dropped: {r.dropped}" for r in self.runs if r.dropped}
        )
        return LoadtestResult(
            rooms=config.rooms,
            participants_per_room=config.participants,
            duration_s=config.duration,
            joins_attempted=len(self.runs),
            joins_ok=ok,
            failed_joins=len(self.runs) - ok,
            join_p50_ms=percentile(joins, 0.5),
            join_p95_ms=percentile(joins, 0.95),
            join_max_ms=max(joins) if joins else None,
            video_subscriptions_expected=expected,
            video_subscriptions=len(video),
            video_fps_mean=sum(video) / len(video) if video else None,
            video_fps_min=min(video) if video else None,
            audio_fps_mean=sum(audio) / len(audio) if audio else None,
            dropped_connections=sum(1 for r in self.runs if r.dropped is not None),
            reconnects=sum(r.reconnects for r in self.runs),
            errors=errors[:10],
        )


def progress_display(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


async def run_loadtest(config: LoadtestConfig, console: Console | None = None) -> LoadtestResult:
    """Run one load test; with a console, show progress on it while it runs."""
    loadtest = Loadtest(config)
    if console is None:
        return await loadtest.run()
    with progress_display(console) as progress:
        return await loadtest.run(progress)


# The command -----------------------------------------------------------------------------------
def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


def add_parser(commands: Any) -> None:
    """Register ``atrium loadtest`` on the ``atrium`` command's subparsers."""
    parser = commands.add_parser(
        "loadtest",
        help="R rooms x P SDK participants with synthetic audio and video, then a table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        required=True,
        metavar="WS_URL",
        help="signaling URL, ws://HOST:PORT/signaling (the only target)",
    )
    parser.add_argument("--rooms", type=int, default=2, help="rooms (default 2)")
    parser.add_argument(
        "--participants", type=int, default=3, help="participants per room (default 3)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=15.0,
        help="seconds of steady state after the joins (default 15)",
    )
    parser.add_argument(
        "--join-timeout",
        type=float,
        default=30.0,
        help="seconds a join may take before it counts as failed (default 30)",
    )
    parser.add_argument(
        "--ramp", type=float, default=0.05, help="seconds between two joins starting (default 0.05)"
    )
    parser.add_argument("--video-size", default="320x240", help="WxH of the test pattern")
    parser.add_argument(
        "--account-sid",
        default=os.environ.get("ATRIUM_ACCOUNT_SID"),
        help="Account SID (default $ATRIUM_ACCOUNT_SID)",
    )
    parser.add_argument(
        "--api-key-sid",
        default=os.environ.get("ATRIUM_API_KEY_SID"),
        help="API Key SID that signs the tokens (default $ATRIUM_API_KEY_SID)",
    )
    parser.add_argument(
        "--api-key-secret",
        default=os.environ.get("ATRIUM_API_KEY_SECRET"),
        help="its secret (default $ATRIUM_API_KEY_SECRET)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a URL that is not on this machine (loopback only by default)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.set_defaults(handler=loadtest_command)


def config_from_args(args: argparse.Namespace) -> LoadtestConfig:
    scheme = urlsplit(args.url).scheme
    if scheme not in ("ws", "wss"):
        raise CliError(f"--url must be ws:// or wss:// (the signaling endpoint), not {args.url}")
    if not is_loopback(args.url) and not args.allow_remote:
        raise CliError(
            f"{args.url} is not a loopback address; pass --allow-remote to load-test "
            "a server on another machine (only that URL is ever contacted)"
        )
    missing = [
        flag
        for flag, value in (
            ("--account-sid", args.account_sid),
            ("--api-key-sid", args.api_key_sid),
            ("--api-key-secret", args.api_key_secret),
        )
        if not value
    ]
    if missing:
        raise CliError(
            f"missing {', '.join(missing)} (or ATRIUM_ACCOUNT_SID, "
            "ATRIUM_API_KEY_SID, ATRIUM_API_KEY_SECRET): tokens are minted with them"
        )
    if args.rooms < 1 or args.participants < 1 or args.duration <= 0:
        raise CliError("--rooms and --participants must be >= 1, --duration > 0")
    try:
        width, height = (int(v) for v in args.video_size.lower().split("x"))
    except ValueError as exc:
        raise CliError(f"--video-size must be WxH, not {args.video_size}") from exc
    return LoadtestConfig(
        url=args.url,
        account_sid=args.account_sid,
        api_key_sid=args.api_key_sid,
        api_key_secret=args.api_key_secret,
        rooms=args.rooms,
        participants=args.participants,
        duration=args.duration,
        join_timeout=args.join_timeout,
        ramp=args.ramp,
        width=width,
        height=height,
    )


async def loadtest_command(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    console = Console()
    console.print(
        f"loadtest: {config.rooms} rooms x {config.participants} participants for "
        f"{config.duration:.0f}s against {config.url}"
    )
    result = await run_loadtest(config, console)
    console.print(result.table())
    for error in result.errors:
        console.print(f"  [red]{error}[/]")
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    return 0 if result.failed_joins == 0 and result.dropped_connections == 0 else 1
