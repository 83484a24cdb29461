"""Forwarding through the media worker core with real aiortc peers on 127.0.0.1.

publisher PC --(VP8 video, Opus tone, data channel)--> worker PC (publisher side)
worker PC (one per subscriber) --(forwarded RTP, fanned-out data)--> subscriber PC (decodes)

All peers live in this process and negotiate directly (no RSP). Waits use deadlines, not sleeps.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import hashlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiortc.rtcrtpreceiver
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpTransceiver,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from av import AudioFrame, VideoFrame

from atrium_media.forwarding.router import MediaRouter
from atrium_media.ice import configure_host_addresses
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

WIDTH, HEIGHT = 160, 120
PUBLISHER = "PA-publisher"
VIDEO, AUDIO, DATA = "MT-video", "MT-audio", "MT-data"


class MovingBarTrack(VideoStreamTrack):
    """30 fps frames with a bright bar that moves every frame, so frames differ."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        luma = frame.planes[0]
        row = bytearray(luma.line_size)
        x = (self.count * 4) % (WIDTH - 16)
        row[x : x + 16] = b"\xeb" * 16
        luma.update(bytes(row) * HEIGHT)
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        self.count += 1
        return frame


class ToneTrack(AudioStreamTrack):
    """A 400 Hz sine, 48 kHz mono, 20 ms frames (8 whole periods each)."""

    RATE = 48000
    SAMPLES = 960

    def __init__(self) -> None:
        super().__init__()
        samples = array.array(
            "h",
            (int(8000 * math.sin(2 * math.pi * 400 * i / self.RATE)) for i in range(self.SAMPLES)),
        )
        self._pcm = samples.tobytes()
        self._pts = 0
        self._t0: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.time()
        else:
            self._pts += self.SAMPLES
            await asyncio.sleep(self._t0 + self._pts / self.RATE - time.time())
        frame = AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(self._pcm)
        frame.pts = self._pts
        frame.sample_rate = self.RATE
        frame.time_base = fractions.Fraction(1, self.RATE)
        return frame


def rms(frame: AudioFrame) -> float:
    used = frame.samples * 2 * len(frame.layout.channels)
    samples = array.array("h", bytes(frame.planes[0])[:used])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples))


async def wait_for(predicate: Callable[[], bool], timeout: float, message: str) -> None:
    """Wait until ``predicate()`` holds (polled every 20 ms: media moves fast)."""
    await eventually(predicate, timeout=timeout, interval=0.02, message=message)


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)


def new_pc(pcs: list[RTCPeerConnection]) -> RTCPeerConnection:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs.append(pc)
    return pc


@dataclass
class Subscriber:
    """A client PC that decodes what the worker forwards, and the worker PC serving it."""

    ident: str
    pc: RTCPeerConnection
    worker_pc: RTCPeerConnection
    video_frames: list[tuple[float, str]] = field(default_factory=list)
    audio_rms: list[float] = field(default_factory=list)
    messages: list[str | bytes] = field(default_factory=list)
    channel_open: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    digest = hashlib.sha1(bytes(frame.planes[0])).hexdigest()
                    self.video_frames.append((time.monotonic(), digest))
                elif isinstance(frame, AudioFrame):
                    self.audio_rms.append(rms(frame))
        except MediaStreamError:
            pass

    def watch(self) -> None:
        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tasks.append(asyncio.ensure_future(self._consume(track)))

        @self.pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            channel.on("message", self.messages.append)
            self.channel_open.set()


@dataclass
class Rig:
    router: MediaRouter
    publisher: RTCPeerConnection
    worker_pub: RTCPeerConnection
    video: MovingBarTrack
    channel: RTCDataChannel
    pcs: list[RTCPeerConnection]
    subscribers: list[Subscriber] = field(default_factory=list)

    async def add_subscriber(self, ident: str, data: bool = True) -> Subscriber:
        worker_pc = new_pc(self.pcs)
        sub = Subscriber(ident, new_pc(self.pcs), worker_pc)
        sub.watch()
        self.router.subscribe(ident, worker_pc, VIDEO)
        self.router.subscribe(ident, worker_pc, AUDIO)
        if data:
            self.router.subscribe_data(ident, DATA, worker_pc.createDataChannel("data"))
        await negotiate(worker_pc, sub.pc)
        self.subscribers.append(sub)
        return sub


