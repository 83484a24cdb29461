"""The results: a table on the console and ``bench/results/latest.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.stats import Summary, ratio, ratios


@dataclass
class Comparison:
    """One phase measured against Atrium and against its floor."""

    key: str
    title: str
    concurrency: int
    atrium: Summary | None
    floor: Summary | None
    metrics: tuple[str, ...] = ("p50_ms", "p99_ms", "rps")
    unavailable: str | None = None  # why there is no Atrium figure
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "concurrency": self.concurrency,
            "status": self.unavailable or "ok",
            "atrium": self.atrium.as_dict() if self.atrium else None,
            "floor": self.floor.as_dict() if self.floor else None,
            "ratio_atrium_over_floor": ratios(self.atrium, self.floor, self.metrics),
            **self.extra,
        }


METRIC_LABELS = {"p50_ms": "p50", "p99_ms": "p99", "rps": "req/s"}


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "rps":
        return f"{value:,.0f}"
    return f"{value:.2f} ms"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _samples(summary: Summary | None) -> str:
    if summary is None:
        return "-"
    return f"{summary.count}" + (f" ({summary.errors} err)" if summary.errors else "")


def table(comparisons: list[Comparison], title: str) -> Table:
    # Figures never wrap; the words around them do, so the table reads in 80 columns (a terminal
    # or a log file, where rich assumes 80) as well as in a wide terminal.
    out = Table(title=title, title_justify="left")
    out.add_column("Phase", ratio=2, overflow="fold")
    out.add_column("Metric", no_wrap=True)
    out.add_column("Atrium", justify="right", no_wrap=True)
    out.add_column("Floor", justify="right", no_wrap=True)
    out.add_column("Ratio", justify="right", no_wrap=True)
    out.add_column("n (A / F)", justify="right", ratio=1)
    for comparison in comparisons:
        ratio_of = ratios(comparison.atrium, comparison.floor, comparison.metrics)
        for index, metric in enumerate(comparison.metrics):
            first = index == 0
            atrium = (
                f"n/a ({comparison.unavailable})"
                if comparison.unavailable
                else fmt(metric, getattr(comparison.atrium, metric, None))
            )
            out.add_row(
                comparison.title if first else "",
                METRIC_LABELS[metric],
                atrium if first or not comparison.unavailable else "n/a",
                fmt(metric, getattr(comparison.floor, metric, None)),
                fmt_ratio(ratio_of[metric]),
                f"{_samples(comparison.atrium)} / {_samples(comparison.floor)}" if first else "",
                end_section=index == len(comparison.metrics) - 1,
            )
    return out


@dataclass
class MediaFigure:
    """One row of the media table: an Atrium figure beside its baseline, either may be missing."""

    phase: str
    metric: str
    unit: str  # "%", "ms", "fps"
    atrium: float | None
    baseline: float | None
    n: str = ""
    atrium_missing: str | None = None  # shown instead of the Atrium value
    baseline_missing: str | None = None  # shown instead of the baseline value


def fmt_media(value: float | None, unit: str, missing: str | None) -> str:
    if value is None:
        return missing or "-"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:.1f} {unit}".rstrip()


def media_table(figures: list[MediaFigure], title: str) -> Table:
    out = Table(title=title, title_justify="left")
    out.add_column("Phase", ratio=3, overflow="fold")
    out.add_column("Metric", ratio=3, overflow="fold")
    out.add_column("Atrium", justify="right", no_wrap=True)
    out.add_column("Baseline", justify="right", no_wrap=True)
    out.add_column("Ratio", justify="right", no_wrap=True)
    out.add_column("n / notes", ratio=2, overflow="fold")
    for index, figure in enumerate(figures):
        last = index == len(figures) - 1 or figures[index + 1].phase != figure.phase
        first = index == 0 or figures[index - 1].phase != figure.phase
        out.add_row(
            figure.phase if first else "",
            figure.metric,
            fmt_media(figure.atrium, figure.unit, figure.atrium_missing),
            fmt_media(figure.baseline, figure.unit, figure.baseline_missing),
            fmt_ratio(ratio(figure.atrium, figure.baseline)),
            figure.n,
            end_section=last,
        )
    return out


MEDIA_TITLE = (
    "Media (127.0.0.1; Atrium = MediaRouter forwarding / the whole stack; baseline = aiortc "
    "MediaRelay decode+re-encode (CPU) or a direct aiortc pair (latency); ratio = Atrium/baseline)"
)


def print_report(
    console: Console,
    comparisons: list[Comparison],
    notes: list[str],
    media: list[MediaFigure] | None = None,
) -> None:
    if comparisons:  # none in a media-only run
        console.print()
        console.print(
            table(
                comparisons,
                "Atrium vs floor (127.0.0.1; floor = bare FastAPI + 1 Redis SET; "
                "ratio = Atrium/floor)",
            )
        )
    if media:
        console.print()
        console.print(media_table(media, MEDIA_TITLE))
    for note in notes:
        console.print(f"  - {escape(note)}")


def write_json(
    path: Path,
    meta: dict[str, Any],
    comparisons: list[Comparison],
    media: dict[str, Any] | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**meta, "phases": {c.key: c.as_dict() for c in comparisons}}
    if media is not None:
        data["media"] = media
    path.write_text(json.dumps(data, indent=2) + "\n")
