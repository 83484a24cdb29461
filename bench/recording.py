"""Recorder CPU per recorded track: N TrackRecorders fed in real time from pre-recorded RTP.

The RTP is made once, before anything is measured, with aiortc's own encoders and payloaders
(tests/support/rtp_media.py): a 640x480 30 fps VP8 moving picture (~0.6 Mbit/s, ~75 packets/s)
or a 20 ms Opus tone (50 packets/s). An asyncio loop then plays it to N recorders on its real
schedule (a 10 ms tick, arrival times stamped as forwarding would), through the recorders' real
``feed`` and a real :class:`~atrium_media.recording.RecorderPool`, which writes N Matroska files
to a temporary folder.

Figures over the measured window (after a warm-up that fills the reorder buffers and opens the
files):

* ``cpu_percent``: process CPU (every thread) minus the same playback loop feeding no-op sinks,
  in % of one core, so it is what recording adds; ``cpu_percent_per_track`` is that over N;
* ``writer_cpu_percent``: the pool threads' own CPU (depacketizing, muxing, writing);
* ``feed_us_per_packet``: wall time the event loop spends in ``feed`` per packet, less the same
  loop calling a no-op (the only part of recording on the loop).

``measure_recorder_cpu(tracks, kind, seconds)`` returns one row; ``run()`` a few;
``python -m bench.recording [seconds] [N ...]`` prints them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiortc.rtp import RtpPacket

from atrium_media.recording import RecorderPool, TrackRecorder
from tests.support.rtp_media import RtpStream, audio_stream, video_stream

KINDS = ("video", "audio")
TICK = 0.01
WARMUP = 1.5


@dataclass
class RecorderCpuRow:
    kind: str  # "video" (VP8 640x480 30 fps) or "audio" (Opus, 20 ms packets)
    tracks: int
    seconds: float
    packets_per_second: float  # per track
    cpu_percent: float  # what recording adds to the process, % of one core
    cpu_percent_per_track: float
    writer_cpu_percent: float | None  # the recorder pool's threads, % of one core
    feed_us_per_packet: float  # event-loop time in TrackRecorder.feed
    packets_dropped: int
    frames_written: int
    bytes_written: int


_STREAMS: dict[tuple[str, int], RtpStream] = {}


def _stream(kind: str, seconds: float) -> RtpStream:
    length = round(seconds + WARMUP + 1)
    stream = _STREAMS.get((kind, length))
    if stream is None:
        if kind == "video":
            stream = video_stream("vp8", length, width=640, height=480, keyframe_every=90)
        elif kind == "audio":
            stream = audio_stream(length)
        else:
            raise ValueError(f"kind must be one of {KINDS}")
        _STREAMS[kind, length] = stream
    return stream


async def _play(
    stream: RtpStream,
    sinks: list[Callable[[RtpPacket, float], None]],
    seconds: float,
    on_window: Callable[[bool], None],
) -> tuple[int, float]:
    """Feed every sink the stream on its schedule; ``on_window(True/False)`` brackets the
    measured window. Returns (packets fed per sink in the window, seconds spent in sinks)."""
    first = stream.packets[0][1]
    schedule = [(arrival - first, packet) for packet, arrival in stream.packets]
    start = time.time()
    index = 0
    fed = 0
    in_sinks = 0.0
    measuring = False
    end = WARMUP + seconds
    while True:
        elapsed = time.time() - start
        if not measuring and elapsed >= WARMUP:
            measuring = True
            on_window(True)
        if elapsed >= end:
            on_window(False)
            return fed, in_sinks
        t0 = time.perf_counter()
        while index < len(schedule) and schedule[index][0] <= elapsed:
            offset, packet = schedule[index]
            arrival = start + offset
            for sink in sinks:
                sink(packet, arrival)
            index += 1
            if measuring:
                fed += 1
        if measuring:
            in_sinks += time.perf_counter() - t0
        await asyncio.sleep(TICK)


async def measure_recorder_cpu_async(
    tracks: int, kind: str = "video", seconds: float = 5.0
) -> RecorderCpuRow:
    stream = _stream(kind, seconds)
    suffix = "mkv" if kind == "video" else "mka"

    # Baseline: the same playback to no-op sinks.
    marks: list[float] = []

    def mark(_: bool) -> None:
        marks.append(time.process_time())

    def nothing(packet: RtpPacket, arrival: float) -> None:
        return None

    _, in_nothing = await _play(stream, [nothing] * tracks, seconds, mark)
    baseline = marks[1] - marks[0]

    pool = RecorderPool()
    with tempfile.TemporaryDirectory(prefix="atrium-bench-rec-") as folder:
        recorders = [
            TrackRecorder(
                Path(folder) / f"RT{i}.{suffix}", stream.mime_type, stream.clock_rate, pool=pool
            )
            for i in range(tracks)
        ]
        window: dict[str, float] = {}

        def bracket(opening: bool) -> None:
            label = "start" if opening else "end"
            window[f"{label}_cpu"] = time.process_time()
            window[f"{label}_wall"] = time.perf_counter()
            pool_cpu = pool.cpu_seconds()
            if pool_cpu is not None:
                window[f"{label}_pool"] = pool_cpu

        try:
            fed, in_feed = await _play(stream, [r.feed for r in recorders], seconds, bracket)
            results = [await recorder.stop() for recorder in recorders]
        finally:
            pool.close(timeout=10)
    wall = window["end_wall"] - window["start_wall"]
    cpu = 100 * ((window["end_cpu"] - window["start_cpu"]) - baseline) / wall
    writer: float | None = None
    if "start_pool" in window and "end_pool" in window:
        writer = round(100 * (window["end_pool"] - window["start_pool"]) / wall, 2)
    return RecorderCpuRow(
        kind=kind,
        tracks=tracks,
        seconds=round(wall, 2),
        packets_per_second=round(fed / wall, 1),
        cpu_percent=round(cpu, 2),
        cpu_percent_per_track=round(cpu / tracks, 3),
        writer_cpu_percent=writer,
        feed_us_per_packet=round(1e6 * max(0.0, in_feed - in_nothing) / max(1, fed * tracks), 2),
        packets_dropped=sum(r.packets_dropped for r in results),
        frames_written=sum(r.frames for r in results),
        bytes_written=sum(r.size for r in results),
    )


def measure_recorder_cpu(tracks: int, kind: str = "video", seconds: float = 5.0) -> RecorderCpuRow:
    """One row: ``tracks`` recorders of ``kind`` for ``seconds`` (blocking; its own loop)."""
    return asyncio.run(measure_recorder_cpu_async(tracks, kind, seconds))


async def run_async(
    counts: tuple[int, ...] = (1, 10), seconds: float = 5.0, kinds: tuple[str, ...] = KINDS
) -> list[RecorderCpuRow]:
    return [await measure_recorder_cpu_async(n, kind, seconds) for kind in kinds for n in counts]


def run(
    counts: tuple[int, ...] = (1, 10), seconds: float = 5.0, kinds: tuple[str, ...] = KINDS
) -> list[RecorderCpuRow]:
    return asyncio.run(run_async(counts, seconds, kinds))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 5.0
    counts = tuple(int(a) for a in args[1:]) or (1, 10)
    print(f"cpus={os.cpu_count()} seconds={seconds}")
    for row in run(counts, seconds):
        print(row)


if __name__ == "__main__":
    main()
