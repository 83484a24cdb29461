"""Simulcast layer switching for one subscriber of one track (pure: packets in, packets out).

A simulcast publisher sends one track as several RTP streams ("layers", one SSRC each, lowest
resolution first, as in the offer's ``a=ssrc-group:SIM``). A subscriber receives one of them at a
time, on the one SSRC of its forwarding leg, and its decoder must see a single continuous stream
whichever layer is behind it. :class:`SimulcastSwitcher` does that splicing:

* It forwards only the **current** layer. A new **target** layer (:meth:`~SimulcastSwitcher.
  set_target`) takes over only at that layer's key frame; until then the current layer keeps
  flowing, so a switch never freezes the picture. The switcher says which SSRC needs a PLI (when
  the target is set, and again every ``keyframe_retry_seconds`` while it waits).
* Each stretch of one layer is an *epoch*: output = input + constant offsets, so upstream gaps stay
  gaps (the subscriber NACKs them) and RTX-repaired packets land in their place. An epoch starts
  at a key frame and continues the output where the previous one stopped:

  - **sequence numbers**: the key frame's first packet is the highest number sent + 1: no gap,
    no duplicate across a switch;
  - **RTP timestamps**: when RTCP sender reports of both layers are known
    (:meth:`~SimulcastSwitcher.sender_report`), the new layer's timestamp is translated onto the
    old layer's timeline (both clocks tick at the same rate from different random origins), so
    the subscriber sees true media time; without them, the output advances by the arrival time
    that passed. Either way the timestamp strictly increases;
  - **VP8 PictureID and TL0PICIDX**: the key frame gets the last ones sent + 1, so the decoder
    sees no lost picture (rewritten in the descriptor bytes by :mod:`.vp8`).

* While the switcher waits for the target's key frame it holds that layer's packets of the newest
  frame, so a key frame whose packets arrive out of order is still forwarded whole.

The packets of the previous layer that arrive after the switch are dropped, including one that
was mid-frame: the subscriber's depacketizer discards that unfinished frame and decodes the key
frame that follows. VP8 temporal layers inside one simulcast layer are forwarded as they are
(no temporal-layer dropping).

:class:`LayerMonitor` is the per-track companion: bit rate, liveness and key frame resolution of
each layer, what the allocation (``atrium_media.extensions.allocation``) needs to choose layers.

Nothing here does I/O or reads a clock: times are passed in (monotonic seconds). Not wired into
the worker yet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from atrium_media.forwarding.keyframes import H264, VP8, is_h264_keyframe_start
from atrium_media.forwarding.rewrite import SEQ_MOD, TS_MOD, seq_distance
from atrium_media.forwarding.vp8 import (
    PICTURE_ID_MOD_15,
    TL0PICIDX_MOD,
    Vp8Descriptor,
    parse_vp8_descriptor,
    picture_id_distance,
    rewritten_vp8_payload,
    vp8_keyframe_size,
)

__all__ = [
    "DEFAULT_KEYFRAME_RETRY_SECONDS",
    "LayerMonitor",
    "LayerPacket",
    "LayerState",
    "OutputPacket",
    "SimulcastSwitcher",
    "SwitcherResult",
    "layer_packet",
]

DEFAULT_KEYFRAME_RETRY_SECONDS = 1.0
# How far a sender-report based timestamp may disagree with the arrival-time estimate before it is
# distrusted (a stale or bogus report): one second of media time.
_MAX_REPORT_DISAGREEMENT_SECONDS = 1.0
_NTP_FRACTION = float(1 << 32)
_TS_HALF = 1 << 31
_TL0_HALF = TL0PICIDX_MOD >> 1


def _ts_distance(a: int, b: int) -> int:
    d = (a - b) % TS_MOD
    return d - TS_MOD if d >= _TS_HALF else d


def _tl0_distance(a: int, b: int) -> int:
    d = (a - b) % TL0PICIDX_MOD
    return d - TL0PICIDX_MOD if d >= _TL0_HALF else d


@dataclass(frozen=True, slots=True)
class LayerPacket:
    """One media packet of one layer as received (RTX already unwrapped into what it repairs).

    Build it with :func:`layer_packet`, once per received packet: the VP8 descriptor is parsed
    there once, and every subscriber's switcher reuses it. ``arrival`` is monotonic seconds.
    """

    ssrc: int
    sequence_number: int
    timestamp: int
    marker: bool
    payload: bytes
    arrival: float
    repaired: bool
    keyframe: bool
    vp8: Vp8Descriptor | None


def layer_packet(
    ssrc: int,
    sequence_number: int,
    timestamp: int,
    marker: bool,
    payload: bytes,
    arrival: float,
    *,
    mime_type: str = VP8,
    repaired: bool = False,
) -> LayerPacket:
    """Describe one received packet for the switchers and the monitor.

    For VP8 the payload descriptor is parsed (raises :class:`~.vp8.Vp8PayloadError` on a payload
    too short for it: drop such a packet); for H.264 only the key frame start is detected (there
    is no picture numbering to rewrite).
    """
    mime = mime_type.lower()
    vp8: Vp8Descriptor | None = None
    if mime == VP8:
        vp8 = parse_vp8_descriptor(payload)
        keyframe = vp8.keyframe
    elif mime == H264:
        keyframe = is_h264_keyframe_start(payload)
    else:
        raise ValueError(f"simulcast is not supported for {mime_type}")
    return LayerPacket(
        ssrc=ssrc,
        sequence_number=sequence_number % SEQ_MOD,
        timestamp=timestamp % TS_MOD,
        marker=marker,
        payload=payload,
        arrival=arrival,
        repaired=repaired,
        keyframe=keyframe,
        vp8=vp8,
    )


@dataclass(frozen=True, slots=True)
class OutputPacket:
    """What to send to the subscriber: the source packet re-stamped for its leg.

    ``payload`` is the source payload with PictureID/TL0PICIDX rewritten (the same object when
    nothing changed). Header fields not listed (payload type, SSRC, header extensions) are the
    leg's own, as for a single-layer leg.
    """

    layer: int
    sequence_number: int
    timestamp: int
    marker: bool
    payload: bytes
    repaired: bool
    source: LayerPacket


@dataclass(frozen=True, slots=True)
class SwitcherResult:
    """The outcome of one :meth:`SimulcastSwitcher.push`.

    ``packets`` are to be sent in order (usually zero or one; a switch may release held packets
    of the key frame). ``keyframe_request`` is the SSRC to send a PLI for now, if any.
    ``switched_to`` is the layer whose epoch began with this push.
    """

    packets: tuple[OutputPacket, ...] = ()
    keyframe_request: int | None = None
    switched_to: int | None = None


_NOTHING = SwitcherResult()


class SimulcastSwitcher:
    """Per-subscriber splicing of one track's simulcast layers onto one output stream.

    ``layer_ssrcs`` are the layers' primary SSRCs, lowest layer first. ``initial_*`` are the
    first values the output uses (pick them at random per leg, as an RTP sender does). Call it
    from one thread; it is not thread-safe.
    """

    __slots__ = (
        "_clock_rate",
        "_epoch_layer",
        "_epoch_span",
        "_epoch_top",
        "_held",
        "_highest_seq",
        "_index",
        "_initial_picture_id",
        "_initial_seq",
        "_initial_tl0",
        "_initial_ts",
        "_last_arrival",
        "_last_picture_id",
        "_last_request",
        "_last_tl0",
        "_last_ts",
        "_max_held",
        "_picture_id_offset",
        "_reports",
        "_retry",
        "_seq_offset",
        "_tl0_offset",
        "_ts_offset",
        "current_layer",
        "keyframe_requests",
        "layer_ssrcs",
        "packets_dropped",
        "packets_forwarded",
        "switches",
        "target_layer",
    )

    def __init__(
        self,
        layer_ssrcs: Sequence[int],
        *,
        initial_sequence_number: int,
        initial_timestamp: int,
        initial_picture_id: int = 0,
        initial_tl0_pic_idx: int = 0,
        clock_rate: int = 90000,
        keyframe_retry_seconds: float = DEFAULT_KEYFRAME_RETRY_SECONDS,
        max_held_packets: int = 32,
    ) -> None:
        if not layer_ssrcs:
            raise ValueError("a simulcast track has at least one layer")
        if len(set(layer_ssrcs)) != len(layer_ssrcs):
            raise ValueError("layer SSRCs must be distinct")
        self.layer_ssrcs: tuple[int, ...] = tuple(layer_ssrcs)
        self._index = {ssrc: i for i, ssrc in enumerate(self.layer_ssrcs)}
        self._clock_rate = clock_rate
        self._retry = keyframe_retry_seconds
        self._max_held = max_held_packets
        self._initial_seq = initial_sequence_number % SEQ_MOD
        self._initial_ts = initial_timestamp % TS_MOD
        self._initial_picture_id = initial_picture_id % PICTURE_ID_MOD_15
        self._initial_tl0 = initial_tl0_pic_idx % TL0PICIDX_MOD
        # The layer being forwarded (None: nothing) and the one wanted (None: switched off).
        self.current_layer: int | None = None
        self.target_layer: int | None = None
        # The current epoch (or the last one, once stopped): its layer and offsets.
        self._epoch_layer: int | None = None
        # The newest input sequence number of the epoch, and how far it is past the epoch's
        # first (unbounded: an epoch outlives any number of sequence number wraps).
        self._epoch_top = 0
        self._epoch_span = 0
        self._seq_offset = 0
        self._ts_offset = 0
        self._picture_id_offset = 0
        self._tl0_offset = 0
        # What the output reached: highest sequence number sent, and the newest timestamp,
        # arrival, PictureID and TL0PICIDX that went with it.
        self._highest_seq: int | None = None
        self._last_ts: int | None = None
        self._last_arrival = 0.0
        self._last_picture_id: int | None = None
        self._last_tl0: int | None = None
        self._reports: dict[int, tuple[float, int]] = {}
        self._last_request = float("-inf")
        self._held: list[LayerPacket] = []
        self.packets_forwarded = 0
        self.packets_dropped = 0
        self.switches = 0
        self.keyframe_requests = 0

    # ------------------------------------------------------------------------- control
    @property
    def waiting_for_keyframe(self) -> bool:
        """A target layer is set and its key frame has not arrived yet."""
        return self.target_layer is not None and self.target_layer != self.current_layer

    def set_target(self, layer: int | None, now: float) -> int | None:
        """Want ``layer`` (an index into ``layer_ssrcs``), or nothing (None: switched off).

        Returns the SSRC to send a PLI for, when the switch needs a key frame. Switching off
        takes effect at once; switching to the layer already forwarded cancels a pending switch.
        """
        if layer is not None and not 0 <= layer < len(self.layer_ssrcs):
            raise ValueError(f"no layer {layer}: the track has {len(self.layer_ssrcs)}")
        if layer is None:
            self._held.clear()
            self.target_layer = None
            self.current_layer = None
            return None
        if layer == self.current_layer:
            self._held.clear()
            self.target_layer = layer
            return None
        if layer == self.target_layer:  # already waiting for it: only a due retry
            return self._request(now) if self._retry_due(now) else None
        self._held.clear()
        self.target_layer = layer
        return self._request(now)

    def poll(self, now: float) -> int | None:
        """The SSRC to send a PLI for again, when the target's key frame is overdue.

        :meth:`push` does the same on every packet; call this from a timer too, for a target
        layer whose packets do not arrive at all.
        """
        if self.waiting_for_keyframe and self._retry_due(now):
            return self._request(now)
        return None

    def sender_report(self, ssrc: int, ntp_time: int, rtp_timestamp: int) -> None:
        """Record a layer's RTCP sender report (64-bit NTP time, RTP timestamp).

        The reports of two layers give their timestamp offset, which makes a switch keep true
        media time. Reports of SSRCs that are not layers are ignored.
        """
        if ssrc in self._index:
            seconds = (ntp_time >> 32) + (ntp_time & 0xFFFFFFFF) / _NTP_FRACTION
            self._reports[ssrc] = (seconds, rtp_timestamp % TS_MOD)

    # ------------------------------------------------------------------------- packets
    def push(self, packet: LayerPacket) -> SwitcherResult:
        """Take one packet of any layer; say what to send and whether a PLI is due."""
        layer = self._index.get(packet.ssrc)
        if layer is None:
            return _NOTHING
        request: int | None = None
        if self.waiting_for_keyframe:
            if layer == self.target_layer and not packet.repaired:
                if packet.keyframe:
                    return self._switch(layer, packet)
                self._hold(packet)
            if self._retry_due(packet.arrival):
                request = self._request(packet.arrival)
        if layer != self.current_layer or not self._admit(packet.sequence_number):
            self.packets_dropped += 1
            return SwitcherResult(keyframe_request=request) if request is not None else _NOTHING
        out = self._map(layer, packet)
        return SwitcherResult(packets=(out,), keyframe_request=request)

    # ------------------------------------------------------------------------- internals
    def _retry_due(self, now: float) -> bool:
        return now - self._last_request >= self._retry

    def _request(self, now: float) -> int:
        assert self.target_layer is not None
        self._last_request = now
        self.keyframe_requests += 1
        return self.layer_ssrcs[self.target_layer]

    def _admit(self, seq: int) -> bool:
        """Whether an input packet belongs to the current epoch (not older than its first);
        advances the epoch's newest sequence number."""
        ahead = seq_distance(seq, self._epoch_top)
        if ahead > 0:
            self._epoch_top = seq
            self._epoch_span += ahead
            return True
        return self._epoch_span + ahead >= 0

    def _hold(self, packet: LayerPacket) -> None:
        held = self._held
        if held and held[0].timestamp != packet.timestamp:
            if _ts_distance(packet.timestamp, held[0].timestamp) < 0:
                return  # an older frame's straggler: no use for a switch
            held.clear()
        if len(held) < self._max_held:
            held.append(packet)

    def _switch(self, layer: int, keyframe: LayerPacket) -> SwitcherResult:
        self._start_epoch(layer, keyframe)
        rest = sorted(
            (
                p
                for p in self._held
                if p.timestamp == keyframe.timestamp
                and seq_distance(p.sequence_number, keyframe.sequence_number) > 0
            ),
            key=lambda p: seq_distance(p.sequence_number, keyframe.sequence_number),
        )
        self._held.clear()
        for p in rest:
            self._admit(p.sequence_number)
        packets = tuple(self._map(layer, p) for p in (keyframe, *rest))
        return SwitcherResult(packets=packets, switched_to=layer)

    def _start_epoch(self, layer: int, keyframe: LayerPacket) -> None:
        if self._highest_seq is None:
            first_seq = self._initial_seq
        else:
            first_seq = (self._highest_seq + 1) % SEQ_MOD
        first_ts = self._first_timestamp(layer, keyframe)
        self._seq_offset = (first_seq - keyframe.sequence_number) % SEQ_MOD
        self._ts_offset = (first_ts - keyframe.timestamp) % TS_MOD
        self._epoch_top = keyframe.sequence_number
        self._epoch_span = 0
        vp8 = keyframe.vp8
        if vp8 is not None and vp8.picture_id is not None:
            if self._last_picture_id is None:
                first_picture_id = self._initial_picture_id
            else:
                first_picture_id = self._last_picture_id + 1
            self._picture_id_offset = (first_picture_id - vp8.picture_id) % PICTURE_ID_MOD_15
        if vp8 is not None and vp8.tl0_pic_idx is not None:
            first_tl0 = self._initial_tl0 if self._last_tl0 is None else self._last_tl0 + 1
            self._tl0_offset = (first_tl0 - vp8.tl0_pic_idx) % TL0PICIDX_MOD
        if self.current_layer is not None or self._epoch_layer is not None:
            self.switches += 1
        self._epoch_layer = layer
        self.current_layer = layer

    def _first_timestamp(self, layer: int, keyframe: LayerPacket) -> int:
        last_ts = self._last_ts
        if last_ts is None:
            return self._initial_ts
        elapsed = max(0.0, keyframe.arrival - self._last_arrival)
        by_arrival = (last_ts + max(1, round(elapsed * self._clock_rate))) % TS_MOD
        chosen = by_arrival
        aligned = self._aligned_timestamp(layer, keyframe.timestamp)
        if aligned is not None:
            limit = _MAX_REPORT_DISAGREEMENT_SECONDS * self._clock_rate
            if abs(_ts_distance(aligned, by_arrival)) <= limit:
                chosen = aligned
        if _ts_distance(chosen, last_ts) <= 0:
            # Same capture instant as the last frame sent (layers encode the same pictures): a new
            # frame still needs a new timestamp.
            chosen = (last_ts + 1) % TS_MOD
        return chosen

    def _aligned_timestamp(self, layer: int, timestamp: int) -> int | None:
        """``timestamp`` of ``layer`` on the previous epoch's output timeline, from the reports."""
        previous = self._epoch_layer
        if previous is None:
            return None
        if previous == layer:
            return (timestamp + self._ts_offset) % TS_MOD
        new = self._reports.get(self.layer_ssrcs[layer])
        old = self._reports.get(self.layer_ssrcs[previous])
        if new is None or old is None:
            return None
        # RTP timestamp of each layer at one instant differs by a constant: the reports give
        # rtp(T) = rtp_report + (T - ntp_report) * rate for both.
        new_ntp, new_rtp = new
        old_ntp, old_rtp = old
        delta = new_rtp - old_rtp - round((new_ntp - old_ntp) * self._clock_rate)
        return (timestamp - delta + self._ts_offset) % TS_MOD

    def _map(self, layer: int, packet: LayerPacket) -> OutputPacket:
        seq = (packet.sequence_number + self._seq_offset) % SEQ_MOD
        ts = (packet.timestamp + self._ts_offset) % TS_MOD
        payload = packet.payload
        vp8 = packet.vp8
        newest = self._highest_seq is None or seq_distance(seq, self._highest_seq) > 0
        if vp8 is not None:
            picture_id: int | None = None
            tl0: int | None = None
            if vp8.picture_id is not None:
                picture_id = (vp8.picture_id + self._picture_id_offset) % PICTURE_ID_MOD_15
                if self._last_picture_id is None or (
                    picture_id_distance(picture_id, self._last_picture_id, vp8.picture_id_bits) > 0
                ):
                    self._last_picture_id = picture_id
            if vp8.tl0_pic_idx is not None:
                tl0 = (vp8.tl0_pic_idx + self._tl0_offset) % TL0PICIDX_MOD
                if self._last_tl0 is None or _tl0_distance(tl0, self._last_tl0) > 0:
                    self._last_tl0 = tl0
            payload = rewritten_vp8_payload(payload, vp8, picture_id=picture_id, tl0_pic_idx=tl0)
        if newest:
            self._highest_seq = seq
            self._last_ts = ts
            self._last_arrival = packet.arrival
        self.packets_forwarded += 1
        return OutputPacket(
            layer=layer,
            sequence_number=seq,
            timestamp=ts,
            marker=packet.marker,
            payload=payload,
            repaired=packet.repaired,
            source=packet,
        )


