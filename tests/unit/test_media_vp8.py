"""VP8 RTP payload descriptor: parsing every field, key frame size, and in-place renumbering.

aiortc's own descriptor code (``VpxPayloadDescriptor``) and its libvpx encoder are the independent
references: what they write must parse here, and what is rewritten here must parse there.
"""

from __future__ import annotations

import fractions
import itertools
import struct

import pytest
from aiortc.codecs.vpx import Vp8Encoder, VpxPayloadDescriptor
from av import VideoFrame

from atrium_media.forwarding.keyframes import is_vp8_keyframe_start, vp8_payload_offset
from atrium_media.forwarding.vp8 import (
    Vp8PayloadError,
    parse_vp8_descriptor,
    picture_id_distance,
    rewrite_vp8_descriptor,
    rewritten_vp8_payload,
    vp8_keyframe_size,
)

KEY_HEADER = bytes([0x10, 0x02, 0x00])  # P bit (bit 0) clear: key frame
DELTA_HEADER = bytes([0x11, 0x02, 0x00])  # P bit set: inter frame


def frame(width: int, height: int, pts: int, shade: int) -> VideoFrame:
    out = VideoFrame(width=width, height=height, format="yuv420p")
    for plane in out.planes:
        plane.update(bytes([shade]) * plane.buffer_size)
    out.pts = pts
    out.time_base = fractions.Fraction(1, 90000)
    return out


def test_minimal_descriptor() -> None:
    desc = parse_vp8_descriptor(bytes([0x10]) + KEY_HEADER)
    assert desc.size == 1
    assert desc.start_of_partition and desc.partition_id == 0 and desc.starts_frame
    assert desc.keyframe
    assert desc.picture_id is None and desc.picture_id_bits == 0
    assert desc.tl0_pic_idx is None and desc.temporal_id is None and desc.key_idx is None
    assert not desc.non_reference and not desc.layer_sync
    assert not parse_vp8_descriptor(bytes([0x10]) + DELTA_HEADER).keyframe


def test_every_field_with_a_15_bit_picture_id() -> None:
    # X=1 N=1 S=1 PID=0; I L T K; M=1 PictureID=0x1234; TL0PICIDX=200; TID=2 Y=1 KEYIDX=17
    payload = bytes([0xB0, 0xF0]) + struct.pack("!H", 0x8000 | 0x1234)
    payload += bytes([200, (2 << 6) | 0x20 | 17]) + KEY_HEADER
    desc = parse_vp8_descriptor(payload)
    assert desc.non_reference
    assert (desc.picture_id, desc.picture_id_bits, desc.picture_id_offset) == (0x1234, 15, 2)
    assert (desc.tl0_pic_idx, desc.tl0_pic_idx_offset) == (200, 4)
    assert (desc.temporal_id, desc.layer_sync, desc.key_idx) == (2, True, 17)
    assert desc.size == 6 == vp8_payload_offset(payload)
    assert desc.keyframe


def test_7_bit_picture_id_and_tid_without_keyidx() -> None:
    payload = bytes([0x90, 0xA0, 0x05, 0x40]) + DELTA_HEADER  # I and T only, TID=1 Y=0
    desc = parse_vp8_descriptor(payload)
    assert (desc.picture_id, desc.picture_id_bits, desc.picture_id_offset) == (5, 7, 2)
    assert desc.tl0_pic_idx is None and desc.tl0_pic_idx_offset is None
    assert (desc.temporal_id, desc.layer_sync, desc.key_idx) == (1, False, None)
    assert desc.size == 4 and not desc.keyframe


def test_keyidx_without_tid() -> None:
    desc = parse_vp8_descriptor(bytes([0x90, 0x10, 0x09]) + KEY_HEADER)
    assert (desc.temporal_id, desc.key_idx, desc.size) == (None, 9, 3)


def test_continuation_packets_and_other_partitions_are_not_key_frame_starts() -> None:
    # A continuation packet needs no payload header: its "header" byte is frame data.
    assert not parse_vp8_descriptor(bytes([0x00, 0x00])).keyframe
    assert not parse_vp8_descriptor(bytes([0x11]) + KEY_HEADER).keyframe  # PID=1
    desc = parse_vp8_descriptor(bytes([0x80, 0x80, 0x05]))  # S=0, nothing after the descriptor
    assert desc.size == 3 and not desc.starts_frame and not desc.keyframe


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        bytes([0x90]),  # X without the extension byte
        bytes([0x90, 0x80]),  # I without PictureID
        bytes([0x90, 0x80, 0x81]),  # M without the second PictureID byte
        bytes([0x90, 0x40]),  # L without TL0PICIDX
        bytes([0x90, 0x20]),  # T without the TID byte
        bytes([0x90, 0x10]),  # K without the KEYIDX byte
        bytes([0x10]),  # starts a frame, no payload header
        bytes([0x90, 0x80, 0x05]),  # same, after a descriptor
    ],
)
def test_truncated_payloads_raise(payload: bytes) -> None:
    with pytest.raises(Vp8PayloadError):
        parse_vp8_descriptor(payload)


