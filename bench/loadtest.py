"""A small `atrium loadtest` run (atrium_cli.loadtest) against the bench's own stack.

R rooms x P SDK participants (synthetic tone + test pattern) join through the gateway, stay for a
bounded time, and leave; the figures go into the media table and ``latest.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.progress import Progress

from atrium_cli.loadtest import Loadtest, LoadtestConfig, LoadtestResult
from bench.report import MediaFigure


@dataclass(frozen=True)
class LoadConfig:
    rooms: int = 2
    participants: int = 3
    seconds: float = 10.0


async def run_sdk_loadtest(
    gateway_url: str,
    account_sid: str,
    api_key: tuple[str, str],
    config: LoadConfig,
    progress: Progress,
) -> LoadtestResult:
    loadtest = Loadtest(
        LoadtestConfig(
            url=gateway_url.replace("http://", "ws://", 1) + "/signaling",
            account_sid=account_sid,
            api_key_sid=api_key[0],
            api_key_secret=api_key[1],
            rooms=config.rooms,
            participants=config.participants,
            duration=config.seconds,
            room_prefix="bench-loadtest",
        )
    )
    return await loadtest.run(progress)


def loadtest_figures(
    result: LoadtestResult | None, unavailable: str | None = None
) -> list[MediaFigure]:
    phase = (
        f"SDK loadtest {result.rooms}x{result.participants_per_room} {result.duration_s:.0f}s"
        if result
        else "SDK loadtest"
    )
    missing = unavailable or "-"

    def figure(metric: str, unit: str, value: float | None, n: str = "") -> MediaFigure:
        return MediaFigure(
            phase, metric, unit, value, None, n, atrium_missing=missing, baseline_missing="-"
        )

    if result is None:
        return [figure("join p50", "ms", None)]
    joins = f"{result.joins_ok}/{result.joins_attempted} joined"
    faults = f"{result.failed_joins} failed, {result.dropped_connections} dropped"
    return [
        figure("join p50", "ms", result.join_p50_ms, joins),
        figure("join p95", "ms", result.join_p95_ms, faults),
        figure(
            "video fps / subscription (mean)",
            "fps",
            result.video_fps_mean,
            f"{result.video_subscriptions}/{result.video_subscriptions_expected} subs",
        ),
        figure("video fps / subscription (min)", "fps", result.video_fps_min),
    ]
