"""Media figures: worker CPU per forwarded stream, and publisher -> subscriber latency.

Both use aiortc peers in this process and the worker side in a subprocess of its own
(:class:`bench.forwarding.WorkerProcess`), all on 127.0.0.1.

* CPU: :func:`bench.forwarding.run_async` (forwarding via ``MediaRouter`` against
  aiortc's stock ``MediaRelay``); the CPU is the worker process's alone.
* Recording: the same A+V forwarding with every published track recorded in the worker process
  (``forward-av-rec``) beside it without (``forward-av``), same run; and the recorder's own CPU
  per recorded track (:mod:`bench.recording`: N recorders fed recorded RTP in real time) beside
  the CPU of forwarding one leg of the same kind.
* Latency: the publisher stamps a frame number into each picture (:mod:`bench.stamp`) and notes
  when the frame leaves its track for the encoder; the subscriber decodes, reads the number back
  and notes when the decoded frame is handed out by its track. Same process, same clock. The
  figure is glass-to-glass minus capture and display: encode + packetization + worker hop +
  jitter buffer + decode. The floor is the same pair connected directly (no worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from atrium_media.ice import configure_host_addresses
from bench.forwarding import (
    WIDTH,
    BenchRow,
    PatternTrack,
    WorkerProcess,
    negotiate,
    new_pc,
    run_async,
)
from bench.recording import RecorderCpuRow, measure_recorder_cpu_async
from bench.report import MediaFigure
from bench.stamp import BAND_ROWS, read_stamp, stamp_rows
from bench.stats import Distribution, distribution, frame_latencies, per_stream

LOOPBACK_ONLY = ("127.0.0.1",)


@dataclass(frozen=True)
class CpuConfig:
    forward_counts: tuple[int, ...] = (1, 4, 10, 30)
    relay_counts: tuple[int, ...] = (1, 4)
    extension_counts: tuple[int, ...] = (4, 10)
    recording_counts: tuple[int, ...] = (4, 10)  # subscribers, every track recorded on / off
    recorder_tracks: int = 10  # recorders per bench/recording.py measurement (video, audio)
    seconds: float = 4.0
    warmup: float = 1.5


async def extensions_cpu(config: CpuConfig) -> tuple[list[BenchRow], list[BenchRow]]:
    """(extensions off, extensions on): audio + video forwarded to N subscribers, without and
    with dominant speaker and network quality running for every participant, same run."""
    counts = config.extension_counts
    off = await run_async(counts, config.seconds, ("forward-av",), config.warmup)
    on = await run_async(counts, config.seconds, ("forward-av-msp",), config.warmup)
    return off, on


def extension_figures(off: list[BenchRow], on: list[BenchRow]) -> list[MediaFigure]:
    """Worker CPU per subscriber (an audio and a video leg each) with the extensions on, beside
    the same load with them off; the note says the overhead in % of forwarding."""
    without, with_ = _row_by_n(off), _row_by_n(on)
    figures: list[MediaFigure] = []
    for n in sorted(set(without) | set(with_)):
        a, b = with_.get(n), without.get(n)
        note = ""
        if a is not None and b is not None and b.cpu_percent:
            overhead = 100 * (a.cpu_percent - b.cpu_percent) / b.cpu_percent
            note = (
                f"extensions cost {overhead:+.1f}% of forwarding ({a.cpu_percent:.1f}% vs "
                f"{b.cpu_percent:.1f}% total)"
            )
        figures.append(
            MediaFigure(
                f"worker CPU A+V 1 pub -> {n} sub{'s' if n != 1 else ''}, speaker + quality on/off",
                "CPU/subscriber (% core)",
                "%",
                a.cpu_percent_per_stream if a else None,
                b.cpu_percent_per_stream if b else None,
                note,
                None if a else "n/a",
                None if b else "n/a",
            )
        )
    return figures


async def recording_cpu(
    config: CpuConfig, off: list[BenchRow]
) -> tuple[list[BenchRow], list[BenchRow]]:
    """(recording off, recording on): audio + video forwarded to N subscribers, without and with
    both published tracks recorded in the worker process. ``off`` holds ``forward-av`` rows
    already measured in this run (the extensions' baseline); counts it lacks are measured."""
    counts = config.recording_counts
    have = {row.subscribers: row for row in off if row.mode == "forward-av"}
    missing = tuple(n for n in counts if n not in have)
    if missing:
        for row in await run_async(missing, config.seconds, ("forward-av",), config.warmup):
            have[row.subscribers] = row
    on = await run_async(counts, config.seconds, ("forward-av-rec",), config.warmup)
    return [have[n] for n in counts], on


def recording_figures(off: list[BenchRow], on: list[BenchRow]) -> list[MediaFigure]:
    """Per N: worker CPU per forwarded leg (and total) with every track recorded, beside the same
    load without recording; the notes say the overhead and the recorder pool's share."""
    without, with_ = _row_by_n(off), _row_by_n(on)
    figures: list[MediaFigure] = []
    for n in sorted(set(without) | set(with_)):
        a, b = with_.get(n), without.get(n)
        overhead = ""
        if a is not None and b is not None and b.cpu_percent:
            cost = 100 * (a.cpu_percent - b.cpu_percent) / b.cpu_percent
            overhead = (
                f"recording costs {cost:+.1f}% of forwarding ({a.cpu_percent - b.cpu_percent:+.1f}"
                f" points of a core for {a.recorded_tracks or 2} recorded tracks)"
            )
        pool = ""
        if a is not None and a.recorder_cpu_percent is not None:
            tracks = a.recorded_tracks or 2
            pool = (
                f"recorder pool threads {a.recorder_cpu_percent:.2f}% "
                f"({a.recorder_cpu_percent / tracks:.2f}%/track), "
                f"{a.recorded_frames} frames written, {a.recorded_packets_dropped} pkts dropped"
            )
        elif a is not None:
            pool = f"{a.recorded_frames} frames written"
        phase = f"worker CPU A+V 1 pub -> {n} sub{'s' if n != 1 else ''}, recording on/off"
        for metric, name, note in (
            ("CPU/leg (% core)", "cpu_percent_per_leg", overhead),
            ("CPU total (% core)", "cpu_percent", pool),
        ):
            figures.append(
                MediaFigure(
                    phase,
                    metric,
                    "%",
                    getattr(a, name) if a else None,
                    getattr(b, name) if b else None,
                    note,
                    None if a else "n/a",
                    None if b else "n/a",
                )
            )
    return figures


async def recorder_cpu(config: CpuConfig) -> list[RecorderCpuRow]:
    """bench/recording.py: ``recorder_tracks`` recorders of video, then of audio."""
    return [
        await measure_recorder_cpu_async(config.recorder_tracks, kind, config.seconds)
        for kind in ("video", "audio")
    ]


def leg_cpu(forward: list[BenchRow], av: list[BenchRow], n: int) -> dict[str, float | None]:
    """Worker CPU of forwarding one leg, by kind, at ``n`` subscribers in this run: video from
    the video-only rows; audio derived as (A+V total - video total) / n (None if not positive)."""
    video_rows, av_rows = _row_by_n(forward), _row_by_n(av)
    video = video_rows.get(n)
    both = av_rows.get(n)
    audio = None
    if video is not None and both is not None and both.cpu_percent > video.cpu_percent:
        audio = round((both.cpu_percent - video.cpu_percent) / n, 3)
    return {"video": video.cpu_percent_per_stream if video else None, "audio": audio}


def recorder_figures(
    rows: list[RecorderCpuRow], forward: list[BenchRow], av: list[BenchRow]
) -> list[MediaFigure]:
    """Recorder CPU per recorded track beside the worker CPU of forwarding one leg of the same
    kind to as many subscribers as there are recorders (same run)."""
    figures: list[MediaFigure] = []
    for row in rows:
        baseline = leg_cpu(forward, av, row.tracks)[row.kind]
        how = (
            "forwarding 1 video leg"
            if row.kind == "video"
            else "forwarding 1 audio leg, (A+V - V)/N"
        )
        writer = (
            f"pool threads {row.writer_cpu_percent:.2f}% for all, "
            if row.writer_cpu_percent is not None
            else ""
        )
        note = (
            f"baseline = {how} at N={row.tracks}; {writer}feed {row.feed_us_per_packet:.1f} "
            f"us/pkt on the loop, {row.packets_per_second:.0f} pkt/s/track, "
            f"{row.packets_dropped} dropped"
        )
        figures.append(
            MediaFigure(
                f"recorder CPU, {row.tracks} {row.kind} tracks recorded",
                "CPU/track (% core)",
                "%",
                row.cpu_percent_per_track,
                baseline,
                note,
                None,
                None if baseline is not None else "n/a",
            )
        )
    return figures


async def forwarding_cpu(config: CpuConfig) -> tuple[list[BenchRow], list[BenchRow]]:
    """(forward rows, relay rows) from the same run, one worker process per measurement."""
    forward = await run_async(config.forward_counts, config.seconds, ("forward",), config.warmup)
    relay = await run_async(
        config.relay_counts,
        config.seconds,
        ("relay",),
        config.warmup,
        relay_max_subscribers=max(config.relay_counts, default=0),
    )
    return forward, relay


class StampedTrack(PatternTrack):
    """The blocky pattern with the frame number stamped over its top rows."""

    def __init__(self) -> None:
        super().__init__()
        self.sent_at: dict[int, float] = {}

    def luma(self, n: int) -> bytes:
        return stamp_rows(n) + super().luma(n)[BAND_ROWS * WIDTH :]

    def sent(self, n: int) -> None:
        self.sent_at[n] = time.perf_counter()


@dataclass
class LatencyResult:
    path: str  # "worker" or "direct"
    latency: Distribution
    frames_sent: int
    frames_lost: int
    unreadable: int  # decoded pictures whose stamp could not be read
    extra: dict[str, Any] = field(default_factory=dict)


async def _receive(track: MediaStreamTrack, arrived: dict[int, float], counts: list[int]) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            frame: Any = await track.recv()
            now = time.perf_counter()
            luma = frame.planes[0]
            number = read_stamp(memoryview(luma).cast("B"), luma.line_size)
            if number is None:
                counts[0] += 1
            else:
                arrived.setdefault(number, now)


async def measure_latency(path: str, seconds: float, warmup: float) -> LatencyResult:
    """``path`` "worker": publisher -> MediaRouter (own process) -> subscriber; "direct": P2P."""
    configure_host_addresses(LOOPBACK_ONLY)
    pcs: list[RTCPeerConnection] = []
    worker: WorkerProcess | None = None
    receiving: asyncio.Task[None] | None = None
    try:
        publisher, subscriber = new_pc(), new_pc()
        pcs += [publisher, subscriber]
        track = StampedTrack()
        publisher.addTrack(track)
        if path == "worker":
            worker = await WorkerProcess("forward").start()
            await worker.publish(publisher)
            await worker.subscribe("latency", subscriber)
        elif path == "direct":
            await negotiate(publisher, subscriber)
        else:
            raise ValueError(path)
        arrived: dict[int, float] = {}
        unreadable = [0]
        remote = subscriber.getTransceivers()[0].receiver.track
        receiving = asyncio.create_task(_receive(remote, arrived, unreadable))
        await asyncio.sleep(warmup)
        start = time.perf_counter()
        unreadable[0] = 0
        await asyncio.sleep(seconds)
        end = time.perf_counter()
        await asyncio.sleep(0.5)  # frames sent just before `end` may still be on their way
        latencies, lost = frame_latencies(track.sent_at, arrived, start, end)
        return LatencyResult(
            path=path,
            latency=distribution(latencies),
            frames_sent=len(latencies) + lost,
            frames_lost=lost,
            unreadable=unreadable[0],
        )
    finally:
        if receiving is not None:
            receiving.cancel()
            with contextlib.suppress(BaseException):
                await receiving
        if worker is not None:
            await worker.stop()
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)


