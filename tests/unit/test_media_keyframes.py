"""Keyframe detection on raw RTP payloads, including real aiortc VP8/H.264 packetizer output."""

from __future__ import annotations

import fractions
import struct

from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from av import VideoFrame

from atrium_media.forwarding.keyframes import (
    is_h264_keyframe_start,
    is_vp8_keyframe_start,
    keyframe_detector,
    needs_keyframe_gate,
    vp8_payload_offset,
)


def frame(pts: int, shade: int) -> VideoFrame:
    out = VideoFrame(width=160, height=120, format="yuv420p")
    for plane in out.planes:
        plane.update(bytes([shade]) * plane.buffer_size)
    out.pts = pts
    out.time_base = fractions.Fraction(1, 90000)
    return out


# --- VP8 ------------------------------------------------------------------------------------------
KEY_HEADER = bytes([0x10, 0x02, 0x00])  # P bit (bit 0) clear: keyframe
DELTA_HEADER = bytes([0x11, 0x02, 0x00])  # P bit set: interframe


def test_vp8_minimal_descriptor() -> None:
    assert vp8_payload_offset(bytes([0x10]) + KEY_HEADER) == 1
    assert is_vp8_keyframe_start(bytes([0x10]) + KEY_HEADER)
    assert not is_vp8_keyframe_start(bytes([0x10]) + DELTA_HEADER)


def test_vp8_extended_descriptor_with_15_bit_picture_id_and_tl0_and_tid() -> None:
    descriptor = bytes([0x90, 0xE0]) + struct.pack("!H", 0x8000 | 1234) + bytes([7, 0x40])
    assert vp8_payload_offset(descriptor + KEY_HEADER) == len(descriptor)
    assert is_vp8_keyframe_start(descriptor + KEY_HEADER)
    assert not is_vp8_keyframe_start(descriptor + DELTA_HEADER)


def test_vp8_7_bit_picture_id() -> None:
    descriptor = bytes([0x90, 0x80, 0x05])
    assert vp8_payload_offset(descriptor + KEY_HEADER) == 3
    assert is_vp8_keyframe_start(descriptor + KEY_HEADER)


def test_vp8_continuation_or_other_partition_is_not_a_start() -> None:
    assert not is_vp8_keyframe_start(bytes([0x00]) + KEY_HEADER)  # S=0
    assert not is_vp8_keyframe_start(bytes([0x11]) + KEY_HEADER)  # PID=1


def test_vp8_truncated_payloads() -> None:
    assert not is_vp8_keyframe_start(b"")
    assert not is_vp8_keyframe_start(bytes([0x90]))
    assert not is_vp8_keyframe_start(bytes([0x90, 0x80]))
    assert not is_vp8_keyframe_start(bytes([0x10]))


def test_vp8_real_packetizer_output() -> None:
    encoder = Vp8Encoder()
    key_payloads, _ = encoder.encode(frame(0, 0x40))
    delta_payloads, _ = encoder.encode(frame(3000, 0x50))
    forced_payloads, _ = encoder.encode(frame(6000, 0x60), force_keyframe=True)
    assert is_vp8_keyframe_start(key_payloads[0])
    assert not any(is_vp8_keyframe_start(p) for p in key_payloads[1:])
    assert not is_vp8_keyframe_start(delta_payloads[0])
    assert is_vp8_keyframe_start(forced_payloads[0])


# --- H.264 ----------------------------------------------------------------------------------------
def nal(nal_type: int, body: bytes = b"\x88\x84") -> bytes:
    return bytes([0x60 | nal_type]) + body


def stap_a(*nals: bytes) -> bytes:
    return bytes([0x78]) + b"".join(struct.pack("!H", len(n)) + n for n in nals)


def fu_a(nal_type: int, start: bool) -> bytes:
    return bytes([0x7C, (0x80 if start else 0) | nal_type]) + b"\x00\x01"


def test_h264_single_nal_units() -> None:
    assert is_h264_keyframe_start(nal(5))
    assert is_h264_keyframe_start(nal(7))
    assert not is_h264_keyframe_start(nal(1))
    assert not is_h264_keyframe_start(nal(8))  # PPS alone does not start a keyframe


def test_h264_stap_a_scans_every_nal() -> None:
    # SPS/PPS often follow an access unit delimiter: a first-NAL-only check misses them.
    assert is_h264_keyframe_start(stap_a(nal(9, b"\xf0"), nal(7), nal(8)))
    assert is_h264_keyframe_start(stap_a(nal(9, b"\xf0"), nal(5)))
    assert not is_h264_keyframe_start(stap_a(nal(9, b"\xf0"), nal(1)))
    assert not is_h264_keyframe_start(bytes([0x78, 0x00, 0x10, 0x67]))  # truncated


def test_h264_fu_a_only_on_first_fragment_of_idr() -> None:
    assert is_h264_keyframe_start(fu_a(5, start=True))
    assert not is_h264_keyframe_start(fu_a(5, start=False))
    assert not is_h264_keyframe_start(fu_a(1, start=True))
    assert not is_h264_keyframe_start(b"")


def test_h264_real_packetizer_output() -> None:
    encoder = H264Encoder()
    key_payloads, _ = encoder.encode(frame(0, 0x40))
    delta_payloads, _ = encoder.encode(frame(3000, 0x50))
    assert is_h264_keyframe_start(key_payloads[0])
    assert not any(is_h264_keyframe_start(p) for p in delta_payloads)


def test_detector_selection() -> None:
    assert keyframe_detector("video/VP8") is is_vp8_keyframe_start
    assert keyframe_detector("video/H264") is is_h264_keyframe_start
    assert keyframe_detector("audio/opus")(b"anything")
    assert needs_keyframe_gate("video/vp8") and not needs_keyframe_gate("audio/opus")
