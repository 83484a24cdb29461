"""Recording's depacketizer: reordering, loss, timestamps and the three codecs' frame assembly."""

from __future__ import annotations

import fractions

import av
import pytest
from aiortc.rtp import RtpPacket

from atrium_media.recording.depacketize import (
    H264Assembler,
    OpusAssembler,
    ReorderBuffer,
    TrackDepacketizer,
    VideoSize,
    Vp8Assembler,
    annexb_nal_units,
    h264_frame_size,
    opus_frame_samples,
    vp8_descriptor_size,
    vp8_keyframe_size,
)
from tests.support.rtp_media import audio_stream, moving_picture, video_stream


def packet(
    seq: int, ts: int = 0, payload: bytes = b"x", marker: int = 0, ssrc: int = 1
) -> RtpPacket:
    return RtpPacket(
        payload_type=96,
        sequence_number=seq % 65536,
        timestamp=ts % (1 << 32),
        ssrc=ssrc,
        payload=payload,
        marker=marker,
    )


def seqs(released: list[tuple[RtpPacket, float, bool]]) -> list[int]:
    return [p.sequence_number for p, _, _ in released]


# ------------------------------------------------------------------------------ reordering
def test_reorder_buffer_puts_packets_back_in_order_across_the_wrap() -> None:
    buffer = ReorderBuffer(window=0.1)
    out: list[tuple[RtpPacket, float, bool]] = []
    order = [65534, 65533, 65535, 1, 0, 2, 3]
    for i, seq in enumerate(order):
        out += buffer.push(packet(seq), 10.0 + i * 0.001)
    out += buffer.push(packet(4), 10.2)  # past the first window: release
    assert seqs(out) == [65533, 65534, 65535, 0, 1, 2, 3, 4]
    assert not any(gap for _, _, gap in out)
    assert buffer.lost == buffer.late == 0


def test_a_missing_packet_is_given_up_after_the_window_and_leaves_a_gap() -> None:
    buffer = ReorderBuffer(window=0.1)
    out = buffer.push(packet(10), 0.0)
    out += buffer.push(packet(11), 0.2)  # starts the stream at 10
    assert seqs(out) == [10, 11]
    out = buffer.push(packet(13), 0.22)  # 12 is missing: wait
    assert out == []
    out = buffer.push(packet(14), 0.30)
    assert out == []
    out = buffer.push(packet(15), 0.33)  # 0.11 s since 13 arrived: 12 is lost
    assert seqs(out) == [13, 14, 15]
    assert [gap for _, _, gap in out] == [True, False, False]
    assert buffer.lost == 1
    # 12 turns up after all: too late, dropped (a gap stays a gap).
    assert buffer.push(packet(12), 0.34) == []
    assert buffer.late == 1


def test_a_full_buffer_gives_up_before_the_window() -> None:
    buffer = ReorderBuffer(window=10.0, max_packets=4)
    buffer.push(packet(1), 0.0)
    buffer.push(packet(2), 20.0)  # starts at 1
    out: list[tuple[RtpPacket, float, bool]] = []
    for seq in range(4, 9):
        out += buffer.push(packet(seq), 20.0)
    assert seqs(out) == [4, 5, 6, 7, 8]
    assert buffer.lost == 1


def test_duplicates_are_dropped_and_flush_releases_everything() -> None:
    buffer = ReorderBuffer(window=1.0)
    buffer.push(packet(1), 0.0)
    buffer.push(packet(1), 0.0)
    buffer.push(packet(3), 0.0)
    assert buffer.duplicates == 1
    out = buffer.flush()
    assert seqs(out) == [1, 3]
    assert [gap for _, _, gap in out] == [False, True]
    assert buffer.lost == 1


def test_a_sequence_restart_far_behind_is_not_late() -> None:
    buffer = ReorderBuffer(window=0.0)
    for seq in range(20000, 20010):
        buffer.push(packet(seq), 0.0)
    out = buffer.push(packet(5), 0.0)
    assert seqs(out)[-1] == 5
    assert buffer.late == 0


# ------------------------------------------------------------------------------ codec parsing
def test_opus_toc_durations() -> None:
    assert opus_frame_samples(bytes([0xF8])) == 960  # CELT FB 20 ms, one frame
    assert opus_frame_samples(bytes([0x78])) == 960  # SILK WB 20 ms
    assert opus_frame_samples(bytes([0x08])) == 960  # SILK NB 20 ms
    assert opus_frame_samples(bytes([0x18])) == 2880  # SILK NB 60 ms
    assert opus_frame_samples(bytes([0x09])) == 1920  # code 1: two 20 ms frames
    assert opus_frame_samples(bytes([0x0B, 0x03])) == 2880  # code 3: three frames
    assert opus_frame_samples(bytes([0xE0])) == 120  # CELT 2.5 ms
    assert opus_frame_samples(b"") is None