# ----------------------------------------------------------------------------- per track
@dataclass(frozen=True, slots=True)
class LayerState:
    """What is known of one layer: resolution (0x0 until a key frame was seen), bit rate (bits
    per second over the monitor's window) and whether packets are arriving."""

    index: int
    ssrc: int
    width: int
    height: int
    bitrate: int
    active: bool


class _LayerWindow:
    __slots__ = ("bytes_in_window", "height", "last_arrival", "samples", "width")

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()
        self.bytes_in_window = 0
        self.last_arrival = float("-inf")
        self.width = 0
        self.height = 0


class LayerMonitor:
    """Per-track view of its layers: bit rate, liveness, key frame resolution.

    Feed it every :class:`LayerPacket` of the track (once, not per subscriber). A layer is
    *active* while its packets keep arriving (within ``silence_seconds``): a publisher that stops
    encoding a layer (its own bandwidth adaptation, or publisher hints) makes it inactive.
    """

    def __init__(
        self,
        layer_ssrcs: Sequence[int],
        *,
        window_seconds: float = 1.0,
        silence_seconds: float = 1.0,
    ) -> None:
        self.layer_ssrcs: tuple[int, ...] = tuple(layer_ssrcs)
        self._index = {ssrc: i for i, ssrc in enumerate(self.layer_ssrcs)}
        self._window = window_seconds
        self._silence = silence_seconds
        self._layers = [_LayerWindow() for _ in self.layer_ssrcs]

    def observe(self, packet: LayerPacket) -> None:
        index = self._index.get(packet.ssrc)
        if index is None:
            return
        layer = self._layers[index]
        if packet.arrival > layer.last_arrival:
            layer.last_arrival = packet.arrival
        if not packet.repaired:
            layer.samples.append((packet.arrival, len(packet.payload)))
            layer.bytes_in_window += len(packet.payload)
            self._expire(layer, packet.arrival)
        if packet.keyframe and packet.vp8 is not None:
            size = vp8_keyframe_size(packet.payload, packet.vp8)
            if size is not None:
                layer.width, layer.height = size

    def set_resolution(self, index: int, width: int, height: int) -> None:
        """Resolution learned elsewhere (H.264 has no size in its RTP payload header)."""
        layer = self._layers[index]
        layer.width, layer.height = width, height

    def _expire(self, layer: _LayerWindow, now: float) -> None:
        horizon = now - self._window
        samples = layer.samples
        while samples and samples[0][0] <= horizon:
            layer.bytes_in_window -= samples.popleft()[1]

    def layers(self, now: float) -> tuple[LayerState, ...]:
        states = []
        for index, layer in enumerate(self._layers):
            self._expire(layer, now)
            states.append(
                LayerState(
                    index=index,
                    ssrc=self.layer_ssrcs[index],
                    width=layer.width,
                    height=layer.height,
                    bitrate=round(layer.bytes_in_window * 8 / self._window),
                    active=now - layer.last_arrival <= self._silence,
                )
            )
        return tuple(states)
