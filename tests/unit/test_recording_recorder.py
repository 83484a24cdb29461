"""TrackRecorder end to end: real RTP (aiortc's encoders and payloaders) in, a Matroska file out,
decoded with PyAV; cut files, the memory bound, failures and keyframe requests."""

from __future__ import annotations

import ast
import itertools
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import atrium_media
from atrium_media.recording import RecorderPool, RecordingResult, TrackRecorder
from atrium_media.recording.depacketize import MediaFrame
from tests.support.rtp_media import (
    RtpStream,
    audio_stream,
    decode_file,
    decoded_pictures,
    dropped,
    shuffled,
    video_stream,
)
from tests.support.waiting import eventually

SECONDS = 6.0


@pytest.fixture
def pool() -> Iterator[RecorderPool]:
    pool = RecorderPool(threads=2, interval=0.01)
    yield pool
    pool.close(timeout=5)


def record(stream: RtpStream, path: Path, pool: RecorderPool, **options: object) -> RecordingResult:
    recorder = TrackRecorder(path, stream.mime_type, stream.clock_rate, pool=pool, **options)  # type: ignore[arg-type]
    for packet, arrival in stream.packets:
        recorder.feed(packet, arrival)
    return recorder.finish().result(timeout=30)


def lossy(stream: RtpStream, every: int) -> tuple[RtpStream, int]:
    packets, lost = dropped(shuffled(stream.packets), every=every)
    return RtpStream(
        stream.mime_type, stream.clock_rate, packets, stream.seconds, stream.frames
    ), lost


@pytest.mark.parametrize(("codec", "name"), [("vp8", "VP8"), ("h264", "H264")])
def test_video_with_reordering_and_loss_records_a_playable_moving_picture(
    codec: str, name: str, tmp_path: Path, pool: RecorderPool
) -> None:
    clean = video_stream(codec, SECONDS, width=640, height=480)
    stream, lost = lossy(clean, every=300)
    assert lost > 0
    path = tmp_path / "RT1.mkv"
    result = record(stream, path, pool)
    reference = record(clean, tmp_path / "reference.mkv", pool)

    assert not result.failed
    assert (result.codec, result.container, result.path) == (name, "mkv", path)
    assert result.size == path.stat().st_size > 10_000
    assert 0 < result.packets_lost <= lost
    assert result.packets_dropped == 0
    assert result.duration == pytest.approx(SECONDS, abs=0.5)
    assert result.first_sample_time == pytest.approx(stream.packets[0][1], abs=0.01)
    # Frames with a lost packet were dropped, and what followed them until a keyframe.
    assert result.frames_dropped > 0
    assert result.frames + result.frames_dropped == stream.frames

    decoded = decode_file(str(path))
    assert (decoded.codec, decoded.width, decoded.height) == (codec, 640, 480)
    assert decoded.frames == result.frames
    assert decoded.duration == pytest.approx(SECONDS, abs=0.5)
    assert decoded.distinct_pictures > result.frames * 0.9  # the picture moves
    # No frame is corrupt: every picture is exactly the one the lossless recording shows then.
    assert reference.frames == clean.frames and reference.first_sample_time is not None
    assert result.first_sample_time == reference.first_sample_time
    expected = decoded_pictures(str(reference.path), reference.first_sample_time)
    got = decoded_pictures(str(path), result.first_sample_time)
    assert len(got) == result.frames
    assert {at: expected.get(at) for at in got} == got


def test_opus_with_reordering_and_loss_records_the_tone(tmp_path: Path, pool: RecorderPool) -> None:
    stream, lost = lossy(audio_stream(SECONDS), every=50)
    path = tmp_path / "RT2.mka"
    result = record(stream, path, pool)

    assert (result.codec, result.container, result.failed) == ("OPUS", "mka", False)
    assert result.packets_lost == lost
    assert result.frames == len(stream.packets)
    assert result.duration == pytest.approx(SECONDS, abs=0.1)

    decoded = decode_file(str(path))
    assert decoded.codec == "opus"
    assert decoded.duration == pytest.approx(SECONDS, abs=0.1)  # a gap stays a gap
    assert decoded.rms > 0.05  # a tone, not silence


