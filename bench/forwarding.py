"""Worker CPU of forwarding one video stream to N subscribers: RTP forwarding vs MediaRelay.

The worker side runs in a process of its own (``python -m bench.forwarding serve
MODE``, driven by :class:`WorkerProcess` over JSON lines on stdin/stdout), so its CPU figure is
the worker's alone: the publisher's VP8 encoding and the subscribers' receiving happen in the
calling process and are not counted. The worker process holds the publisher-facing peer
connection and one peer connection per subscriber, nothing else:

* ``forward``: :class:`~atrium_media.forwarding.router.MediaRouter` (no decode, no encode);
* ``relay``: stock aiortc: the worker decodes once, ``MediaRelay`` fans out, one VP8 encoder per
  subscriber;
* ``forward-av``: ``forward`` with an audio tone too (an audio and a video leg per subscriber);
* ``forward-av-msp``: ``forward-av`` with dominant speaker and network quality running;
* ``forward-av-rec``: ``forward-av`` with both published tracks recorded as a room host records
  them (``MediaRouter.record`` taps each into a
  :class:`~atrium_media.recording.TrackRecorder` writing Matroska into a temporary folder, on a
  :class:`~atrium_media.recording.RecorderPool` of the worker process), so the worker's CPU
  includes the recorder pool's threads; the pool's own CPU is reported beside it.

Both modes use the same publisher (one aiortc VP8 encode of a moving pattern) and the same cheap
subscribers (their receivers drop frames before the decoder with
:class:`~atrium_media.forwarding.FrameSink` and count them). CPU is ``time.process_time()`` of the
worker process (every thread: aiortc's encoder executor and decoder threads included) over the
measured wall time, in % of one core.

``run()`` returns one row per (mode, N);
``python -m bench.forwarding [seconds] [N ...]`` prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack
from av import VideoFrame

from atrium_media import aiortc_compat as compat
from atrium_media.extensions import (
    DominantSpeakerDetector,
    build_network_quality_message,
)
from atrium_media.forwarding.router import MediaRouter
from atrium_media.forwarding.track import FrameSink
from atrium_media.ice import configure_host_addresses
from atrium_media.recording import RecorderPool, TrackRecorder, recording_format
from atrium_media.signaling.link_quality import LinkQuality
from atrium_video.tracks import ToneSource
from bench.procs import REPO_ROOT

WIDTH, HEIGHT = 640, 480
LOOPBACK_ONLY = ("127.0.0.1",)
MODES = ("forward", "relay", "forward-av", "forward-av-msp", "forward-av-rec")
# Modes whose publisher also sends an audio tone (forwarded as a second leg per subscriber).
AUDIO_MODES = ("forward-av", "forward-av-msp", "forward-av-rec")
# Modes that record every published track in the worker process.
RECORDING_MODES = ("forward-av-rec",)
WORKER_START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0


@dataclass
class BenchRow:
    mode: str
    subscribers: int
    seconds: float
    cpu_percent: float  # worker process, % of one core
    cpu_percent_per_stream: float  # cpu_percent / subscribers
    frames_per_second: float  # mean over subscribers
    client_cpu_percent: float  # publisher + subscribers (the calling process), for context
    packets_forwarded: int | None = None  # forward mode: the router's count over the window
    kbps_per_stream: float | None = None  # forward mode: bytes forwarded per subscriber
    publisher_fps: float | None = None  # frames the publisher's track handed to its encoder
    # Recording modes: the recorder pool threads' CPU over the window (% of one core, part of
    # cpu_percent), the tracks recorded, and what the recordings wrote by the end.
    recorder_cpu_percent: float | None = None
    recorded_tracks: int | None = None
    recorded_packets_dropped: int | None = None
    recorded_frames: int | None = None
    recorded_bytes: int | None = None

    @property
    def legs(self) -> int:
        """Forwarded legs: one per subscriber, two (audio + video) in the A+V modes."""
        return self.subscribers * (2 if self.mode in AUDIO_MODES else 1)

    @property
    def cpu_percent_per_leg(self) -> float:
        return round(self.cpu_percent / self.legs, 3) if self.legs else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "legs": self.legs, "cpu_percent_per_leg": self.cpu_percent_per_leg}


def _blocky_luma(seed: int, block: int = 8) -> bytes:
    """A WIDTHxHEIGHT luma plane of random grey ``block``x``block`` squares."""
    rng = random.Random(seed)
    rows: list[bytes] = []
    for _ in range(HEIGHT // block):
        row = b"".join(bytes([rng.randrange(32, 224)]) * block for _ in range(WIDTH // block))
        rows.append(row * block)
    return b"".join(rows)


class PatternTrack(VideoStreamTrack):
    """640x480 frames cycling through ``PATTERN_FRAMES`` unrelated blocky pictures.

    Consecutive frames are unpredictable from each other, so the encoder spends its whole target
    bitrate (aiortc's VP8 default, about 500 kbps) as a real camera would, instead of the few
    bytes per frame a static or scrolling pattern costs. Subclasses may rewrite
    :meth:`luma` (e.g. to stamp a frame number into the picture).
    """

    PATTERN_FRAMES = 8

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0
        self._lumas = [_blocky_luma(seed) for seed in range(self.PATTERN_FRAMES)]

    def luma(self, n: int) -> bytes:
        return self._lumas[n % len(self._lumas)]

    def sent(self, n: int) -> None:
        """Called as frame ``n`` leaves :meth:`recv` (towards the encoder)."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        n = self.frames
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        luma = frame.planes[0]
        data = self.luma(n)
        if luma.line_size != WIDTH:  # padded rows
            data = b"".join(
                data[y * WIDTH : (y + 1) * WIDTH].ljust(luma.line_size, b"\x80")
                for y in range(HEIGHT)
            )
        luma.update(data)
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        self.frames += 1
        self.sent(n)
        return frame


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def counting_sink(transceiver: RTCRtpTransceiver) -> FrameSink:
    """Replace the receiver's decoder queue: frames are counted and dropped, never decoded."""
    receiver = transceiver.receiver
    sink = FrameSink(receiver.__dict__[compat.RECEIVER_DECODER_QUEUE])
    receiver.__dict__[compat.RECEIVER_DECODER_QUEUE] = sink
    return sink


def _sdp(description: RTCSessionDescription | None) -> dict[str, str]:
    assert description is not None
    return {"sdp": description.sdp, "type": description.type}


def _description(message: dict[str, Any]) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=message["sdp"], type=message["type"])


