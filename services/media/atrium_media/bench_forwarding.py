"""CPU of forwarding one video stream to N subscribers: RTP forwarding vs aiortc's MediaRelay.

Everything runs in one process on 127.0.0.1 (publisher, worker, N subscribers), so the figure is
process CPU, not worker-only CPU. To isolate the worker's share, both modes use the same publisher
(one aiortc VP8 encode) and the same cheap subscribers (their receivers drop frames before the
decoder with :class:`~atrium_media.forwarding.FrameSink` and count them); only the worker differs:

* ``forward``: :class:`~atrium_media.router.MediaRouter` (no decode, no encode);
* ``relay``: stock aiortc: the worker decodes once, ``MediaRelay`` fans out, one VP8 encoder per
  subscriber.

``run()`` returns one row per (mode, N) with CPU % of one core and frames/s per subscriber.
``python -m atrium_media.bench_forwarding [seconds] [N ...]`` prints them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import VideoStreamTrack
from av import VideoFrame

from atrium_media import aiortc_compat as compat
from atrium_media.forwarding import FrameSink
from atrium_media.ice import configure_host_addresses
from atrium_media.router import MediaRouter

WIDTH, HEIGHT = 640, 480


@dataclass
class BenchRow:
    mode: str
    subscribers: int
    seconds: float
    cpu_percent: float
    frames_per_second: float  # mean over subscribers


class _Pattern(VideoStreamTrack):
    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        luma = frame.planes[0]
        row = bytearray(luma.line_size)
        x = (self._n * 8) % (WIDTH - 32)
        row[x : x + 32] = b"\xeb" * 32
        luma.update(bytes(row) * HEIGHT)
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        self._n += 1
        return frame


async def _negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def _counting_sink(transceiver: RTCRtpTransceiver) -> FrameSink:
    receiver = transceiver.receiver
    sink = FrameSink(receiver.__dict__[compat.RECEIVER_DECODER_QUEUE])
    receiver.__dict__[compat.RECEIVER_DECODER_QUEUE] = sink
    return sink


async def _measure(mode: str, subscribers: int, seconds: float, warmup: float) -> BenchRow:
    pcs: list[RTCPeerConnection] = []

    def pc() -> RTCPeerConnection:
        new = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.append(new)
        return new

    try:
        publisher, worker_pub = pc(), pc()
        publisher.addTrack(_Pattern())
        await _negotiate(publisher, worker_pub)
        router = MediaRouter("bench")
        relay = MediaRelay()
        inbound = worker_pub.getTransceivers()[0]
        if mode == "forward":
            router.add_published_track("pub", "video", inbound)
        sinks: list[FrameSink] = []
        for i in range(subscribers):
            worker_sub, client = pc(), pc()
            if mode == "forward":
                router.subscribe(f"sub{i}", worker_sub, "video")
            else:
                worker_sub.addTrack(relay.subscribe(inbound.receiver.track))
            await _negotiate(worker_sub, client)
            sinks.append(_counting_sink(client.getTransceivers()[0]))
        await asyncio.sleep(warmup)
        frames0 = [s.discarded for s in sinks]
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.monotonic()
        frames = [s.discarded - f for s, f in zip(sinks, frames0, strict=True)]
        wall = wall1 - wall0
        router.close()
        return BenchRow(
            mode=mode,
            subscribers=subscribers,
            seconds=round(wall, 2),
            cpu_percent=round(100 * (cpu1 - cpu0) / wall, 1),
            frames_per_second=round(sum(frames) / len(frames) / wall, 1) if frames else 0.0,
        )
    finally:
        await asyncio.gather(*(p.close() for p in pcs))


async def run_async(
    subscriber_counts: tuple[int, ...] = (1, 10, 30),
    seconds: float = 10.0,
    modes: tuple[str, ...] = ("forward", "relay"),
    warmup: float = 2.0,
    relay_max_subscribers: int = 10,
) -> list[BenchRow]:
    configure_host_addresses()
    rows: list[BenchRow] = []
    for mode in modes:
        for n in subscriber_counts:
            if mode == "relay" and n > relay_max_subscribers:
                continue  # one VP8 encoder per subscriber: beyond a few the box saturates
            rows.append(await _measure(mode, n, seconds, warmup))
    return rows


def run(
    subscriber_counts: tuple[int, ...] = (1, 10, 30),
    seconds: float = 10.0,
    modes: tuple[str, ...] = ("forward", "relay"),
) -> list[BenchRow]:
    """Measure and return rows (blocking; starts its own event loop)."""
    return asyncio.run(run_async(subscriber_counts, seconds, modes))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else 10.0
    counts = tuple(int(a) for a in args[1:]) or (1, 10, 30)
    print(f"cpus={os.cpu_count()} frame={WIDTH}x{HEIGHT} seconds={seconds}")
    for row in run(counts, seconds):
        print(row)


if __name__ == "__main__":
    main()
