"""Keyframe detection on raw RTP payloads (no depayloading, no decoding).

These functions look at one RTP payload and say whether a subscriber that has seen nothing so far
can start decoding from this packet on. They are used to gate a new (or resumed) forwarding leg.
"""

from __future__ import annotations

from collections.abc import Callable

VP8 = "video/vp8"
H264 = "video/h264"

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def vp8_payload_offset(payload: bytes) -> int | None:
    """Offset of the VP8 payload header after the RTP payload descriptor (RFC 7741 §4.2).

    Returns None when the descriptor is truncated.
    """
    if not payload:
        return None
    pos = 1
    if payload[0] & 0x80:  # X: extended control bits present
        if len(payload) < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= pos:
                return None
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            pos += 1
    if pos > len(payload):
        return None
    return pos


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 keyframe.

    The packet must start partition 0 (S=1, PID=0) and the VP8 payload header's P bit (bit 0 of its
    first byte, RFC 6386 §9.1) must be 0.
    """
    offset = vp8_payload_offset(payload)
    if offset is None or offset >= len(payload):
        return False
    start_of_partition = bool(payload[0] & 0x10)
    partition_id = payload[0] & 0x07
    if not start_of_partition or partition_id != 0:
        return False
    return payload[offset] & 0x01 == 0


def _h264_nal_starts_keyframe(nal_type: int) -> bool:
    return nal_type in (_H264_IDR, _H264_SPS)


def is_h264_keyframe_start(payload: bytes) -> bool:
    """True when the packet carries an IDR slice or an SPS (RFC 6184 packetization).

    Single NAL units, every NAL unit aggregated in a STAP-A (SPS/PPS often follow an AUD there), and
    the first fragment of an FU-A are inspected.
    """
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if 1 <= nal_type <= 23:
        return _h264_nal_starts_keyframe(nal_type)
    if nal_type == _H264_STAP_A:
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > len(payload):
                return False
            if _h264_nal_starts_keyframe(payload[pos] & 0x1F):
                return True
            pos += size
        return False
    if nal_type == _H264_FU_A:
        if len(payload) < 2:
            return False
        fu_header = payload[1]
        return bool(fu_header & 0x80) and _h264_nal_starts_keyframe(fu_header & 0x1F)
    return False


def _always(payload: bytes) -> bool:
    return True


def keyframe_detector(mime_type: str) -> Callable[[bytes], bool]:
    """The keyframe test for a codec; audio (and unknown) codecs need no gating."""
    mime = mime_type.lower()
    if mime == VP8:
        return is_vp8_keyframe_start
    if mime == H264:
        return is_h264_keyframe_start
    return _always


def needs_keyframe_gate(mime_type: str) -> bool:
    return mime_type.lower() in (VP8, H264)
