"""The VP8 RTP payload descriptor (RFC 7741 §4.2): parse it, and rewrite its picture numbering.

A simulcast switch splices several encoder streams into one. Each stream numbers its pictures on
its own (PictureID, TL0PICIDX), and a VP8 decoder that sees the numbers jump takes the jump for
lost pictures. The layer switcher (:mod:`.simulcast`) therefore renumbers them; this module is the
byte-level part: where the fields are, how wide they are, and writing new values in place without
changing the descriptor's size (a 7-bit PictureID stays 7 bits, a 15-bit one stays 15 bits), so
the rest of the payload never moves.

The descriptor::

     0 1 2 3 4 5 6 7
    +-+-+-+-+-+-+-+-+
    |X|R|N|S|R| PID |  required
    +-+-+-+-+-+-+-+-+
    |I|L|T|K| RSV   |  if X
    +-+-+-+-+-+-+-+-+
    |M| PictureID   |  if I (M=1: 15 bits, the low 8 in the next byte)
    +-+-+-+-+-+-+-+-+
    |   TL0PICIDX   |  if L
    +-+-+-+-+-+-+-+-+
    |TID|Y| KEYIDX  |  if T or K
    +-+-+-+-+-+-+-+-+

After it comes the VP8 payload header (RFC 7741 §4.3) when the packet starts a frame (S=1, PID=0):
its first byte's bit 0 is the inverse key frame flag P (0: key frame), and a key frame's header
continues with the start code ``9d 01 2a`` and the 14-bit width and height (RFC 6386 §9.1).

Pure functions on bytes; nothing here allocates on the forwarding path beyond the result object.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PICTURE_ID_MOD_7",
    "PICTURE_ID_MOD_15",
    "TL0PICIDX_MOD",
    "Vp8Descriptor",
    "Vp8PayloadError",
    "parse_vp8_descriptor",
    "picture_id_distance",
    "rewrite_vp8_descriptor",
    "rewritten_vp8_payload",
    "vp8_keyframe_size",
]

PICTURE_ID_MOD_7 = 1 << 7
PICTURE_ID_MOD_15 = 1 << 15
TL0PICIDX_MOD = 1 << 8

_X = 0x80
_N = 0x20
_S = 0x10
_PID = 0x07
_I = 0x80
_L = 0x40
_T = 0x20
_K = 0x10
_M = 0x80
_KEYFRAME_START_CODE = b"\x9d\x01\x2a"


class Vp8PayloadError(ValueError):
    """A VP8 RTP payload too short for the fields its descriptor announces."""


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    """The fields of one packet's payload descriptor and where the rewritable ones are.

    ``picture_id_bits`` is 0 (absent), 7 or 15; ``picture_id_offset`` and ``tl0_pic_idx_offset``
    are byte offsets into the payload (None when the field is absent). ``size`` is the
    descriptor's length, i.e. the offset of the VP8 payload proper.
    """

    non_reference: bool
    start_of_partition: bool
    partition_id: int
    picture_id: int | None
    picture_id_bits: int
    tl0_pic_idx: int | None
    temporal_id: int | None
    layer_sync: bool
    key_idx: int | None
    size: int
    picture_id_offset: int | None
    tl0_pic_idx_offset: int | None
    keyframe: bool

    @property
    def starts_frame(self) -> bool:
        """The first packet of a frame: start of partition 0."""
        return self.start_of_partition and self.partition_id == 0


def parse_vp8_descriptor(payload: bytes | bytearray | memoryview) -> Vp8Descriptor:
    """Read the payload descriptor of one VP8 RTP payload.

    ``keyframe`` is True only for the first packet of a key frame (S=1, PID=0 and the payload
    header's P bit clear), the packet a decoder can start from.

    Raises :class:`Vp8PayloadError` when the payload ends inside the descriptor, or when a packet
    that starts a frame carries no payload header byte.
    """
    length = len(payload)
    if length == 0:
        raise Vp8PayloadError("empty VP8 payload")
    first = payload[0]
    pos = 1
    picture_id: int | None = None
    picture_id_bits = 0
    picture_id_offset: int | None = None
    tl0: int | None = None
    tl0_offset: int | None = None
    tid: int | None = None
    layer_sync = False
    key_idx: int | None = None
    if first & _X:
        if length < 2:
            raise Vp8PayloadError("VP8 descriptor ends before its extension byte")
        ext = payload[1]
        pos = 2
        if ext & _I:
            if length <= pos:
                raise Vp8PayloadError("VP8 descriptor ends before its PictureID")
            picture_id_offset = pos
            if payload[pos] & _M:
                if length <= pos + 1:
                    raise Vp8PayloadError("VP8 descriptor ends inside its 15-bit PictureID")
                picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                picture_id_bits = 15
                pos += 2
            else:
                picture_id = payload[pos] & 0x7F
                picture_id_bits = 7
                pos += 1
        if ext & _L:
            if length <= pos:
                raise Vp8PayloadError("VP8 descriptor ends before its TL0PICIDX")
            tl0 = payload[pos]
            tl0_offset = pos
            pos += 1
        if ext & (_T | _K):
            if length <= pos:
                raise Vp8PayloadError("VP8 descriptor ends before its TID/KEYIDX byte")
            byte = payload[pos]
            if ext & _T:
                tid = byte >> 6
                layer_sync = bool(byte & 0x20)
            if ext & _K:
                key_idx = byte & 0x1F
            pos += 1
    start = bool(first & _S)
    partition_id = first & _PID
    keyframe = False
    if start and partition_id == 0:
        if length <= pos:
            raise Vp8PayloadError("VP8 packet starts a frame but has no payload header")
        keyframe = payload[pos] & 0x01 == 0
    return Vp8Descriptor(
        non_reference=bool(first & _N),
        start_of_partition=start,
        partition_id=partition_id,
        picture_id=picture_id,
        picture_id_bits=picture_id_bits,
        tl0_pic_idx=tl0,
        temporal_id=tid,
        layer_sync=layer_sync,
        key_idx=key_idx,
        size=pos,
        picture_id_offset=picture_id_offset,
        tl0_pic_idx_offset=tl0_offset,
        keyframe=keyframe,
    )


def vp8_keyframe_size(
    payload: bytes | bytearray | memoryview, descriptor: Vp8Descriptor | None = None
) -> tuple[int, int] | None:
    """(width, height) of the key frame this packet starts, or None if it starts none.

    Read from the key frame header (RFC 6386 §9.1: 3-byte frame tag, start code, then 14-bit
    width and height, each with 2 scaling bits above them that are ignored here).
    """
    desc = descriptor if descriptor is not None else parse_vp8_descriptor(payload)
    if not desc.keyframe:
        return None
    header = desc.size
    if len(payload) < header + 10 or bytes(payload[header + 3 : header + 6]) != (
        _KEYFRAME_START_CODE
    ):
        return None
    width = (payload[header + 6] | (payload[header + 7] << 8)) & 0x3FFF
    height = (payload[header + 8] | (payload[header + 9] << 8)) & 0x3FFF
    return width, height


def picture_id_distance(a: int, b: int, bits: int = 15) -> int:
    """Signed distance a - b between PictureIDs of the given width, in [-2^(bits-1), 2^(bits-1))."""
    mod = 1 << bits
    half = mod >> 1
    d = (a - b) % mod
    return d - mod if d >= half else d


def rewrite_vp8_descriptor(
    payload: bytearray | memoryview,
    descriptor: Vp8Descriptor,
    *,
    picture_id: int | None = None,
    tl0_pic_idx: int | None = None,
) -> None:
    """Overwrite PictureID and/or TL0PICIDX in place, keeping each field's width.

    ``descriptor`` must be the result of parsing this very payload. A value is reduced modulo the
    field's range (2^7 or 2^15 for PictureID, 2^8 for TL0PICIDX); a field the packet does not
    carry is left alone (the value is ignored), as a packet cannot grow a field without moving
    its payload.
    """
    if picture_id is not None and descriptor.picture_id_offset is not None:
        pos = descriptor.picture_id_offset
        if descriptor.picture_id_bits == 15:
            value = picture_id % PICTURE_ID_MOD_15
            payload[pos] = _M | (value >> 8)
            payload[pos + 1] = value & 0xFF
        else:
            payload[pos] = picture_id % PICTURE_ID_MOD_7  # M bit stays 0
    if tl0_pic_idx is not None and descriptor.tl0_pic_idx_offset is not None:
        payload[descriptor.tl0_pic_idx_offset] = tl0_pic_idx % TL0PICIDX_MOD


def rewritten_vp8_payload(
    payload: bytes,
    descriptor: Vp8Descriptor,
    *,
    picture_id: int | None = None,
    tl0_pic_idx: int | None = None,
) -> bytes:
    """A copy of ``payload`` with PictureID / TL0PICIDX replaced (see
    :func:`rewrite_vp8_descriptor`); the payload itself when there is nothing to change."""
    changes_picture = (
        picture_id is not None
        and descriptor.picture_id is not None
        and picture_id % (1 << descriptor.picture_id_bits) != descriptor.picture_id
    )
    changes_tl0 = (
        tl0_pic_idx is not None
        and descriptor.tl0_pic_idx is not None
        and tl0_pic_idx % TL0PICIDX_MOD != descriptor.tl0_pic_idx
    )
    if not changes_picture and not changes_tl0:
        return payload
    # Only the descriptor goes through a mutable buffer; the frame data is copied once, by join.
    head = bytearray(payload[: descriptor.size])
    rewrite_vp8_descriptor(head, descriptor, picture_id=picture_id, tl0_pic_idx=tl0_pic_idx)
    return b"".join((head, memoryview(payload)[descriptor.size :]))