def test_agrees_with_aiortcs_descriptor_on_every_combination() -> None:
    for picture_id, tl0, tid, keyidx, start in itertools.product(
        (None, 0, 127, 128, 0x7FFF), (None, 0, 255), (None, (0, 0), (3, 1)), (None, 31), (0, 1)
    ):
        descriptor = VpxPayloadDescriptor(
            partition_start=start, partition_id=0, picture_id=picture_id, tl0picidx=tl0, tid=tid
        )
        descriptor.keyidx = keyidx
        payload = bytes(descriptor) + KEY_HEADER
        ours = parse_vp8_descriptor(payload)
        theirs, rest = VpxPayloadDescriptor.parse(payload)
        assert ours.size == len(payload) - len(rest)
        assert ours.picture_id == theirs.picture_id
        assert ours.tl0_pic_idx == theirs.tl0picidx
        assert (ours.temporal_id, ours.layer_sync) == (theirs.tid or (None, False))
        assert ours.key_idx == theirs.keyidx
        assert ours.keyframe == bool(start) == is_vp8_keyframe_start(payload)


def test_real_encoder_output_key_frame_size_and_picture_ids() -> None:
    encoder = Vp8Encoder()
    key, _ = encoder.encode(frame(320, 180, 0, 0x40))
    delta, _ = encoder.encode(frame(320, 180, 3000, 0x50))
    first = parse_vp8_descriptor(key[0])
    assert first.keyframe and first.picture_id_bits == 15
    assert vp8_keyframe_size(key[0]) == (320, 180)
    assert vp8_keyframe_size(key[0], first) == (320, 180)
    assert all(vp8_keyframe_size(p) is None for p in key[1:] + delta)
    later = parse_vp8_descriptor(delta[0])
    assert later.picture_id is not None and first.picture_id is not None
    assert picture_id_distance(later.picture_id, first.picture_id) == 1
    # Every packet of a frame carries the frame's PictureID.
    assert {parse_vp8_descriptor(p).picture_id for p in key} == {first.picture_id}


def test_key_frame_size_needs_the_start_code() -> None:
    no_code = bytes([0x10]) + KEY_HEADER + b"\x00\x00\x00" + b"\x40\x01\xb4\x00"
    assert vp8_keyframe_size(no_code) is None
    short = bytes([0x10]) + KEY_HEADER + b"\x9d\x01\x2a\x40"
    assert vp8_keyframe_size(short) is None
    # The two scaling bits above each dimension are not part of it.
    scaled = bytes([0x10]) + KEY_HEADER + b"\x9d\x01\x2a" + struct.pack("<HH", 0xC000 | 640, 360)
    assert vp8_keyframe_size(scaled) == (640, 360)


def test_picture_id_distance_wraps() -> None:
    assert picture_id_distance(0, 0x7FFF) == 1
    assert picture_id_distance(0x7FFF, 0) == -1
    assert picture_id_distance(5, 120, bits=7) == 13
    assert picture_id_distance(10, 10) == 0


def test_rewrite_in_place_keeps_15_bit_width_and_everything_else() -> None:
    original = VpxPayloadDescriptor(
        partition_start=1, partition_id=0, picture_id=0x1234, tl0picidx=9, tid=(1, 1)
    )
    payload = bytearray(bytes(original) + KEY_HEADER + b"frame-data")
    desc = parse_vp8_descriptor(payload)
    rewrite_vp8_descriptor(payload, desc, picture_id=0x8000 + 7, tl0_pic_idx=256 + 3)
    after, rest = VpxPayloadDescriptor.parse(bytes(payload))
    assert after.picture_id == 7  # reduced modulo 2^15, still written as 15 bits
    assert payload[desc.picture_id_offset or 0] & 0x80  # M bit kept
    assert after.tl0picidx == 3
    assert after.tid == (1, 1)
    assert rest == KEY_HEADER + b"frame-data"
    assert parse_vp8_descriptor(payload).size == desc.size


def test_rewrite_in_place_keeps_7_bit_width() -> None:
    payload = bytearray([0x90, 0xC0, 0x05, 0x11]) + DELTA_HEADER
    desc = parse_vp8_descriptor(payload)
    rewrite_vp8_descriptor(payload, desc, picture_id=300, tl0_pic_idx=0x22)
    again = parse_vp8_descriptor(payload)
    assert (again.picture_id, again.picture_id_bits) == (300 % 128, 7)
    assert again.tl0_pic_idx == 0x22
    assert payload[4:] == DELTA_HEADER


def test_rewrite_ignores_fields_the_packet_does_not_carry() -> None:
    payload = bytearray([0x10]) + KEY_HEADER
    before = bytes(payload)
    rewrite_vp8_descriptor(payload, parse_vp8_descriptor(payload), picture_id=5, tl0_pic_idx=6)
    assert bytes(payload) == before


def test_rewritten_copy() -> None:
    payload = bytes(VpxPayloadDescriptor(1, 0, picture_id=100, tl0picidx=4)) + KEY_HEADER
    desc = parse_vp8_descriptor(payload)
    assert rewritten_vp8_payload(payload, desc, picture_id=100, tl0_pic_idx=4) is payload
    assert rewritten_vp8_payload(payload, desc) is payload
    copy = rewritten_vp8_payload(payload, desc, picture_id=101)
    assert copy is not payload and len(copy) == len(payload)
    assert parse_vp8_descriptor(copy).picture_id == 101
    assert parse_vp8_descriptor(copy).tl0_pic_idx == 4
    assert parse_vp8_descriptor(payload).picture_id == 100  # the input is untouched