# ------------------------------------------------------------------------------ worker process


class _WorkerSide:
    """What runs in the worker process: the publisher's PC, one PC per subscriber, the fan-out."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self.router = MediaRouter("bench")
        self.relay = MediaRelay()
        self.publisher: RTCPeerConnection | None = None
        self.inbound: MediaStreamTrack | None = None
        self.subscribers: dict[str, RTCPeerConnection] = {}
        self.extensions: ExtensionLoad | None = None
        self.recording: RecordingLoad | None = None

    async def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        op = message.get("op")
        if op == "publish":
            pc = self.publisher = new_pc()
            await pc.setRemoteDescription(_description(message))
            transceiver = pc.getTransceivers()[0]
            if self.mode.startswith("forward"):
                for published in pc.getTransceivers():
                    self.router.add_published_track("pub", published.kind, published)
            if self.mode == "forward-av-msp":
                self.extensions = ExtensionLoad(self.router)
            self.inbound = transceiver.receiver.track
            await pc.setLocalDescription(await pc.createAnswer())
            if self.mode in RECORDING_MODES:
                self.recording = RecordingLoad(self.router, [t.kind for t in pc.getTransceivers()])
            return _sdp(pc.localDescription)
        if op == "subscribe":
            pc = self.subscribers[message["id"]] = new_pc()
            if self.mode.startswith("forward"):
                self.router.subscribe(message["id"], pc, "video")
                if self.mode in AUDIO_MODES:
                    self.router.subscribe(message["id"], pc, "audio")
                if self.extensions is not None:
                    self.extensions.participants.append(message["id"])
            else:
                assert self.inbound is not None, "publish first"
                pc.addTrack(self.relay.subscribe(self.inbound))
            await pc.setLocalDescription(await pc.createOffer())
            return _sdp(pc.localDescription)
        if op == "answer":
            await self.subscribers[message["id"]].setRemoteDescription(_description(message))
            return {}
        if op == "sample":
            stats = self.router.stats() if self.mode.startswith("forward") else None
            return {
                "cpu": time.process_time(),
                "wall": time.monotonic(),
                "packets_forwarded": stats.packets_forwarded if stats else None,
                "bytes_forwarded": stats.bytes_forwarded if stats else None,
                **(self.recording.sample() if self.recording else {}),
            }
        if op == "finish":
            return await self.recording.finish() if self.recording else {}
        if op == "close":
            await self.close()
            return {}
        raise ValueError(f"unknown op {op!r}")

    async def close(self) -> None:
        if self.extensions is not None:
            await self.extensions.stop()
            self.extensions = None
        if self.recording is not None:
            await self.recording.finish()
            self.recording = None
        self.router.close()
        pcs = [*self.subscribers.values(), *([self.publisher] if self.publisher else [])]
        self.subscribers.clear()
        self.publisher = None
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)


class ExtensionLoad:
    """What a room host does for dominant speaker and network quality, for every participant:
    speaker detection fed by every audio packet's level and decided every 100 ms; a link sample
    and a network quality estimate per participant each second; and a verbosity-1 answer with
    every remote level to each participant's request, one per 1.2 s as twilio-video.js asks."""

    def __init__(self, router: MediaRouter) -> None:
        self.router = router
        self.participants: list[str] = ["pub"]
        self.detector = DominantSpeakerDetector()
        self.qualities: dict[str, LinkQuality] = {}
        self.answers = 0
        router.on_audio_level(
            lambda sid, level, voice: self.detector.observe(sid, level, time.monotonic(), voice)
        )
        self._tasks = [
            asyncio.create_task(loop()) for loop in (self._speaker, self._quality, self._requests)
        ]

    async def _speaker(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.detector.tick(time.monotonic())

    async def _quality(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for sid in list(self.participants):
                quality = self.qualities.setdefault(sid, LinkQuality())
                await quality.observe(self.router, sid, time.monotonic())

    async def _requests(self) -> None:
        while True:
            await asyncio.sleep(1.2)
            for sid in list(self.participants):
                local = self.qualities.setdefault(sid, LinkQuality()).report
                remotes = [(o, q.report) for o, q in self.qualities.items() if o != sid]
                build_network_quality_message(
                    local, remotes, local_verbosity=1, remote_verbosity=1
                ).to_json()
                self.answers += 1

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class RecordingLoad:
    """What a room host does for a recorded room: every published track tapped into a
    :class:`TrackRecorder` (``MediaRouter.record``) on a recorder pool of this process, each
    writing its Matroska file (here into a temporary folder); :meth:`finish` completes the files
    as the end of a recording does."""

    def __init__(self, router: MediaRouter, track_ids: list[str]) -> None:
        self.router = router
        self.pool = RecorderPool()
        self.folder = tempfile.TemporaryDirectory(prefix="atrium-bench-worker-rec-")
        self.recorders: list[TrackRecorder] = []
        self.results: dict[str, Any] | None = None
        for track_id in track_ids:
            codec = router.published_track(track_id).codec
            if codec is None:
                raise RuntimeError(f"track {track_id}: no codec negotiated")
            _, container = recording_format(codec.mimeType)
            path = Path(self.folder.name) / f"{track_id}.{container}"
            recorder = TrackRecorder(path, codec.mimeType, codec.clockRate, pool=self.pool)
            router.record(track_id, recorder)
            self.recorders.append(recorder)

    def sample(self) -> dict[str, Any]:
        return {
            "recorder_cpu": self.pool.cpu_seconds(),
            "recorded_tracks": len(self.recorders),
            "recorded_dropped": sum(r.packets_dropped for r in self.recorders),
        }

    async def finish(self) -> dict[str, Any]:
        """Stop the taps and complete every file (once); what was written."""
        if self.results is not None:
            return self.results
        for track_id in self.router.recorded_tracks():
            self.router.stop_recording(track_id)
        try:
            results = [await recorder.stop() for recorder in self.recorders]
        finally:
            self.pool.close(timeout=10)
            self.folder.cleanup()
        self.results = {
            "frames": sum(r.frames for r in results),
            "bytes": sum(r.size for r in results),
            "dropped": sum(r.packets_dropped for r in results),
            "failed": [r.reason for r in results if r.failed],
        }
        return self.results


async def serve(mode: str) -> None:
    """The worker process: answer one JSON request per stdin line with one JSON stdout line."""
    configure_host_addresses(LOOPBACK_ONLY)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    side = _WorkerSide(mode)
    out = sys.stdout

    def reply(data: dict[str, Any]) -> None:
        out.write(json.dumps(data) + "\n")
        out.flush()

    reply({"ready": True, "pid": os.getpid()})
    try:
        while line := await reader.readline():
            message = json.loads(line)
            try:
                reply({"ok": True, **await side.handle(message)})
            except Exception as exc:
                reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            if message.get("op") == "close":
                break
    finally:
        await side.close()


class WorkerError(RuntimeError):
    pass


class WorkerProcess:
    """The calling side of a worker process (one per measurement, so its CPU starts clean)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._proc: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()  # the worker's stderr, shown when it fails
        self._lock = asyncio.Lock()

    async def start(self) -> WorkerProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.forwarding",
            "serve",
            self.mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            limit=1 << 20,
            cwd=REPO_ROOT,  # `bench` is importable from the repository root
        )
        await self._read(WORKER_START_TIMEOUT)
        return self

    def _log_tail(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-2000:]

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            raise WorkerError(f"worker silent for {timeout:.0f}s:\n{self._log_tail()}") from None
        if not line:
            await self._proc.wait()
            raise WorkerError(f"worker exited with {self._proc.returncode}:\n{self._log_tail()}")
        data: dict[str, Any] = json.loads(line)
        return data

    async def call(self, op: str, **params: Any) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None, "start() first"
        async with self._lock:
            self._proc.stdin.write((json.dumps({"op": op, **params}) + "\n").encode())
            await self._proc.stdin.drain()
            data = await self._read(CALL_TIMEOUT)
        if not data.get("ok"):
            raise WorkerError(f"worker {op} failed: {data.get('error')}")
        return data

    async def publish(self, publisher: RTCPeerConnection) -> None:
        """Offer from ``publisher`` (a client PC with its track added); apply the answer."""
        await publisher.setLocalDescription(await publisher.createOffer())
        answer = await self.call("publish", **_sdp(publisher.localDescription))
        await publisher.setRemoteDescription(_description(answer))

    async def subscribe(self, subscriber_id: str, client: RTCPeerConnection) -> None:
        """The worker offers (one sendonly video m-line); ``client`` answers."""
        offer = await self.call("subscribe", id=subscriber_id)
        await client.setRemoteDescription(_description(offer))
        await client.setLocalDescription(await client.createAnswer())
        await self.call("answer", id=subscriber_id, **_sdp(client.localDescription))

    async def sample(self) -> dict[str, Any]:
        return await self.call("sample")

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                assert proc.stdin is not None
                proc.stdin.write(b'{"op": "close"}\n')
                await proc.stdin.drain()
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self._log.close()


# ------------------------------------------------------------------------------ measurement


async def _measure(mode: str, subscribers: int, seconds: float, warmup: float) -> BenchRow:
    pcs: list[RTCPeerConnection] = []
    worker = await WorkerProcess(mode).start()
    try:
        publisher = new_pc()
        pcs.append(publisher)
        pattern = PatternTrack()
        publisher.addTrack(pattern)
        if mode in AUDIO_MODES:
            publisher.addTrack(ToneSource())
        await worker.publish(publisher)
        sinks: list[FrameSink] = []
        for i in range(subscribers):
            client = new_pc()
            pcs.append(client)
            await worker.subscribe(f"sub{i}", client)
            sinks.append(counting_sink(client.getTransceivers()[0]))
        await asyncio.sleep(warmup)
        frames0 = [s.discarded for s in sinks]
        published0 = pattern.frames
        before = await worker.sample()
        client_cpu0 = time.process_time()
        await asyncio.sleep(seconds)
        after = await worker.sample()
        client_cpu1 = time.process_time()
        recorded = await worker.call("finish") if mode in RECORDING_MODES else None
        if recorded and recorded["failed"]:
            raise WorkerError(f"recording failed in the worker: {recorded['failed']}")
        published = pattern.frames - published0
        frames = [s.discarded - f for s, f in zip(sinks, frames0, strict=True)]
        wall = after["wall"] - before["wall"]
        cpu = 100 * (after["cpu"] - before["cpu"]) / wall
        forwarded = kbps = None
        if after["packets_forwarded"] is not None and subscribers:
            forwarded = after["packets_forwarded"] - before["packets_forwarded"]
            sent = after["bytes_forwarded"] - before["bytes_forwarded"]
            kbps = round(8 * sent / 1000 / wall / subscribers, 1)
        recorder_cpu = None
        if after.get("recorder_cpu") is not None and before.get("recorder_cpu") is not None:
            recorder_cpu = round(100 * (after["recorder_cpu"] - before["recorder_cpu"]) / wall, 2)
        return BenchRow(
            mode=mode,
            subscribers=subscribers,
            seconds=round(wall, 2),
            cpu_percent=round(cpu, 1),
            cpu_percent_per_stream=round(cpu / subscribers, 2) if subscribers else 0.0,
            frames_per_second=round(sum(frames) / len(frames) / wall, 1) if frames else 0.0,
            client_cpu_percent=round(100 * (client_cpu1 - client_cpu0) / wall, 1),
            packets_forwarded=forwarded,
            kbps_per_stream=kbps,
            publisher_fps=round(published / wall, 1),
            recorder_cpu_percent=recorder_cpu,
            recorded_tracks=after.get("recorded_tracks"),
            recorded_packets_dropped=recorded["dropped"] if recorded else None,
            recorded_frames=recorded["frames"] if recorded else None,
            recorded_bytes=recorded["bytes"] if recorded else None,
        )
    finally:
        await worker.stop()
        await asyncio.gather(*(p.close() for p in pcs), return_exceptions=True)


async def run_async(
    subscriber_counts: tuple[int, ...] = (1, 10, 30),
    seconds: float = 10.0,
    modes: tuple[str, ...] = MODES,
    warmup: float = 2.0,
    relay_max_subscribers: int = 10,
) -> list[BenchRow]:
    """One row per (mode, N); relay rows above ``relay_max_subscribers`` are skipped (one VP8
    encoder per subscriber: beyond a few the machine saturates and the figure means nothing)."""
    configure_host_addresses(LOOPBACK_ONLY)
    rows: list[BenchRow] = []
    for mode in modes:
        for n in subscriber_counts:
            if mode == "relay" and n > relay_max_subscribers:
                continue
            rows.append(await _measure(mode, n, seconds, warmup))
    return rows


def run(
    subscriber_counts: tuple[int, ...] = (1, 10, 30),
    seconds: float = 10.0,
    modes: tuple[str, ...] = MODES,
    relay_max_subscribers: int = 10,
) -> list[BenchRow]:
    """Measure and return rows (blocking; starts its own event loop)."""
    return asyncio.run(
        run_async(subscriber_counts, seconds, modes, relay_max_subscribers=relay_max_subscribers)
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        asyncio.run(serve(args[1] if len(args) > 1 else "forward"))
        return
    seconds = float(args[0]) if args else 10.0
    counts = tuple(int(a) for a in args[1:]) or (1, 10, 30)
    print(f"cpus={os.cpu_count()} frame={WIDTH}x{HEIGHT} seconds={seconds}")
    for row in run(counts, seconds):
        print(row)


if __name__ == "__main__":
    main()
