"""The benchmark's percentile and summary math (bench/stats.py)."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    Summary,
    cpu_percent,
    distribution,
    frame_latencies,
    match_arrivals,
    per_stream,
    percentile,
    ratio,
    ratios,
    summarize,
)


def test_percentile_single_value_is_that_value() -> None:
    assert percentile([7.0], 0) == 7.0
    assert percentile([7.0], 50) == 7.0
    assert percentile([7.0], 100) == 7.0


def test_percentile_interpolates_linearly_like_numpy_default() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 25) == pytest.approx(1.75)
    assert percentile(values, 99) == pytest.approx(3.97)


def test_percentile_ignores_input_order() -> None:
    assert percentile([5.0, 1.0, 4.0, 2.0, 3.0], 50) == 3.0
    assert percentile(iter([3.0, 1.0, 2.0]), 100) == 3.0


def test_percentile_of_1_to_100() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)


@pytest.mark.parametrize("q", [-0.1, 100.1, math.nan])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError):
        percentile([1.0, 2.0], q)


def test_percentile_rejects_empty() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_summarize_converts_seconds_to_ms_and_computes_rps() -> None:
    summary = summarize([0.001, 0.002, 0.003, 0.004], elapsed_s=2.0, errors=1)
    assert summary.count == 4
    assert summary.errors == 1
    assert summary.p50_ms == pytest.approx(2.5)
    assert summary.min_ms == pytest.approx(1.0)
    assert summary.max_ms == pytest.approx(4.0)
    assert summary.mean_ms == pytest.approx(2.5)
    assert summary.p99_ms == pytest.approx(3.97)
    assert summary.rps == pytest.approx(2.0)


def test_summarize_empty_has_no_figures() -> None:
    summary = summarize([], elapsed_s=1.0, errors=3)
    assert summary.count == 0
    assert summary.errors == 3
    assert summary.p50_ms is None
    assert summary.p99_ms is None
    assert summary.rps is None


def test_summarize_zero_elapsed_has_no_rps() -> None:
    assert summarize([0.001], elapsed_s=0.0).rps is None


@pytest.mark.parametrize("bad", [math.inf, math.nan, -0.001])
def test_summarize_rejects_bad_latencies(bad: float) -> None:
    with pytest.raises(ValueError):
        summarize([0.001, bad], elapsed_s=1.0)


def test_summarize_rejects_negative_errors() -> None:
    with pytest.raises(ValueError):
        summarize([0.001], elapsed_s=1.0, errors=-1)


def test_summary_as_dict_is_json_ready() -> None:
    data = summarize([0.002], elapsed_s=1.0).as_dict()
    assert data["count"] == 1
    assert data["p50_ms"] == pytest.approx(2.0)
    assert set(data) == set(Summary.__dataclass_fields__)


def test_ratio() -> None:
    assert ratio(6.0, 2.0) == 3.0
    assert ratio(None, 2.0) is None
    assert ratio(2.0, None) is None
    assert ratio(2.0, 0.0) is None


def test_ratios_are_atrium_over_floor() -> None:
    atrium = summarize([0.004, 0.004], elapsed_s=1.0)
    floor = summarize([0.001, 0.001, 0.001, 0.001], elapsed_s=1.0)
    result = ratios(atrium, floor)
    assert result["p50_ms"] == pytest.approx(4.0)
    assert result["p99_ms"] == pytest.approx(4.0)
    assert result["rps"] == pytest.approx(0.5)
    assert ratios(None, floor) == {"p50_ms": None, "p99_ms": None, "rps": None}


def test_match_arrivals_pairs_by_key_and_reports_missing() -> None:
    sent = {"a": 10.0, "b": 11.0, "c": 12.0}
    arrived = {"a": 10.5, "c": 11.9, "other": 1.0}
    latencies, missing = match_arrivals(sent, arrived)
    assert latencies == [pytest.approx(0.5), 0.0]
    assert missing == ["b"]


def test_distribution_reports_p50_p95_in_ms() -> None:
    dist = distribution([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert dist.count == 100
    assert dist.p50_ms == pytest.approx(50.5)
    assert dist.p95_ms == pytest.approx(95.05)
    assert dist.min_ms == pytest.approx(1.0) and dist.max_ms == pytest.approx(100.0)
    assert dist.mean_ms == pytest.approx(50.5)


def test_distribution_of_nothing_is_empty_and_bad_values_are_rejected() -> None:
    empty = distribution([])
    assert empty.count == 0 and empty.p50_ms is None and empty.p95_ms is None
    assert empty.as_dict()["max_ms"] is None
    with pytest.raises(ValueError):
        distribution([0.1, -0.01])
    with pytest.raises(ValueError):
        distribution([math.inf])


def test_cpu_percent_is_of_one_core() -> None:
    assert cpu_percent(0.5, 2.0) == pytest.approx(25.0)
    assert cpu_percent(4.0, 2.0) == pytest.approx(200.0)  # two cores busy
    with pytest.raises(ValueError):
        cpu_percent(1.0, 0.0)
    with pytest.raises(ValueError):
        cpu_percent(-1.0, 1.0)


def test_per_stream() -> None:
    assert per_stream(30.0, 10) == pytest.approx(3.0)
    assert per_stream(None, 10) is None
    assert per_stream(30.0, 0) is None


def test_frame_latencies_only_counts_frames_sent_in_the_window() -> None:
    sent = {0: 0.5, 1: 1.0, 2: 1.5, 3: 2.0, 4: 9.9}
    arrived = {0: 0.6, 1: 1.04, 3: 2.1, 4: 10.0}
    latencies, lost = frame_latencies(sent, arrived, start=1.0, end=5.0)
    assert sorted(latencies) == pytest.approx([0.04, 0.1])
    assert lost == 1  # frame 2; frames 0 and 4 are outside the window


def test_frame_latencies_clamps_early_arrivals_and_rejects_a_reversed_window() -> None:
    latencies, lost = frame_latencies({7: 1.0}, {7: 0.99}, 0.0, 2.0)
    assert latencies == [0.0] and lost == 0
    with pytest.raises(ValueError):
        frame_latencies({}, {}, 2.0, 1.0)