def test_vp8_descriptor_and_keyframe_header() -> None:
    assert vp8_descriptor_size(bytes([0x10])) == 1
    assert vp8_descriptor_size(bytes([0x90, 0x80, 0x81, 0x23])) == 4  # X, I with 15-bit id
    assert vp8_descriptor_size(bytes([0x90, 0xF0, 0x05, 0x01, 0x20])) == 5  # I L T/K
    assert vp8_descriptor_size(bytes([0x90])) is None
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 352, 288, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    frame = moving_picture(0, 352, 288)
    frame.time_base = fractions.Fraction(1, 30)
    frame.pts = 0
    data = b"".join(bytes(p) for p in encoder.encode(frame))
    assert vp8_keyframe_size(data) == VideoSize(352, 288)
    assert vp8_keyframe_size(b"\x01" + data[1:]) is None  # an interframe


@pytest.mark.parametrize("size", [(320, 180), (640, 360), (1280, 720), (176, 144)])
@pytest.mark.parametrize("profile", ["baseline", "high"])
def test_h264_sps_gives_the_cropped_picture_size(size: tuple[int, int], profile: str) -> None:
    width, height = size
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    encoder.options = {"profile": profile, "tune": "zerolatency"}
    frame = moving_picture(0, width, height)
    frame.time_base = fractions.Fraction(1, 30)
    frame.pts = 0
    data = b"".join(bytes(p) for p in encoder.encode(frame))
    assert [unit[0] & 0x1F for unit in annexb_nal_units(data)][:2] == [7, 8]
    assert h264_frame_size(data) == VideoSize(width, height)


# ------------------------------------------------------------------------------ assemblers
def test_opus_is_one_frame_per_packet_even_after_loss() -> None:
    assembler = OpusAssembler()
    assert assembler.push(b"\xf8abc", False, 960, True) == [(b"\xf8abc", 960, True)]


def vp8_payload(start: bool, data: bytes) -> bytes:
    return bytes([0x10 if start else 0x00]) + data


KEY = b"\x00" + b"k" * 9  # P bit 0: keyframe
INTER = b"\x01" + b"i" * 9


def test_vp8_frames_end_at_the_marker_and_resume_at_a_keyframe_after_loss() -> None:
    assembler = Vp8Assembler()
    out = assembler.push(vp8_payload(True, KEY[:5]), False, 0, False)
    out += assembler.push(vp8_payload(False, KEY[5:]), True, 0, False)
    assert out == [(KEY, 0, True)]
    out = assembler.push(vp8_payload(True, INTER), True, 3000, False)
    assert out == [(INTER, 3000, False)]
    # Frame 6000 loses its second packet: dropped, and interframes wait for a keyframe.
    out = assembler.push(vp8_payload(True, INTER[:5]), False, 6000, False)
    out += assembler.push(vp8_payload(False, INTER[5:]), True, 6000, True)
    out += assembler.push(vp8_payload(True, INTER), True, 9000, False)
    assert out == []
    assert assembler.waiting_for_keyframe
    out = assembler.push(vp8_payload(True, KEY), True, 12000, False)
    assert out == [(KEY, 12000, True)]
    assert assembler.frames_dropped == 2


def test_vp8_frame_without_its_first_packet_is_dropped() -> None:
    assembler = Vp8Assembler()
    assembler.push(vp8_payload(True, KEY), True, 0, False)
    out = assembler.push(vp8_payload(False, INTER[5:]), True, 3000, True)
    assert out == []
    assert assembler.frames_dropped == 1


def test_vp8_frame_ends_at_a_timestamp_change_without_a_gap() -> None:
    assembler = Vp8Assembler()
    assert assembler.push(vp8_payload(True, KEY), False, 0, False) == []  # marker lost? no gap
    out = assembler.push(vp8_payload(True, INTER), True, 3000, False)
    assert out == [(KEY, 0, True), (INTER, 3000, False)]


SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x01, 0x40, 0x16, 0xE8])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65]) + b"\x88" * 3000
SLICE = bytes([0x41]) + b"\x9a" * 50
SC = b"\x00\x00\x00\x01"


def stap_a(*units: bytes) -> bytes:
    return bytes([0x78]) + b"".join(len(u).to_bytes(2, "big") + u for u in units)


def fu_a(unit: bytes, size: int = 1000) -> list[bytes]:
    header, body = unit[0], unit[1:]
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    out = []
    for i, chunk in enumerate(chunks):
        fu = header & 0x1F | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
        out.append(bytes([header & 0xE0 | 28, fu]) + chunk)
    return out


def test_h264_stap_a_and_fu_a_become_an_annexb_keyframe() -> None:
    assembler = H264Assembler()
    payloads = [stap_a(SPS, PPS), *fu_a(IDR)]
    out = []
    for i, payload in enumerate(payloads):
        out += assembler.push(payload, i == len(payloads) - 1, 0, False)
    assert out == [(SC + SPS + SC + PPS + SC + IDR, 0, True)]
    out = assembler.push(SLICE, True, 3000, False)
    assert out == [(SC + SLICE, 3000, False)]