def test_a_recording_cut_while_being_written_still_decodes(
    tmp_path: Path, pool: RecorderPool
) -> None:
    stream = video_stream("vp8", SECONDS, width=320, height=240)
    path = tmp_path / "RT3.mkv"
    recorder = TrackRecorder(path, stream.mime_type, stream.clock_rate, pool=pool, cluster_ms=500)
    half = len(stream.packets) // 2
    for packet, arrival in stream.packets[:half]:
        recorder.feed(packet, arrival)
    eventually_written = time.monotonic() + 10
    while recorder.queued and time.monotonic() < eventually_written:
        time.sleep(0.01)
    time.sleep(0.1)
    # The process "dies" here: what is on disk now is all a crash would leave.
    cut = tmp_path / "cut.mkv"
    shutil.copy(path, cut)
    for packet, arrival in stream.packets[half:]:
        recorder.feed(packet, arrival)
    result = recorder.finish().result(timeout=30)

    decoded = decode_file(str(cut))
    assert decoded.codec == "vp8"
    # Up to the cut, less the cluster still open and the reorder window.
    assert SECONDS / 2 - 1.5 < decoded.duration <= SECONDS / 2 + 0.1
    assert decoded.distinct_pictures > 10
    assert decode_file(str(path)).frames == result.frames


@pytest.mark.parametrize("fraction", [0.3, 0.61, 0.97])
def test_a_file_truncated_anywhere_decodes_up_to_the_cut(
    fraction: float, tmp_path: Path, pool: RecorderPool
) -> None:
    stream = audio_stream(SECONDS)
    path = tmp_path / "RT4.mka"
    result = record(stream, path, pool, cluster_ms=500)
    data = path.read_bytes()
    cut = tmp_path / "cut.mka"
    cut.write_bytes(data[: int(len(data) * fraction)])
    decoded = decode_file(str(cut))
    assert decoded.duration > SECONDS * fraction - 1.0
    assert decoded.frames < result.frames


def test_the_queue_is_bounded_and_overflow_is_counted(tmp_path: Path, pool: RecorderPool) -> None:
    stream = audio_stream(SECONDS)
    path = tmp_path / "RT5.mka"
    recorder = TrackRecorder(
        path, stream.mime_type, stream.clock_rate, pool=pool, max_queued_packets=40
    )
    entered, gate = threading.Event(), threading.Event()
    real_write = recorder._writer.write

    def slow_write(frame: MediaFrame) -> None:
        entered.set()
        gate.wait(10)  # a stalled disk
        real_write(frame)

    recorder._writer.write = slow_write  # type: ignore[method-assign]
    packets = stream.packets
    for packet, arrival in packets[:10]:  # past the 100 ms reorder window: a frame is written
        recorder.feed(packet, arrival)
    assert entered.wait(5)
    queued_at_stall = recorder.queued
    for packet, arrival in packets[10:]:
        recorder.feed(packet, arrival)
        assert recorder.queued <= 40
    expected_drops = len(packets) - 10 - (40 - queued_at_stall)
    assert recorder.packets_dropped == expected_drops
    gate.set()
    result = recorder.finish().result(timeout=30)
    assert result.packets_dropped == expected_drops
    assert result.packets_received == len(packets)
    assert not result.failed
    assert decode_file(str(path)).frames == result.frames < len(packets)


def test_the_byte_bound_applies_too(tmp_path: Path, pool: RecorderPool) -> None:
    stream = video_stream("vp8", 1.0, width=640, height=480)
    recorder = TrackRecorder(
        tmp_path / "RT6.mkv",
        stream.mime_type,
        stream.clock_rate,
        pool=pool,
        max_queued_bytes=20_000,
    )
    gate = threading.Event()
    recorder._service = lambda: (gate.wait(10), (False, False))[1]  # type: ignore[method-assign]
    for packet, arrival in stream.packets:
        recorder.feed(packet, arrival)
        assert recorder._fed_bytes - recorder._taken_bytes <= 20_000
    assert recorder.packets_dropped > 0
    del recorder._service
    gate.set()
    result = recorder.finish().result(timeout=30)
    assert result.packets_dropped == recorder.packets_dropped


def test_feed_is_cheap(tmp_path: Path, pool: RecorderPool) -> None:
    stream = audio_stream(2.0)
    recorder = TrackRecorder(tmp_path / "RT7.mka", stream.mime_type, stream.clock_rate, pool=pool)
    packets = stream.packets * 20  # 2000 packets (duplicates are the recorder's business)
    start = time.perf_counter()
    for packet, arrival in packets:
        recorder.feed(packet, arrival)
    per_packet = (time.perf_counter() - start) / len(packets)
    recorder.finish().result(timeout=30)
    assert per_packet < 20e-6  # a couple of checks and an append: microseconds at most


