"""The simulcast bench phase's pure parts (bench/simulcast.py): VP8 key frame sizes, /proc CPU
accounting, the publisher's sending layers, and the table rows, measured or not."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bench.main import parse_args
from bench.report import MEDIA_TITLE, media_table
from bench.simulcast import (
    CpuSample,
    Layer,
    SimulcastResult,
    _arrival,
    describe_layers,
    describe_publisher_state,
    machine_busy,
    parse_proc_stat_cpu,
    proc_cpu_seconds,
    sending_layers,
    simulcast_figures,
    unavailable,
    vp8_frame_size,
)
from bench.stats import distribution


def keyframe(width: int, height: int, scale: int = 0) -> bytes:
    """A depacketized VP8 key frame's first bytes: frame tag (bit 0 clear), start code, sizes
    (14 bits each, 2 scaling bits above)."""
    w = width | (scale << 14)
    h = height | (scale << 14)
    return bytes([0x50, 0x2B, 0x01, 0x9D, 0x01, 0x2A, w & 0xFF, w >> 8, h & 0xFF, h >> 8]) + bytes(
        20
    )


def test_vp8_frame_size_reads_a_key_frame_header() -> None:
    assert vp8_frame_size(keyframe(1280, 720)) == (1280, 720)
    assert vp8_frame_size(keyframe(320, 180, scale=2)) == (320, 180)  # scaling bits ignored
    assert vp8_frame_size(memoryview(keyframe(640, 360))) == (640, 360)


def test_vp8_frame_size_is_none_for_interframes_and_short_or_foreign_data() -> None:
    inter = bytearray(keyframe(640, 360))
    inter[0] |= 0x01  # frame tag bit 0 set: an interframe
    assert vp8_frame_size(inter) is None
    assert vp8_frame_size(keyframe(640, 360)[:9]) is None
    broken = bytearray(keyframe(640, 360))
    broken[4] = 0x00  # no start code
    assert vp8_frame_size(broken) is None
    assert vp8_frame_size(b"") is None


def test_proc_cpu_seconds_adds_utime_and_stime_past_a_tricky_comm() -> None:
    # comm with spaces and parentheses; utime=250, stime=50 ticks at 100 Hz -> 3.0 s
    fields = ["S", "1"] + ["0"] * 9 + ["250", "50"] + ["0"] * 30
    stat = "4242 (python -m (x) y) " + " ".join(fields)
    assert proc_cpu_seconds(stat, 100) == pytest.approx(3.0)


def test_proc_cpu_seconds_reads_this_process() -> None:
    with open("/proc/self/stat") as f:
        assert proc_cpu_seconds(f.read(), 100) >= 0


def test_machine_busy_is_the_non_idle_share() -> None:
    before = [100, 0, 50, 800, 50, 0, 0, 0]
    after = [200, 0, 100, 900, 100, 0, 0, 0]  # +150 busy, +150 idle/iowait
    assert machine_busy(before, after) == pytest.approx(0.5)
    assert machine_busy(before, before) is None


def test_parse_proc_stat_cpu_takes_the_aggregate_line() -> None:
    text = "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\nintr 5\n"
    assert parse_proc_stat_cpu(text) == [1, 2, 3, 4, 5, 6, 7, 8, 0, 0]
    with pytest.raises(ValueError):
        parse_proc_stat_cpu("cpu0 1 2 3\n")


def test_sending_layers_keeps_the_encodings_that_grew_smallest_first() -> None:
    before = [
        {"ssrc": 1, "bytes": 1000, "width": 1280, "height": 720},
        {"ssrc": 2, "bytes": 500, "width": 320, "height": 180},
        {"ssrc": 3, "bytes": 700, "width": 640, "height": 360},  # paused: no growth
    ]
    after = [
        {"ssrc": 1, "bytes": 1000 + 250_000, "width": 1280, "height": 720},
        {"ssrc": 2, "bytes": 500 + 25_000, "width": 320, "height": 180},
        {"ssrc": 3, "bytes": 700, "width": 640, "height": 360},
        {"ssrc": 4, "bytes": 9_000, "width": 640, "height": 360},  # new: no first sample
    ]
    layers = sending_layers(before, after, 2.0)
    assert layers == [Layer(320, 180, 100.0), Layer(1280, 720, 1000.0)]
    assert describe_layers(layers) == "320x180 100k + 1280x720 1,000k"
    assert describe_layers([]) == "none"
    with pytest.raises(ValueError):
        sending_layers(before, after, 0)


def test_describe_publisher_state_names_the_estimate_and_the_limits() -> None:
    state = {
        "estimate": 1_450_000,
        "streams": [
            {"limitedBy": "bandwidth"},
            {"limitedBy": "none"},
            {"limitedBy": "cpu"},
            {"limitedBy": None},
        ],
    }
    assert describe_publisher_state(state) == " (Chrome estimate 1,450k, limited by bandwidth/cpu)"
    assert describe_publisher_state({"estimate": None, "streams": [{"limitedBy": "none"}]}) == ""
    assert describe_publisher_state({"error": "x"}) == ""
    assert describe_publisher_state(None) == ""


def test_arrival_keeps_plausible_receive_times_only() -> None:
    assert _arrival({"ms": 140.0, "receivedMs": 100.0}) == [0.1]
    assert _arrival({"ms": 140.0, "receivedMs": None}) == []
    assert _arrival({"ms": 140.0}) == []
    assert _arrival({"ms": 140.0, "receivedMs": -3.0}) == []
    assert _arrival({"ms": 140.0, "receivedMs": 500.0}) == []


def cpu(mode: str, percent: float, kbps: float, layers: list[Layer]) -> CpuSample:
    return CpuSample(
        mode=mode,
        subscribers=4,
        legs=4,
        seconds=4.0,
        cpu_percent=percent,
        cpu_percent_per_leg=percent / 4,
        cpu_percent_per_extra_leg=1.1,
        kbps_per_leg=kbps,
        fps_per_leg=20.0,
        received_sizes=["1280x720"] * 4,
        publisher_layers=layers,
        reached_full_size=mode == "simulcast",
        waited_s=20.0,
        machine_busy_percent=40.0,
    )


def rendered(figures: object, width: int = 200) -> str:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, color_system=None).print(figures)
    return out.getvalue()


def test_figures_put_simulcast_beside_the_single_layer_baseline() -> None:
    result = SimulcastResult(
        cpu={
            "simulcast": cpu(
                "simulcast",
                11.6,
                800.0,
                [Layer(320, 180, 140), Layer(640, 360, 350), Layer(1280, 720, 810)],
            ),
            "single": cpu("single", 7.0, 680.0, [Layer(1280, 720, 682)]),
        },
        switch=distribution([0.12, 0.14, 0.15]),
        switch_up=distribution([0.12, 0.15]),
        switch_down=distribution([0.14]),
        switch_on=distribution([0.03, 0.04, 0.05]),
        widths=[320, 1280, 1280, 320],
        off_bytes_per_s=0.0,
        on_bytes_per_s=83_700.0,
        on_width=1280,
        switch_on_after_rate_ms=76.0,
        rate_off_seconds=3.8,
    )
    figures = simulcast_figures(result)
    by_metric = {f.metric: f for f in figures}
    leg = by_metric["CPU/video leg (% core)"]
    assert (leg.atrium, leg.baseline, leg.unit) == (2.9, 1.75, "%")
    assert by_metric["publisher sends"].atrium == 1300
    assert by_metric["publisher sends"].baseline == 682
    p50 = by_metric["to new layer p50"]
    assert p50.atrium == pytest.approx(140.0)
    assert p50.baseline == pytest.approx(40.0)
    assert "320 <-> 1280" in p50.n
    off = by_metric["video bytes/s received"]
    assert (off.atrium, off.baseline) == (0.0, 83_700.0)
    assert all(f.atrium_missing is None and f.baseline_missing is None for f in figures)
    text = rendered(media_table(figures, MEDIA_TITLE))
    for shown in ("2.90 %", "1.75 %", "1300.0 kbit/s", "140.0 ms", "0.0 B/s", "83700.0 B/s"):
        assert shown in text, text


def test_figures_say_why_when_the_phase_could_not_run() -> None:
    reason = "no Chromium binary (run: bash scripts/install-browser-deps.sh)"
    figures = simulcast_figures(unavailable(reason), subscribers=4)
    assert figures, "the rows are there, without numbers"
    assert all(f.atrium is None and f.baseline is None for f in figures)
    assert all(f.atrium_missing == "n/a" and f.baseline_missing == "n/a" for f in figures)
    phases = {f.phase for f in figures}
    assert len(phases) == 3
    for phase in phases:  # each phase says why, in its notes (which wrap)
        first = next(f for f in figures if f.phase == phase)
        assert first.n.startswith(f"n/a: {reason}; "), first.n
    text = rendered(media_table(figures, MEDIA_TITLE), 80)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "n/a" in text
    assert any("4 SDK subs" in phase for phase in phases)


def test_figures_of_a_partial_run_show_what_was_measured() -> None:
    result = SimulcastResult(
        cpu={"simulcast": cpu("simulcast", 11.6, 800.0, [Layer(1280, 720, 810)])},
        cpu_unavailable="single-layer failed",
        switch_unavailable="failed",
    )
    by_metric = {f.metric: f for f in simulcast_figures(result)}
    leg = by_metric["CPU/video leg (% core)"]
    assert leg.atrium == 2.9 and leg.atrium_missing is None
    assert leg.baseline is None and leg.baseline_missing == "n/a"
    assert leg.n.startswith("n/a: single-layer failed; ")
    p50 = by_metric["to new layer p50"]
    assert p50.atrium_missing == "n/a" and p50.n.startswith("n/a: failed; ")


def test_simulcast_only_runs_no_rest_phase() -> None:
    config = parse_args(["--simulcast-only"])
    assert config.simulcast_only and config.media and not config.rest
    assert not parse_args([]).simulcast_only
    with pytest.raises(SystemExit):
        parse_args(["--simulcast-only", "--no-media"])