def test_h264_idr_without_parameter_sets_gets_the_last_ones() -> None:
    assembler = H264Assembler()
    assert assembler.push(IDR[:10], True, 0, False) == []  # no SPS/PPS ever: not a keyframe
    assembler.push(stap_a(SPS, PPS), False, 3000, False)
    assembler.push(IDR[:10], True, 3000, False)
    out = assembler.push(IDR[:10], True, 6000, False)
    assert out == [(SC + SPS + SC + PPS + SC + IDR[:10], 6000, True)]


def test_h264_fu_a_with_a_lost_middle_is_dropped() -> None:
    assembler = H264Assembler()
    parts = fu_a(IDR)
    assembler.push(stap_a(SPS, PPS), False, 0, False)
    assembler.push(parts[0], False, 0, False)
    out = assembler.push(parts[2], True, 0, True)
    assert out == []
    assert assembler.frames_dropped == 1
    assert assembler.waiting_for_keyframe


def test_h264_fu_a_without_its_end_is_dropped() -> None:
    assembler = H264Assembler()
    parts = fu_a(IDR)
    assembler.push(stap_a(SPS, PPS), False, 0, False)
    assembler.push(parts[0], False, 0, False)
    assembler.push(parts[1], True, 0, False)  # marker on a middle fragment
    assert assembler.frames_dropped == 1


# ------------------------------------------------------------------------------ the whole track
@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_real_video_rtp_depacketizes_to_every_frame(codec: str) -> None:
    stream = video_stream(codec, 2.0, width=640, height=480)
    assert len(stream.packets) > stream.frames  # frames span several packets
    depacketizer = TrackDepacketizer(stream.mime_type, stream.clock_rate)
    frames = []
    for rtp, arrival in stream.packets:
        frames += depacketizer.push(rtp, arrival)
    frames += depacketizer.flush()
    assert len(frames) == stream.frames
    assert frames[0].keyframe
    assert sum(f.keyframe for f in frames) == 2  # keyframe every 30 frames
    # Timestamps unwrap across the 32-bit wrap and map to the sender's schedule.
    deltas = [f.timestamp - frames[0].timestamp for f in frames[:3]]
    assert deltas == pytest.approx([0, 3000, 6000], abs=1)
    assert frames[-1].wall_time - frames[0].wall_time == pytest.approx((stream.frames - 1) / 30)
    assert frames[0].wall_time == pytest.approx(stream.packets[0][1], abs=0.003)


def test_opus_frames_keep_their_gaps_and_durations() -> None:
    stream = audio_stream(1.0)
    depacketizer = TrackDepacketizer(stream.mime_type, stream.clock_rate)
    kept = [item for i, item in enumerate(stream.packets) if i != 10]
    frames = []
    for rtp, arrival in kept:
        frames += depacketizer.push(rtp, arrival)
    frames += depacketizer.flush()
    assert len(frames) == 49
    assert all(f.duration == 960 for f in frames)
    assert frames[10].wall_time - frames[9].wall_time == pytest.approx(0.040)
    assert depacketizer.stats.packets_lost == 1


def test_a_new_ssrc_starts_a_new_stream_on_the_same_clock() -> None:
    depacketizer = TrackDepacketizer("audio/opus", 48000, reorder_window=0.0)
    frames = []
    for i in range(5):
        frames += depacketizer.push(packet(100 + i, 960 * i, b"\xf8a", ssrc=1), 100.0 + i * 0.02)
    # A restarted sender: another SSRC, unrelated sequence and timestamps, two seconds later.
    for i in range(5):
        frames += depacketizer.push(
            packet(7 + i, 123456 + 960 * i, b"\xf8b", ssrc=2), 102.1 + i * 0.02
        )
    frames += depacketizer.flush()
    assert len(frames) == 10
    assert frames[5].wall_time == pytest.approx(102.1)
    assert depacketizer.stats.streams == 2


def test_a_timestamp_jump_is_re_anchored_on_arrival() -> None:
    depacketizer = TrackDepacketizer("audio/opus", 48000, reorder_window=0.0)
    frames = depacketizer.push(packet(1, 0, b"\xf8a"), 50.0)
    frames += depacketizer.push(packet(2, 960, b"\xf8a"), 50.02)
    frames += depacketizer.push(packet(3, 960 + 48000 * 3600, b"\xf8a"), 50.04)  # +1 h
    frames += depacketizer.flush()
    assert [round(f.wall_time, 3) for f in frames] == [50.0, 50.02, 50.04]


def test_padding_only_packets_are_not_losses() -> None:
    depacketizer = TrackDepacketizer("video/vp8", 90000, reorder_window=0.0)
    frames = depacketizer.push(packet(1, 0, vp8_payload(True, KEY), marker=1), 1.0)
    frames += depacketizer.push(packet(2, 0, b""), 1.01)
    frames += depacketizer.push(packet(3, 3000, vp8_payload(True, INTER), marker=1), 1.03)
    assert [f.keyframe for f in frames] == [True, False]
