"""Recording in the media worker core with real aiortc peers on 127.0.0.1.

publisher PC --(VP8 moving picture, Opus tone)--> worker PC: MediaRouter taps both tracks into
TrackRecorders (no subscriber at all); the files decode with PyAV to the right codecs and
durations, a moving picture and a tone, on one clock.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import AudioFrame, VideoFrame

from atrium_media.forwarding import MediaRouter
from atrium_media.ice import configure_host_addresses
from atrium_media.recording import RecorderPool, TrackRecorder
from tests.support.rtp_media import decode_file, moving_picture, tone
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(60)

RECORD_SECONDS = 4.0


class PictureTrack(VideoStreamTrack):
    """A moving picture on aiortc's schedule; ``lag`` is how far behind it the encoder ran.

    A starved machine makes aiortc's sender fall behind and catch up: its timestamps stay on the
    schedule, so the recorder rightly maps the first sample to its (earlier) capture time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.lag = 0.0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.lag = max(self.lag, time.time() - (self._start + pts / 90000))
        frame = moving_picture(self.count, 320, 240)
        frame.pts, frame.time_base = pts, time_base
        self.count += 1
        return frame


class ToneTrack(AudioStreamTrack):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.start: float | None = None
        self.lag = 0.0  # as PictureTrack's

    async def recv(self) -> AudioFrame:
        if self.start is None:
            self.start = time.time()
        else:
            scheduled = self.start + self.count * 0.02
            await asyncio.sleep(max(0.0, scheduled - time.time()))
            self.lag = max(self.lag, time.time() - scheduled)
        frame = tone(self.count)
        frame.time_base = fractions.Fraction(1, 48000)
        self.count += 1
        return frame


@pytest.fixture
async def pcs() -> AsyncIterator[list[RTCPeerConnection]]:
    configure_host_addresses(["127.0.0.1"])
    made: list[RTCPeerConnection] = []
    yield made
    await asyncio.gather(*(pc.close() for pc in made))


async def test_the_worker_records_what_a_publisher_sends(
    pcs: list[RTCPeerConnection], tmp_path: Path
) -> None:
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    worker = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pcs += [publisher, worker]
    picture_track, tone_track = PictureTrack(), ToneTrack()
    publisher.addTrack(picture_track)
    publisher.addTrack(tone_track)
    await publisher.setLocalDescription(await publisher.createOffer())
    await worker.setRemoteDescription(publisher.localDescription)
    await worker.setLocalDescription(await worker.createAnswer())
    await publisher.setRemoteDescription(worker.localDescription)

    router = MediaRouter("RM-recorded")
    ids = {}
    for transceiver in worker.getTransceivers():
        ids[transceiver.kind] = f"MT-{transceiver.kind}"
        router.add_published_track("PA-1", ids[transceiver.kind], transceiver)
    await eventually(lambda: worker.connectionState == "connected", timeout=10, message="connected")

    pool = RecorderPool(threads=1)
    recorders = {}
    try:
        started = time.time()
        for kind, track_id in ids.items():
            codec = router.published_track(track_id).codec
            assert codec is not None
            suffix = "mkv" if kind == "video" else "mka"
            recorders[kind] = TrackRecorder(
                tmp_path / f"{kind}.{suffix}", codec.mimeType, codec.clockRate, pool=pool
            )
            router.record(track_id, recorders[kind])
        await asyncio.sleep(RECORD_SECONDS)
        for track_id in ids.values():
            router.stop_recording(track_id)
        stopped = time.time()
        results = {kind: await recorder.stop() for kind, recorder in recorders.items()}
    finally:
        router.close()
        pool.close(timeout=5)

    video, audio = results["video"], results["audio"]
    assert (video.codec, audio.codec) == ("VP8", "OPUS")
    assert not video.failed and not audio.failed
    assert video.packets_dropped == audio.packets_dropped == 0
    lags = {"video": picture_track.lag, "audio": tone_track.lag}
    for kind, result in results.items():
        assert result.first_sample_time is not None
        # The first sample recorded was captured after the recorder started, less however far
        # behind its schedule that sender ran (0 on an idle machine).
        assert started - lags[kind] - 0.1 <= result.first_sample_time <= started + 1.0
        assert result.duration == pytest.approx(stopped - result.first_sample_time, abs=0.7)
    # One clock: the two tracks start within a fraction of a second of each other.
    skew = abs(video.first_sample_time - audio.first_sample_time)  # type: ignore[operator]
    assert skew < 0.5 + max(lags.values())

    picture = decode_file(str(tmp_path / "video.mkv"))
    assert (picture.codec, picture.width, picture.height) == ("vp8", 320, 240)
    assert picture.duration == pytest.approx(RECORD_SECONDS, abs=1.0)
    assert picture.distinct_pictures > 30
    sound = decode_file(str(tmp_path / "audio.mka"))
    assert sound.codec == "opus"
    assert sound.duration == pytest.approx(RECORD_SECONDS, abs=1.0)
    assert sound.rms > 0.05
