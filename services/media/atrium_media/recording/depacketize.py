"""RTP packets of one track -> timed, complete encoded frames, without decoding.

The pipeline, for one track (all of it runs on a recorder's writer thread, never on the event
loop):

1. :class:`ReorderBuffer` puts the packets of one SSRC back in sequence order. A packet that is
   missing when the buffer has waited ``window`` seconds (of arrival time) or holds ``max_packets``
   is declared lost; a packet that turns up after that is *late* and dropped. The buffer never
   shifts anything: a lost packet leaves a gap.
2. RTP timestamps are unwrapped (32-bit wrap) and mapped to the wall clock: the first packet of a
   stream fixes ``wall = arrival + (ts - ts_first) / clock_rate``. The tracks of one room are
   therefore on one clock (the worker's), and a pause in the media stays a pause.
3. An assembler per codec turns in-order payloads into frames:

   * **Opus**: one packet is one frame (RFC 7587); its duration comes from the TOC byte
     (RFC 6716 §3.1).
   * **VP8** (RFC 7741): the payload descriptor is stripped; a frame starts at a packet with S=1
     and partition 0 and ends at the marker bit (or at a timestamp change that follows without a
     gap). The keyframe flag and size come from the VP8 frame header (RFC 6386 §9.1).
   * **H.264** (RFC 6184, packetization-mode 0/1): single NAL units, STAP-A and FU-A become an
     Annex B access unit (4-byte start codes). A keyframe is an access unit with an IDR slice and
     the SPS and PPS (the last ones seen are put in front of an IDR that comes without them).

   A video frame with a missing packet is dropped, never emitted half, and since the frames after
   it reference what was lost, video resumes only at the next complete keyframe (the recorder asks
   the publisher for one). Audio frames are independent: a loss costs exactly that packet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiortc.rtp import RtpPacket

OPUS = "audio/opus"
VP8 = "video/vp8"
H264 = "video/h264"
SUPPORTED_CODECS = (OPUS, VP8, H264)

_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
# A frame bigger than this is not a video frame from a browser: drop it rather than grow.
MAX_FRAME_BYTES = 8 * 1024 * 1024
# A mapped time further than this from the packet's arrival means the sender's timestamps jumped
# (a restarted encoder, a clock step): re-anchor the stream on that packet's arrival.
MAX_CLOCK_SKEW_SECONDS = 3.0
# A sequence number this far behind the stream is a restart, not a late packet.
_SEQ_RESTART = 3000


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """One encoded frame (an Opus packet, a VP8 frame, an H.264 access unit in Annex B)."""

    data: bytes
    timestamp: int  # RTP timestamp of the frame, unwrapped (clock-rate units)
    wall_time: float  # seconds since the Unix epoch, on the worker's clock
    keyframe: bool
    duration: int | None = None  # clock-rate units, when the payload says (Opus)


@dataclass(frozen=True, slots=True)
class VideoSize:
    width: int
    height: int


# ------------------------------------------------------------------------------- reordering
class ReorderBuffer:
    """Releases one SSRC's packets in sequence order; waits a bounded time for a missing one.

    :meth:`push` returns ``(packet, arrival, gap)`` triples in order, ``gap`` being True when one
    or more packets before that one were declared lost. Sequence numbers are unwrapped (16-bit).
    The first packets are held for one window too, so a stream whose first packets arrive out of
    order still starts at its lowest sequence number.
    """

    def __init__(self, window: float = 0.1, max_packets: int = 128) -> None:
        if window < 0 or max_packets < 1:
            raise ValueError("window must be >= 0 and max_packets >= 1")
        self.window = window
        self.max_packets = max_packets
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self._pending: dict[int, tuple[RtpPacket, float]] = {}
        self._next: int | None = None
        self._highest: int | None = None
        self._gap = False

    def _unwrap(self, seq: int) -> int:
        highest = self._highest
        if highest is None:
            self._highest = seq
            return seq
        delta = (seq - highest) % _SEQ_MOD
        ext = highest + delta if delta < _SEQ_MOD // 2 else highest + delta - _SEQ_MOD
        if ext > highest:
            self._highest = ext
        return ext

    def push(self, packet: RtpPacket, arrival: float) -> list[tuple[RtpPacket, float, bool]]:
        ext = self._unwrap(packet.sequence_number)
        expected = self._next
        if expected is not None and ext < expected:
            if expected - ext <= _SEQ_RESTART:
                self.late += 1
                return []
            # The sender restarted its sequence: release what is held and start over.
            out = self.flush()
            self._highest = ext
            self._next = None
            self._pending[ext] = (packet, arrival)
            return out + self._release(arrival)
        if ext in self._pending:
            self.duplicates += 1
            return []
        self._pending[ext] = (packet, arrival)
        return self._release(arrival)

    def _release(self, now: float) -> list[tuple[RtpPacket, float, bool]]:
        out: list[tuple[RtpPacket, float, bool]] = []
        pending = self._pending
        while pending:
            expected = self._next
            if expected is not None and expected in pending:
                packet, arrival = pending.pop(expected)
                out.append((packet, arrival, self._gap))
                self._gap = False
                self._next = expected + 1
                continue
            # Blocked on a missing packet since the first held packet after it arrived.
            if len(pending) <= self.max_packets:
                waiting_since = min(arrival for _, arrival in pending.values())
                if now - waiting_since < self.window:
                    break
            # Give up on what is missing: continue at the lowest sequence number held.
            lowest = min(pending)
            if expected is not None:
                self.lost += lowest - expected
                self._gap = True
            self._next = lowest
        return out

    def flush(self) -> list[tuple[RtpPacket, float, bool]]:
        """Everything held, in order (the stream ended): missing packets are lost."""
        out: list[tuple[RtpPacket, float, bool]] = []
        for ext in sorted(self._pending):
            packet, arrival = self._pending[ext]
            gap = self._gap or (self._next is not None and ext != self._next)
            if self._next is not None and ext > self._next:
                self.lost += ext - self._next
            out.append((packet, arrival, gap))
            self._gap = False
            self._next = ext + 1
        self._pending.clear()
        return out

    def __len__(self) -> int:
        return len(self._pending)


# ------------------------------------------------------------------------------- codecs
def opus_frame_samples(payload: bytes, clock_rate: int = 48000) -> int | None:
    """Duration of an Opus packet in clock-rate units, from its TOC byte (RFC 6716 §3.1)."""
    if not payload:
        return None
    toc = payload[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        tenths_ms = (100, 200, 400, 600)[config & 3]
    elif config < 16:  # hybrid: 10, 20 ms
        tenths_ms = (100, 200)[config & 1]
    else:  # CELT: 2.5, 5, 10, 20 ms
        tenths_ms = (25, 50, 100, 200)[config & 3]
    code = toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(payload) < 2:
            return None
        count = payload[1] & 0x3F
    return tenths_ms * count * clock_rate // 10000


def opus_channels(payload: bytes) -> int:
    """1 or 2, from the TOC byte's stereo flag."""
    return 2 if payload and payload[0] & 0x04 else 1