@pytest.fixture
def decoders_created(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Records (mime type, thread name) for every decoder aiortc creates in this process."""
    created: list[tuple[str, str]] = []
    original = aiortc.rtcrtpreceiver.get_decoder  # type: ignore[attr-defined]

    def counting_get_decoder(codec: Any) -> Any:
        created.append((codec.mimeType.lower(), threading.current_thread().name))
        return original(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", counting_get_decoder)
    return created


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    configure_host_addresses(["127.0.0.1"])
    pcs: list[RTCPeerConnection] = []
    router = MediaRouter("RM-test")
    publisher = new_pc(pcs)
    worker_pub = new_pc(pcs)
    video = MovingBarTrack()
    publisher.addTrack(video)
    publisher.addTrack(ToneTrack())
    channel = publisher.createDataChannel("data")

    @worker_pub.on("datachannel")
    def on_datachannel(incoming: RTCDataChannel) -> None:
        router.add_data_track(PUBLISHER, DATA, incoming)

    await negotiate(publisher, worker_pub)
    transceivers: list[RTCRtpTransceiver] = worker_pub.getTransceivers()
    for transceiver in transceivers:
        track_id = VIDEO if transceiver.kind == "video" else AUDIO
        router.add_published_track(PUBLISHER, track_id, transceiver)
    rig = Rig(router, publisher, worker_pub, video, channel, pcs)
    try:
        await wait_for(
            lambda: worker_pub.connectionState == "connected" and channel.readyState == "open",
            10,
            "publisher connected",
        )
        yield rig
    finally:
        for sub in rig.subscribers:
            for task in sub.tasks:
                task.cancel()
        router.close()
        await asyncio.gather(*(pc.close() for pc in pcs))


def distinct_frames(sub: Subscriber) -> int:
    return len({digest for _, digest in sub.video_frames})


async def test_forwards_video_audio_and_data_without_decoding(
    rig: Rig, decoders_created: list[tuple[str, str]]
) -> None:
    subs = [await rig.add_subscriber("PA-sub1"), await rig.add_subscriber("PA-sub2")]
    await wait_for(
        lambda: (
            all(s.channel_open.is_set() for s in subs)
            and all(len(s.video_frames) >= 15 and len(s.audio_rms) >= 25 for s in subs)
        ),
        10,
        "video and audio at both subscribers",
    )
    for sub in subs:
        assert distinct_frames(sub) >= 10, "decoded frames must change (moving bar)"
        loud = [level for level in sub.audio_rms[5:] if level > 500]
        assert len(loud) >= 10, f"audio should carry the tone, got RMS {sub.audio_rms[:20]}"

    sent: list[str | bytes] = ["hello", b"\x00\x01binary", "ünïcode", b"", "last"]
    for message in sent:
        rig.channel.send(message)
    await wait_for(lambda: all(len(s.messages) >= len(sent) for s in subs), 10, "data messages")
    for sub in subs:
        assert sub.messages == sent
        assert [type(m) for m in sub.messages] == [type(m) for m in sent]

    # The worker never decoded: the only decoders are the subscribers' (one per kind each),
    # and the worker's receivers dropped their re-assembled frames before the decoder thread.
    video_decoders = [mime for mime, _ in decoders_created if mime == "video/vp8"]
    assert len(video_decoders) == len(subs)
    stats = rig.router.stats()
    video_stats = next(t for t in stats.tracks if t.track_id == VIDEO)
    assert video_stats.frames_discarded > 0
    assert video_stats.packets_forwarded > 0
    assert stats.legs == 4 and stats.active_legs == 4
    assert stats.data_messages_delivered == 2 * len(sent)
    worker_track = rig.router.published_track(VIDEO).receiver.track
    assert isinstance(worker_track, RemoteStreamTrack)
    assert worker_track._queue.qsize() == 0, "the worker's track never buffers frames"

    # Late joiner: the PLI relay makes the publisher (GOP of 100 s) send a keyframe on join.
    requests_before = video_stats.keyframe_requests_sent
    late = await rig.add_subscriber("PA-late", data=False)
    await wait_for(lambda: late.pc.connectionState == "connected", 10, "late joiner connected")
    connected_at = time.monotonic()
    await wait_for(lambda: bool(late.video_frames), 5, "late joiner's first decoded frame")
    first_frame_ms = (late.video_frames[0][0] - connected_at) * 1000
    print(f"late joiner: connected -> first decoded frame {first_frame_ms:.0f} ms")
    after = rig.router.published_track(VIDEO).stats()
    assert after.keyframe_requests_sent > requests_before


async def test_disable_stops_frames_and_enable_resumes(rig: Rig) -> None:
    sub = await rig.add_subscriber("PA-sub")
    await wait_for(lambda: len(sub.video_frames) >= 10, 10, "frames before pause")

    forwarder = rig.router.published_track(VIDEO)
    rig.router.set_enabled(VIDEO, False)
    frames_at_pause = len(sub.video_frames)
    forwarded_at_pause = forwarder.packets_forwarded
    received_at_pause = forwarder.packets_received
    await wait_for(
        lambda: forwarder.packets_received >= received_at_pause + 30,
        5,
        "publisher keeps sending while disabled",
    )
    assert forwarder.packets_forwarded == forwarded_at_pause, "nothing forwarded while disabled"
    paused_count = len(sub.video_frames)
    # At most the frame held in the subscriber's jitter buffer completes after the pause.
    assert paused_count - frames_at_pause <= 1
    assert forwarder.stats().legs[0].state == "paused"

    rig.router.set_enabled(VIDEO, True)
    await wait_for(lambda: len(sub.video_frames) >= paused_count + 10, 5, "frames after resume")
    recent = {digest for _, digest in sub.video_frames[paused_count:]}
    assert len(recent) >= 5


async def test_subscriber_leaving_does_not_break_others(rig: Rig) -> None:
    stay = await rig.add_subscriber("PA-stay")
    leave = await rig.add_subscriber("PA-leave")
    await wait_for(
        lambda: len(stay.video_frames) >= 5 and len(leave.video_frames) >= 5, 10, "both receive"
    )
    assert rig.router.leg_count() == 4

    # The leaving client vanishes without telling the router; its worker PC closes.
    await leave.pc.close()
    await leave.worker_pc.close()
    await wait_for(lambda: rig.router.leg_count() == 2, 5, "dead legs dropped")

    before = len(stay.video_frames)
    await wait_for(lambda: len(stay.video_frames) >= before + 15, 5, "remaining subscriber")

    # Explicit removal of a participant releases its legs and data subscription too.
    rig.router.remove_participant("PA-stay")
    assert rig.router.leg_count() == 0
    stats = rig.router.stats()
    assert stats.data_subscriptions == 0