def test_fail_removes_the_file_and_reports_why(tmp_path: Path, pool: RecorderPool) -> None:
    stream = audio_stream(2.0)
    path = tmp_path / "RT8.mka"
    recorder = TrackRecorder(path, stream.mime_type, stream.clock_rate, pool=pool)
    for packet, arrival in stream.packets:
        recorder.feed(packet, arrival)
    eventually_open = time.monotonic() + 10
    while not path.exists() and time.monotonic() < eventually_open:
        time.sleep(0.01)
    result = recorder.fail("worker draining").result(timeout=30)
    assert result.failed and result.reason == "worker draining"
    assert result.path is None and result.size == 0
    assert not path.exists()
    recorder.feed(*stream.packets[0])  # ignored after the end
    assert recorder.packets_received == len(stream.packets)


def test_a_write_error_ends_the_recording_as_failed(tmp_path: Path, pool: RecorderPool) -> None:
    stream = audio_stream(2.0)
    path = tmp_path / "RT9.mka"
    heard: list[str] = []
    recorder = TrackRecorder(
        path, stream.mime_type, stream.clock_rate, pool=pool, on_failure=heard.append
    )

    def broken_write(frame: MediaFrame) -> None:
        raise OSError(28, "No space left on device")

    recorder._writer.write = broken_write  # type: ignore[method-assign]
    for packet, arrival in stream.packets:
        recorder.feed(packet, arrival)
    result = recorder.finish().result(timeout=30)
    assert result.failed
    assert result.reason is not None and "No space left" in result.reason
    assert heard == [result.reason]
    assert not path.exists()


def test_nothing_received_means_no_file(tmp_path: Path, pool: RecorderPool) -> None:
    path = tmp_path / "RT10.mkv"
    recorder = TrackRecorder(path, "video/VP8", 90000, pool=pool)
    result = recorder.finish().result(timeout=30)
    assert (result.path, result.size, result.duration, result.frames) == (None, 0, 0.0, 0)
    assert result.first_sample_time is None and result.offset_ms(0.0) is None
    assert not path.exists()


def test_video_asks_for_keyframes_while_it_has_none(tmp_path: Path, pool: RecorderPool) -> None:
    stream = video_stream("vp8", 3.0, width=320, height=240, keyframe_every=1000)
    requests: list[float] = []
    recorder = TrackRecorder(
        tmp_path / "RT11.mkv",
        stream.mime_type,
        stream.clock_rate,
        pool=pool,
        keyframe_request_interval=0.2,
        request_keyframe=lambda: requests.append(time.monotonic()),
    )
    # The first keyframe is lost: nothing can be written until another keyframe comes.
    first_interframe = next(
        i
        for i, (p, _) in enumerate(stream.packets)
        if p.timestamp != stream.packets[0][0].timestamp
    )
    for packet, arrival in stream.packets[first_interframe:]:
        recorder.feed(packet, arrival)
        time.sleep(0.005)
    eventually_asked = time.monotonic() + 5
    while len(requests) < 2 and time.monotonic() < eventually_asked:
        time.sleep(0.01)
    result = recorder.finish().result(timeout=30)
    assert len(requests) >= 2
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(requests))
    assert result.frames == 0 and result.path is None


def test_offset_is_measured_from_an_epoch() -> None:
    result = RecordingResult(
        codec="OPUS",
        container="mka",
        path=None,
        duration=1.0,
        size=0,
        first_sample_time=1000.25,
        frames=1,
        packets_received=1,
        packets_dropped=0,
        packets_lost=0,
        packets_late=0,
        frames_dropped=0,
    )
    assert result.offset_ms(1000.0) == 250
    assert result.offset_ms(2000.0) == 0


def test_unsupported_codecs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PCMU"):
        TrackRecorder(tmp_path / "x.mka", "audio/PCMU", 8000)


async def test_finish_is_awaitable(tmp_path: Path, pool: RecorderPool) -> None:
    stream = audio_stream(1.0)
    recorder = TrackRecorder(tmp_path / "RT12.mka", stream.mime_type, stream.clock_rate, pool=pool)
    for packet, arrival in stream.packets:
        recorder.feed(packet, arrival)
    result = await recorder.stop()
    assert result.frames == len(stream.packets)
    await eventually(lambda: pool.recorders == 0, timeout=5, message="recorder released")


def test_recording_knows_nothing_of_signaling_rooms_or_nats() -> None:
    package = Path(atrium_media.__file__).parent / "recording"
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                assert not name.startswith(
                    ("atrium_media.signaling", "atrium_media.forwarding", "faststream", "nats")
                ), f"{path.name} imports {name}"