def vp8_descriptor_size(payload: bytes) -> int | None:
    """Size of the VP8 payload descriptor (RFC 7741 §4.2); None when it is truncated."""
    if not payload:
        return None
    pos = 1
    if payload[0] & 0x80:
        if len(payload) < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 7 or 15 bits
            if len(payload) <= pos:
                return None
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T/K: TID|Y|KEYIDX
            pos += 1
    return pos if pos <= len(payload) else None


def vp8_keyframe_size(frame: bytes) -> VideoSize | None:
    """Width/height of a VP8 keyframe (RFC 6386 §9.1); None for an interframe or garbage."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = (frame[6] | frame[7] << 8) & 0x3FFF
    height = (frame[8] | frame[9] << 8) & 0x3FFF
    return VideoSize(width, height) if width and height else None


class _BitReader:
    """Exp-Golomb reader over an H.264 RBSP (emulation prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def bit(self) -> int:
        byte = self._pos >> 3
        if byte >= len(self._data):
            raise ValueError("SPS is truncated")
        value = (self._data[byte] >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


_HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def h264_sps_size(sps: bytes) -> VideoSize | None:
    """Picture size from an H.264 SPS NAL unit (with its header byte), cropping applied."""
    try:
        reader = _BitReader(_rbsp(sps[1:]))
        profile_idc = reader.bits(8)
        reader.bits(16)  # constraint flags, level_idc
        reader.ue()  # seq_parameter_set_id
        chroma_format_idc = 1
        if profile_idc in _HIGH_PROFILES:
            chroma_format_idc = reader.ue()
            if chroma_format_idc == 3:
                reader.bit()  # separate_colour_plane_flag
            reader.ue()  # bit_depth_luma_minus8
            reader.ue()  # bit_depth_chroma_minus8
            reader.bit()  # qpprime_y_zero_transform_bypass_flag
            if reader.bit():  # seq_scaling_matrix_present_flag
                for index in range(8 if chroma_format_idc != 3 else 12):
                    if reader.bit():
                        size = 16 if index < 6 else 64
                        last = next_scale = 8
                        for _ in range(size):
                            if next_scale:
                                next_scale = (last + reader.se() + 256) % 256
                            last = next_scale or last
        reader.ue()  # log2_max_frame_num_minus4
        poc_type = reader.ue()
        if poc_type == 0:
            reader.ue()
        elif poc_type == 1:
            reader.bit()
            reader.se()
            reader.se()
            for _ in range(reader.ue()):
                reader.se()
        reader.ue()  # max_num_ref_frames
        reader.bit()  # gaps_in_frame_num_value_allowed_flag
        width_mbs = reader.ue() + 1
        height_units = reader.ue() + 1
        frame_mbs_only = reader.bit()
        if not frame_mbs_only:
            reader.bit()  # mb_adaptive_frame_field_flag
        reader.bit()  # direct_8x8_inference_flag
        crop = (0, 0, 0, 0)
        if reader.bit():
            crop = (reader.ue(), reader.ue(), reader.ue(), reader.ue())
    except ValueError:
        return None
    if chroma_format_idc == 0:
        unit_x, unit_y = 1, 2 - frame_mbs_only
    else:
        sub_width = 1 if chroma_format_idc == 3 else 2
        sub_height = 2 if chroma_format_idc == 1 else 1
        unit_x, unit_y = sub_width, sub_height * (2 - frame_mbs_only)
    width = width_mbs * 16 - (crop[0] + crop[1]) * unit_x
    height = (2 - frame_mbs_only) * height_units * 16 - (crop[2] + crop[3]) * unit_y
    if width <= 0 or height <= 0:
        return None
    return VideoSize(width, height)


_START_CODE = b"\x00\x00\x00\x01"
_NAL_IDR = 5
_NAL_SPS = 7
_NAL_PPS = 8
_NAL_STAP_A = 24
_NAL_FU_A = 28


def annexb_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (3- or 4-byte start codes)."""
    units: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start != -1:
        start += 3
        end = data.find(b"\x00\x00\x01", start)
        if end == -1:
            units.append(data[start:])
            break
        units.append(data[start : end - 1 if data[end - 1] == 0 else end])
        start = end
    return [unit for unit in units if unit]


def h264_frame_size(access_unit: bytes) -> VideoSize | None:
    """Picture size from the first SPS of an Annex B access unit."""
    for unit in annexb_nal_units(access_unit):
        if unit[0] & 0x1F == _NAL_SPS:
            return h264_sps_size(unit)
    return None


def vp8_frame_size(frame: bytes) -> VideoSize | None:
    return vp8_keyframe_size(frame)


# ------------------------------------------------------------------------------- assemblers
class Assembler(Protocol):
    """In-order payloads of one stream -> frames (``(data, timestamp, keyframe)``)."""

    waiting_for_keyframe: bool
    frames_dropped: int

    def push(
        self, payload: bytes, marker: bool, timestamp: int, gap: bool
    ) -> list[tuple[bytes, int, bool]]: ...

    def flush(self) -> list[tuple[bytes, int, bool]]: ...


class OpusAssembler:
    """One packet, one frame: a loss costs that packet and nothing else."""

    def __init__(self) -> None:
        self.waiting_for_keyframe = False
        self.frames_dropped = 0

    def push(
        self, payload: bytes, marker: bool, timestamp: int, gap: bool
    ) -> list[tuple[bytes, int, bool]]:
        return [(payload, timestamp, True)]

    def flush(self) -> list[tuple[bytes, int, bool]]:
        return []


class _VideoAssembler:
    """Shared frame logic: a frame is the run of packets with one timestamp; it is complete when it
    began with a frame-start packet, had no gap, and ended at the marker bit or was followed
    without a gap by the next timestamp. After a loss only a keyframe resumes the stream."""

    def __init__(self) -> None:
        self.waiting_for_keyframe = True
        self.frames_dropped = 0
        self._ts: int | None = None
        self._ok = False
        self._size = 0

    # Codec hooks.
    def _start(self, payload: bytes) -> bool:
        raise NotImplementedError

    def _append(self, payload: bytes, first: bool) -> bool:
        raise NotImplementedError

    def _finish(self) -> tuple[bytes, bool] | None:
        raise NotImplementedError

    def _reset(self) -> None:
        raise NotImplementedError

    def push(
        self, payload: bytes, marker: bool, timestamp: int, gap: bool
    ) -> list[tuple[bytes, int, bool]]:
        out: list[tuple[bytes, int, bool]] = []
        if gap:
            self.waiting_for_keyframe = True
            if self._ts is not None:
                self._ok = False  # the missing packets may be this frame's tail
        if self._ts is not None and timestamp != self._ts:
            self._close(out)
        if self._ts is None:
            self._ts = timestamp
            self._size = 0
            self._ok = self._start(payload)
            first = True
        else:
            first = False
        if self._ok:
            self._size += len(payload)
            self._ok = self._size <= MAX_FRAME_BYTES and self._append(payload, first)
        if marker:
            self._close(out)
        return out

    def _close(self, out: list[tuple[bytes, int, bool]]) -> None:
        timestamp = self._ts
        frame = self._finish() if self._ok else None
        self._reset()
        self._ts = None
        self._ok = False
        if timestamp is None:
            return
        if frame is None:
            self.frames_dropped += 1
            self.waiting_for_keyframe = True
            return
        data, keyframe = frame
        if self.waiting_for_keyframe and not keyframe:
            self.frames_dropped += 1
            return
        self.waiting_for_keyframe = False
        out.append((data, timestamp, keyframe))

    def flush(self) -> list[tuple[bytes, int, bool]]:
        # A frame still open at the end has no marker: its tail may be missing. Drop it.
        if self._ts is not None:
            self._reset()
            self._ts = None
            self._ok = False
            self.frames_dropped += 1
        return []


class Vp8Assembler(_VideoAssembler):
    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def _start(self, payload: bytes) -> bool:
        # S=1 and partition index 0: the first packet of a frame.
        return bool(payload) and payload[0] & 0x10 != 0 and payload[0] & 0x0F == 0

    def _append(self, payload: bytes, first: bool) -> bool:
        offset = vp8_descriptor_size(payload)
        if offset is None:
            return False
        self._parts.append(payload[offset:])
        return True

    def _finish(self) -> tuple[bytes, bool] | None:
        data = b"".join(self._parts)
        if not data:
            return None
        return data, data[0] & 0x01 == 0

    def _reset(self) -> None:
        self._parts = []


class H264Assembler(_VideoAssembler):
    def __init__(self) -> None:
        super().__init__()
        self._units: list[bytearray] = []
        self._in_fu = False  # an FU-A NAL unit is open (its end fragment not seen yet)
        self._sps: bytes | None = None
        self._pps: bytes | None = None

    def _start(self, payload: bytes) -> bool:
        if not payload:
            return False
        nal_type = payload[0] & 0x1F
        if nal_type == _NAL_FU_A:
            return len(payload) > 1 and bool(payload[1] & 0x80)
        return 1 <= nal_type <= 23 or nal_type == _NAL_STAP_A

    def _append(self, payload: bytes, first: bool) -> bool:
        if not payload:
            return False
        nal_type = payload[0] & 0x1F
        if 1 <= nal_type <= 23:
            if self._in_fu:
                return False
            self._units.append(bytearray(payload))
            return True
        if nal_type == _NAL_STAP_A:
            if self._in_fu:
                return False
            pos = 1
            while pos < len(payload):
                if pos + 2 > len(payload):
                    return False
                size = payload[pos] << 8 | payload[pos + 1]
                pos += 2
                if size == 0 or pos + size > len(payload):
                    return False
                self._units.append(bytearray(payload[pos : pos + size]))
                pos += size
            return True
        if nal_type == _NAL_FU_A:
            if len(payload) < 3:
                return False
            header = payload[1]
            start, end = bool(header & 0x80), bool(header & 0x40)
            if start:
                if self._in_fu:
                    return False
                self._units.append(bytearray([payload[0] & 0xE0 | header & 0x1F]))
                self._in_fu = True
            elif not self._in_fu:
                return False
            self._units[-1] += payload[2:]
            if end:
                self._in_fu = False
            return True
        return False  # STAP-B, MTAP, FU-B: not in packetization-mode 1

    def _finish(self) -> tuple[bytes, bool] | None:
        if self._in_fu or not self._units:
            return None
        types = [unit[0] & 0x1F for unit in self._units]
        for unit, nal_type in zip(self._units, types, strict=True):
            if nal_type == _NAL_SPS:
                self._sps = bytes(unit)
            elif nal_type == _NAL_PPS:
                self._pps = bytes(unit)
        units: list[bytes] = [bytes(unit) for unit in self._units]
        keyframe = _NAL_IDR in types
        if keyframe:
            if self._sps is None or self._pps is None:
                keyframe = False  # an IDR nobody can decode: not a place to start
            else:
                if _NAL_PPS not in types:
                    units.insert(0, self._pps)
                if _NAL_SPS not in types:
                    units.insert(0, self._sps)
        return b"".join(_START_CODE + unit for unit in units), keyframe

    def _reset(self) -> None:
        self._units = []
        self._in_fu = False


def assembler_for(mime_type: str) -> Assembler:
    mime = mime_type.lower()
    if mime == OPUS:
        return OpusAssembler()
    if mime == VP8:
        return Vp8Assembler()
    if mime == H264:
        return H264Assembler()
    raise ValueError(f"cannot record {mime_type}")


def frame_size_reader(mime_type: str) -> Callable[[bytes], VideoSize | None]:
    """The keyframe -> picture size function of a video codec."""
    mime = mime_type.lower()
    if mime == VP8:
        return vp8_frame_size
    if mime == H264:
        return h264_frame_size
    raise ValueError(f"{mime_type} is not a video codec")


# ------------------------------------------------------------------------------- the track
@dataclass
class DepacketizerStats:
    packets: int = 0
    packets_lost: int = 0  # never arrived within the reorder window
    packets_late: int = 0  # arrived after being declared lost (dropped)
    packets_duplicate: int = 0
    frames: int = 0
    frames_dropped: int = 0  # incomplete, or video waiting for a keyframe
    streams: int = 0  # SSRCs seen one after the other


def _signed_ts(delta: int) -> int:
    delta %= _TS_MOD
    return delta - _TS_MOD if delta >= _TS_MOD // 2 else delta


class _Stream:
    """State of one SSRC: its reorder buffer, timestamp unwrap, clock anchor and assembler."""

    def __init__(self, ssrc: int, window: float, max_packets: int, assembler: Assembler) -> None:
        self.ssrc = ssrc
        self.reorder = ReorderBuffer(window, max_packets)
        self.assembler = assembler
        self.last_ts: int | None = None  # unwrapped
        self.anchor: tuple[int, float] | None = None  # (unwrapped ts, wall time)
        self.pending_gap = False
        # Before the anchor is fixed: the first packet's raw timestamp and the earliest wall time
        # any packet so far implies for it (the least delayed packet of the first window wins).
        self.first_ts: int | None = None
        self.first_wall = 0.0

    def observe(self, ts: int, arrival: float, clock_rate: int) -> None:
        if self.first_ts is None:
            self.first_ts, self.first_wall = ts, arrival
            return
        implied = arrival - _signed_ts(ts - self.first_ts) / clock_rate
        if implied < self.first_wall:
            self.first_wall = implied

    def unwrap(self, ts: int) -> int:
        last = self.last_ts
        if last is None:
            ext = ts
        else:
            delta = (ts - last) % _TS_MOD
            ext = last + delta if delta < _TS_MOD // 2 else last + delta - _TS_MOD
        self.last_ts = ext
        return ext


class TrackDepacketizer:
    """One published track's RTP (in any order, from one or more SSRCs in turn) -> frames.

    Not thread-safe: a recorder drives it from its writer thread only.
    """

    def __init__(
        self,
        mime_type: str,
        clock_rate: int,
        *,
        reorder_window: float | None = None,
        max_reorder_packets: int = 256,
    ) -> None:
        mime = mime_type.lower()
        if mime not in SUPPORTED_CODECS:
            raise ValueError(f"cannot record {mime_type}")
        if clock_rate <= 0:
            raise ValueError("clock_rate must be positive")
        self.mime_type = mime
        self.clock_rate = clock_rate
        self.is_video = mime != OPUS
        # Video waits longer: a NACKed packet's retransmission (RTX, unwrapped by forwarding)
        # usually comes back within a round trip, and a recording is not latency-sensitive.
        self.reorder_window = (
            reorder_window if reorder_window is not None else (0.5 if self.is_video else 0.1)
        )
        self.max_reorder_packets = max_reorder_packets
        self._stream: _Stream | None = None
        self._packets = 0
        self._frames = 0
        self._streams = 0
        self._retired = DepacketizerStats()

    @property
    def waiting_for_keyframe(self) -> bool:
        stream = self._stream
        return stream.assembler.waiting_for_keyframe if stream is not None else self.is_video

    @property
    def stats(self) -> DepacketizerStats:
        retired = self._retired
        stream = self._stream
        lost = late = duplicates = dropped = 0
        if stream is not None:
            lost, late = stream.reorder.lost, stream.reorder.late
            duplicates, dropped = stream.reorder.duplicates, stream.assembler.frames_dropped
        return DepacketizerStats(
            packets=self._packets,
            packets_lost=retired.packets_lost + lost,
            packets_late=retired.packets_late + late,
            packets_duplicate=retired.packets_duplicate + duplicates,
            frames=self._frames,
            frames_dropped=retired.frames_dropped + dropped,
            streams=self._streams,
        )

    def push(self, packet: RtpPacket, arrival: float) -> list[MediaFrame]:
        """Take one packet (``arrival``: Unix time); returns the frames it completed, in order."""
        self._packets += 1
        out: list[MediaFrame] = []
        stream = self._stream
        if stream is None or stream.ssrc != packet.ssrc:
            if stream is not None:
                self._end(stream, out)
            # A new stream of the same track: its own sequence, timestamps and clock anchor, and
            # a fresh assembler (video waits for a keyframe of the new stream).
            stream = _Stream(
                packet.ssrc,
                self.reorder_window,
                self.max_reorder_packets,
                assembler_for(self.mime_type),
            )
            self._stream = stream
            self._streams += 1
        if stream.anchor is None:
            stream.observe(packet.timestamp, arrival, self.clock_rate)
        self._release(stream, stream.reorder.push(packet, arrival), out)
        return out

    def flush(self) -> list[MediaFrame]:
        """Everything still held, as the recording ends."""
        out: list[MediaFrame] = []
        stream = self._stream
        if stream is not None:
            self._end(stream, out)
            self._stream = None
        return out

    def _end(self, stream: _Stream, out: list[MediaFrame]) -> None:
        self._release(stream, stream.reorder.flush(), out)
        self._emit(stream, stream.assembler.flush(), out)
        retired = self._retired
        retired.packets_lost += stream.reorder.lost
        retired.packets_late += stream.reorder.late
        retired.packets_duplicate += stream.reorder.duplicates
        retired.frames_dropped += stream.assembler.frames_dropped

    def _release(
        self, stream: _Stream, packets: list[tuple[RtpPacket, float, bool]], out: list[MediaFrame]
    ) -> None:
        clock_rate = self.clock_rate
        for packet, arrival, gap in packets:
            ts = stream.unwrap(packet.timestamp)
            anchor = stream.anchor
            if anchor is None:
                first_ts = stream.first_ts if stream.first_ts is not None else packet.timestamp
                offset = _signed_ts(packet.timestamp - first_ts) / clock_rate
                stream.anchor = (ts, stream.first_wall + offset)
            elif abs(anchor[1] + (ts - anchor[0]) / clock_rate - arrival) > MAX_CLOCK_SKEW_SECONDS:
                stream.anchor = (ts, arrival)
            if not packet.payload:
                # Padding only: it holds a sequence number and carries no media.
                stream.pending_gap = stream.pending_gap or gap
                continue
            gap = gap or stream.pending_gap
            stream.pending_gap = False
            frames = stream.assembler.push(packet.payload, bool(packet.marker), ts, gap)
            if frames:
                self._emit(stream, frames, out)

    def _emit(
        self, stream: _Stream, frames: list[tuple[bytes, int, bool]], out: list[MediaFrame]
    ) -> None:
        anchor = stream.anchor
        if anchor is None:
            return
        anchor_ts, anchor_wall = anchor
        for data, ts, keyframe in frames:
            wall = anchor_wall + (ts - anchor_ts) / self.clock_rate
            duration = None if self.is_video else opus_frame_samples(data, self.clock_rate)
            out.append(MediaFrame(data, ts, wall, keyframe, duration))
        self._frames += len(frames)
