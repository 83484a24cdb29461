"""`make bench`'s tables read in 80 columns (a terminal or a log file) with every figure whole."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bench.report import MEDIA_TITLE, Comparison, MediaFigure, media_table, table
from bench.stats import Summary


def rendered(renderable: object, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, color_system=None).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 120, 200])
def test_media_table_keeps_every_figure_whole(width: int) -> None:
    figures = [
        MediaFigure("SubscribeRules (SDK, real stack)", "1st frame p95", "ms", 1234.5, 98.7, "10"),
        MediaFigure(
            "media worker failover (SDK, 2 workers)",
            "kill -9 -> media p50",
            "ms",
            2479.3,
            707.6,
            "4 participants, baseline = a fresh join",
        ),
        MediaFigure("worker CPU", "A+V -> 10 subscribers", "%", 9.72, 10.41),
    ]
    text = rendered(media_table(figures, MEDIA_TITLE), width)
    assert all(len(line) <= width for line in text.splitlines())
    for figure in ("1234.5 ms", "98.7 ms", "12.51x", "2479.3 ms", "707.6 ms", "3.50x", "9.72 %"):
        assert figure in text, text


def test_rest_table_keeps_every_figure_whole_in_80_columns() -> None:
    atrium = Summary(800, 2, 4.0, 5.8, 7.0, 12.3, 6.0, 3.0, 20.0, 1520.0)
    floor = Summary(800, 0, 1.0, 1.0, 1.5, 2.1, 1.1, 0.5, 4.0, 8900.0)
    comparisons = [Comparison("c", "room-created callback latency, 8 clients", 8, atrium, floor)]
    text = rendered(table(comparisons, "Atrium vs floor"), 80)
    assert all(len(line) <= 80 for line in text.splitlines())
    for figure in ("5.80 ms", "12.30 ms", "1,520", "8,900", "0.17x", "800 (2 err) / 800"):
        assert figure in text, text