# ------------------------------------------------------------------------------ report rows


def _row_by_n(rows: list[BenchRow]) -> dict[int, BenchRow]:
    return {row.subscribers: row for row in rows}


def cpu_figures(forward: list[BenchRow], relay: list[BenchRow]) -> list[MediaFigure]:
    """Per N: CPU per stream, total CPU, frames/s per subscriber (forwarding vs MediaRelay)."""
    fwd, rel = _row_by_n(forward), _row_by_n(relay)
    relay_max = max(rel, default=0)
    figures: list[MediaFigure] = []
    for n in sorted(set(fwd) | set(rel)):
        f, r = fwd.get(n), rel.get(n)
        notes: list[str] = []
        baseline_missing = None
        if r is None:
            baseline_missing = "n/a"
            if relay_max and n > relay_max:
                top = rel[relay_max]
                notes.append(
                    f"MediaRelay not run: {n} VP8 encoders would saturate 2 cores "
                    f"(at {relay_max}: {top.cpu_percent:.0f}% total, "
                    f"{top.frames_per_second:.0f} fps/sub)"
                )
        if f is not None and f.kbps_per_stream is not None:
            notes.append(f"{f.kbps_per_stream / 1000:.2f} Mbps/stream")
        if f is not None and f.packets_forwarded:
            cost = per_stream(f.cpu_percent / 100 * f.seconds * 1e6, f.packets_forwarded)
            notes.append(f"{cost:.0f} us CPU/forwarded pkt")
        clients = [f"{row.client_cpu_percent:.0f}%" for row in (f, r) if row is not None]
        published = [f"{row.publisher_fps:.0f}" for row in (f, r) if row and row.publisher_fps]
        phase = f"worker CPU 1 pub -> {n} sub" + ("s" if n != 1 else "")
        measured = f or r
        window = measured.seconds if measured else 0.0
        metrics = (
            ("CPU/stream (% core)", "%", "cpu_percent_per_stream"),
            ("CPU total (% core)", "%", "cpu_percent"),
            ("frames/s per sub", "fps", "frames_per_second"),
        )
        row_notes = [
            "; ".join(notes) or f"{window:.0f}s window",
            f"client process {' / '.join(clients)} (not counted)",
            f"publisher sent {' / '.join(published)} fps" if published else "",
        ]
        for (metric, unit, name), note in zip(metrics, row_notes, strict=True):
            figures.append(
                MediaFigure(
                    phase,
                    metric,
                    unit,
                    getattr(f, name) if f else None,
                    getattr(r, name) if r else None,
                    note,
                    None if f else "n/a",
                    baseline_missing,
                )
            )
    return figures


def latency_figures(
    worker: LatencyResult | None, direct: LatencyResult | None, missing: str | None = None
) -> list[MediaFigure]:
    phase = "media latency pub -> sub"

    def n_of(result: LatencyResult | None) -> str:
        if result is None:
            return "-"
        lost = f" ({result.frames_lost} lost)" if result.frames_lost else ""
        return f"{result.latency.count}{lost}"

    notes = [
        f"frames {n_of(worker)} / {n_of(direct)}",
        missing or "encode + worker hop + jitter buffer + decode",
        "",
    ]
    return [
        MediaFigure(
            phase,
            metric,
            "ms",
            getattr(worker.latency, name) if worker else None,
            getattr(direct.latency, name) if direct else None,
            note,
            None if worker else "n/a",
            None if direct else "n/a",
        )
        for (metric, name), note in zip(
            (("p50", "p50_ms"), ("p95", "p95_ms"), ("max", "max_ms")), notes, strict=True
        )
    ]


def latency_json(result: LatencyResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "path": result.path,
        "latency": result.latency.as_dict(),
        "frames_sent": result.frames_sent,
        "frames_lost": result.frames_lost,
        "unreadable_pictures": result.unreadable,
    }
