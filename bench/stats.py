"""Percentiles and per-phase summaries for the benchmark. Pure: no I/O, no clocks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

RATIO_FIELDS = ("p50_ms", "p99_ms", "rps")


def _check(q: float) -> None:
    if not 0.0 <= q <= 100.0:  # also rejects NaN
        raise ValueError(f"percentile must be within 0..100, not {q}")


def _percentile_sorted(ordered: Sequence[float], q: float) -> float:
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0..100), interpolating linearly between the closest ranks.

    The same definition as numpy's default (Hyndman & Fan type 7): p0 is the minimum, p100 the
    maximum, and p50 of an even number of values is the mean of the middle two.
    """
    _check(q)
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    return _percentile_sorted(ordered, q)


@dataclass(frozen=True)
class Summary:
    """One phase: successful samples (latencies in ms), failures, and throughput."""

    count: int
    errors: int
    elapsed_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    rps: float | None  # successful requests per second of elapsed_s

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def summarize(latencies_s: Iterable[float], elapsed_s: float, errors: int = 0) -> Summary:
    """Summarize latencies given in seconds; ``elapsed_s`` is the phase's wall time."""
    if errors < 0:
        raise ValueError("errors must not be negative")
    ordered = sorted(latencies_s)
    if any(not math.isfinite(value) or value < 0 for value in ordered):
        raise ValueError("latencies must be finite and not negative")
    rps = len(ordered) / elapsed_s if elapsed_s > 0 and ordered else None
    if not ordered:
        return Summary(0, errors, elapsed_s, None, None, None, None, None, None, rps)
    ms = [value * 1000.0 for value in ordered]
    return Summary(
        count=len(ms),
        errors=errors,
        elapsed_s=elapsed_s,
        p50_ms=_percentile_sorted(ms, 50),
        p90_ms=_percentile_sorted(ms, 90),
        p99_ms=_percentile_sorted(ms, 99),
        mean_ms=math.fsum(ms) / len(ms),
        min_ms=ms[0],
        max_ms=ms[-1],
        rps=rps,
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def ratios(
    atrium: Summary | None, floor: Summary | None, fields: Sequence[str] = RATIO_FIELDS
) -> dict[str, float | None]:
    """atrium/floor for each field (latency ratios > 1 and throughput ratios < 1 mean slower)."""
    result: dict[str, float | None] = {}
    for name in fields:
        a = getattr(atrium, name) if atrium is not None else None
        f = getattr(floor, name) if floor is not None else None
        result[name] = ratio(a, f)
    return result


def match_arrivals(
    sent: Mapping[str, float], arrived: Mapping[str, float]
) -> tuple[list[float], list[str]]:
    """Pair send times with arrival times by key: (latencies in seconds, keys never arrived).

    A latency below zero (arrival stamped before the send, which a shared monotonic clock rules
    out) is clamped to 0 rather than dropped, so it still counts as a delivery.
    """
    latencies: list[float] = []
    missing: list[str] = []
    for key, started in sent.items():
        landed = arrived.get(key)
        if landed is None:
            missing.append(key)
        else:
            latencies.append(max(0.0, landed - started))
    return latencies, missing


@dataclass(frozen=True)
class Distribution:
    """p50/p95 of samples in milliseconds (media latency, join latency); None without samples."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def distribution(values_s: Iterable[float]) -> Distribution:
    """Summarize durations given in seconds (finite, not negative) as milliseconds."""
    ordered = sorted(values_s)
    if any(not math.isfinite(value) or value < 0 for value in ordered):
        raise ValueError("durations must be finite and not negative")
    if not ordered:
        return Distribution(0, None, None, None, None, None)
    ms = [value * 1000.0 for value in ordered]
    return Distribution(
        count=len(ms),
        p50_ms=_percentile_sorted(ms, 50),
        p95_ms=_percentile_sorted(ms, 95),
        mean_ms=math.fsum(ms) / len(ms),
        min_ms=ms[0],
        max_ms=ms[-1],
    )


def cpu_percent(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU time over wall time in % of one core (200 = two cores busy)."""
    if wall_seconds <= 0:
        raise ValueError("wall time must be positive")
    if cpu_seconds < 0:
        raise ValueError("CPU time must not be negative")
    return 100.0 * cpu_seconds / wall_seconds


def per_stream(total: float | None, streams: int) -> float | None:
    """``total`` shared out over ``streams`` (None when there is no total or no stream)."""
    if total is None or streams <= 0:
        return None
    return total / streams


def frame_latencies(
    sent: Mapping[int, float], arrived: Mapping[int, float], start: float, end: float
) -> tuple[list[float], int]:
    """Latencies (s) of the frames sent within ``[start, end)``, and how many of them never
    arrived. Frames sent outside the window (warm-up, or too late to have arrived) are ignored;
    an arrival stamped before its send is clamped to 0 (see :func:`match_arrivals`)."""
    if end < start:
        raise ValueError("the window ends before it starts")
    window = {str(n): t for n, t in sent.items() if start <= t < end}
    latencies, missing = match_arrivals(window, {str(n): t for n, t in arrived.items()})
    return latencies, len(missing)
