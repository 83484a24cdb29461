"""RTP-level forwarding of one published track to many subscriber legs, without decoding.

How it hooks into aiortc (1.16, names checked by :mod:`atrium_media.aiortc_compat`):

* **Receive side.** ``RTCRtpReceiver._handle_rtp_packet`` is shadowed by an instance attribute on
  the publisher's receiver. The wrapper first awaits aiortc's own method, so receiver reports, NACKs
  to the publisher, REMB and PLI-on-jitter-buffer-overflow keep working, then re-stamps the packet
  for every leg and sends it. The receiver's decoder queue (``__decoder_queue``) is replaced by a
  :class:`FrameSink` that drops the re-assembled frames on the event loop and only passes the stop
  sentinel to the decoder thread: nothing is decoded, no frame crosses threads, and the receiver's
  track never buffers anything. Unlike swapping ``aiortc.rtcrtpreceiver.get_decoder`` (a process
  global), this is per receiver, so clients in the same process (SDK, tests) still decode.
* **Send side.** Each subscriber leg is a ``sendonly`` transceiver whose sender holds an
  :class:`IdleTrack` (its ``recv()`` never returns, so aiortc's RTP loop sleeps instead of polling
  every 20 ms). Packets are re-stamped (payload type, SSRC, sequence number, timestamp, ``mid`` and
  ``abs-send-time``; ``ssrc-audio-level`` is kept), stored in the sender's RTX history so aiortc
  answers the subscriber's NACKs, and sent with the leg's ``RTCDtlsTransport._send_rtp`` once that
  transport is ``connected`` and the sender started. The sender's SR counters and NTP/RTP mapping
  are updated so its sender reports stay meaningful for lip-sync.
* **Keyframes.** ``RTCRtpSender._send_keyframe`` is shadowed per leg so a subscriber's PLI/FIR
  becomes ``RTCRtpReceiver._send_rtcp_pli`` on the publisher's receiver, rate-limited per track
  (a request inside the interval is deferred, not lost). A leg that starts (or resumes) is gated
  until a keyframe and triggers one PLI; while a leg waits, the PLI is repeated every
  ``KEYFRAME_RETRY_SECONDS``.
* **Taps.** A recorder is a packet tap (:meth:`TrackForwarder.add_tap`): it is called with every
  media packet of the track (after aiortc's own handling, RTX retransmissions unwrapped into the
  packets they repair) and its arrival time, with or without legs. A tap must be O(1) (a queue
  append): the recorder does its work on its own thread.

Threading: everything here runs on the event loop thread that owns the peer connections. None of
it is thread-safe; call it from that loop only. Memory is bounded: there is no queue on the RTP
path (packets are sent inline while the publisher's packet is handled), the RTX history is aiortc's
fixed 128-slot ring per leg, and a leg whose transport is closed or failed is dropped on the next
packet.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCRtpTransceiver
from aiortc.clock import current_ntp_time
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RTP_HISTORY_SIZE,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)

from atrium_media import aiortc_compat as compat
from atrium_media.forwarding.keyframes import keyframe_detector, needs_keyframe_gate
from atrium_media.forwarding.rewrite import StreamRewriter
from atrium_media.forwarding.simulcast import (
    LayerMonitor,
    LayerPacket,
    LayerState,
    SimulcastSwitcher,
    layer_packet,
)
from atrium_media.forwarding.vp8 import PICTURE_ID_MOD_15, TL0PICIDX_MOD

logger = logging.getLogger(__name__)

AudioLevelListener = Callable[[str, int, bool], None]
# A simulcast layer as the publisher's offer announces it: its media SSRC and its RTX SSRC.
LayerSsrcPair = tuple[int, int | None]

DEFAULT_PLI_INTERVAL = 0.3
# Resends per leg: at most this share of the packets sent (a burst of up to the maximum), and
# one resend of a packet per spacing (a receiver asks again every round trip).
RETRANSMIT_SHARE = 0.3
RETRANSMIT_CREDIT_MAX = 64.0
RETRANSMIT_SPACING_SECONDS = 0.1
KEYFRAME_RETRY_SECONDS = 1.0
# A simulcast leg's layer before the allocation chose one: the highest layer that is arriving.
AUTO_LAYER = -1
# How often a simulcast track re-reads which of its layers are arriving (for AUTO_LAYER legs).
_LAYER_STATES_SECONDS = 0.25
# How often a single stream's rate is sampled for the bandwidth allocation.
_STREAM_RATE_SECONDS = 1.0
_DEAD_TRANSPORT_STATES = ("closed", "failed")
_SENDING_DIRECTIONS = ("sendonly", "sendrecv")

# Called on the event loop with every media packet of a track (repaired ones included, RTX
# unwrapped) and its arrival time (Unix seconds). It must be O(1) and must not raise.
PacketTap = Callable[[RtpPacket, float], None]
# aiortc stamps arrival times in milliseconds since the NTP epoch (1900).
_NTP_TO_UNIX_SECONDS = 2208988800


class PacketRecorder(Protocol):
    """What :meth:`MediaRouter.record` needs of a recorder (``atrium_media.recording``'s
    ``TrackRecorder`` is one): a packet tap, and a keyframe requester it may call from any
    thread."""

    def feed(self, packet: RtpPacket, arrival_time: float) -> None: ...

    def set_keyframe_requester(self, request: Callable[[], None] | None) -> None: ...


class FrameSink:
    """Takes the place of a receiver's decoder queue: drops encoded frames, keeps the stop signal.

    ``put`` runs on the event loop (from ``_handle_rtp_packet``); ``get`` runs on the receiver's
    decoder thread, which therefore only ever sees the ``None`` sentinel and exits on it.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.discarded = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            self._inner.put(None)
        else:
            self.discarded += 1

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._inner.get(block, timeout)


class IdleTrack(MediaStreamTrack):
    """A sender track that never yields: the leg's packets are injected below the sender."""

    def __init__(self, kind: str, track_id: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        if track_id is not None:
            self._id = track_id
        self._stopped: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
        await self._stopped
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)


def codec_preferences(codec: RTCRtpCodecParameters, kind: str) -> list[RTCRtpCodecCapability]:
    """Capabilities to pass to ``setCodecPreferences`` so a leg negotiates the publisher's codec.

    Prefers aiortc capabilities with the same MIME type and parameters (H.264 profile, packetization
    mode), falls back to the same MIME type; appends RTX for video.
    """
    capabilities = RTCRtpSender.getCapabilities(kind).codecs
    mime = codec.mimeType.lower()
    same_mime = [c for c in capabilities if c.mimeType.lower() == mime]
    exact = [c for c in same_mime if c.parameters == codec.parameters]
    chosen = exact or same_mime
    if not chosen:
        raise ValueError(f"aiortc cannot send {codec.mimeType}")
    rtx = [c for c in capabilities if c.mimeType.lower() == "video/rtx"]
    return chosen + rtx


def narrow_codecs(transceiver: RTCRtpTransceiver, codec: RTCRtpCodecParameters | None) -> None:
    """Keep only ``codec`` (and its RTX) among a transceiver's negotiated codecs."""
    if codec is None:
        return
    codecs = getattr(transceiver, compat.TRANSCEIVER_CODECS)
    mime = codec.mimeType.lower()
    primary = [c for c in codecs if c.mimeType.lower() == mime]
    payload_types = {str(c.payloadType) for c in primary}
    rtx = [c for c in codecs if _is_rtx(c) and str(c.parameters.get("apt")) in payload_types]
    if primary:
        setattr(transceiver, compat.TRANSCEIVER_CODECS, primary + rtx)


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


# Sequence/timestamp state is kept per sender, so re-attaching a transceiver (a "slot") to another
# published track continues the subscriber's stream instead of jumping.
_rewriters: weakref.WeakKeyDictionary[RTCRtpSender, StreamRewriter] = weakref.WeakKeyDictionary()


def _rewriter_for(sender: RTCRtpSender, clock_rate: int) -> StreamRewriter:
    rewriter = _rewriters.get(sender)
    if rewriter is None:
        rewriter = StreamRewriter(
            clock_rate,
            initial_seq=random.randrange(32768),  # low half, as aiortc does (SRTP rollover)
            initial_ts=random.getrandbits(32),
        )
        _rewriters[sender] = rewriter
    return rewriter


@dataclass(frozen=True, slots=True)
class ReceiverEstimate:
    """The last REMB a subscriber sent about a leg: the bitrate it estimates it can receive
    (bits per second) over the SSRCs the REMB lists, and when it arrived (time.monotonic()).
    Chrome sends one REMB for its whole transport (listing every SSRC it receives); aiortc one per
    receiver, for its own stream only: ``ssrc_count`` tells them apart."""

    bitrate: int
    ssrc_count: int
    received_at: float


@dataclass(frozen=True, slots=True)
class ReportedLoss:
    """The subscriber's last receiver report about a leg: the fraction (0..1) of the leg's
    packets lost in the report's interval, and when it arrived (time.monotonic())."""

    fraction_lost: float
    received_at: float


@dataclass
class LegStats:
    subscriber_id: str
    state: str
    packets_sent: int
    bytes_sent: int
    packets_dropped: int
    keyframe_requests: int


class ForwardingLeg:
    """One published track forwarded to one subscriber over one sendonly transceiver."""

    PENDING = "pending"  # transport not connected / not negotiated yet
    WAITING = "waiting-keyframe"
    FORWARDING = "forwarding"
    PAUSED = "paused"
    CLOSED = "closed"

    def __init__(
        self, subscriber_id: str, transceiver: RTCRtpTransceiver, forwarder: TrackForwarder
    ) -> None:
        sender = transceiver.sender
        compat.require_instance_attrs(sender, compat.SENDER_INSTANCE_ATTRS)
        self.subscriber_id = subscriber_id
        self.transceiver = transceiver
        self.sender = sender
        self.enabled = True
        self.closed = False
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_dropped = 0
        self.keyframe_requests = 0
        self._ready = False
        self._payload_types: dict[str, int] = {}
        self._mid: str | None = None
        self._rewriter: StreamRewriter | None = None
        self._forwarder = weakref.ref(forwarder)
        self._sender_state: dict[str, Any] = sender.__dict__
        sender._send_keyframe = self._on_keyframe_request  # type: ignore[method-assign]
        # What the subscriber's RTCP says of its downlink (the bandwidth allocation reads it).
        self.receiver_estimate: ReceiverEstimate | None = None
        self.reported_loss: ReportedLoss | None = None
        # Packets the subscriber asked again for: its losses, known a round trip after they
        # happen (receiver reports come once a second, and count a repaired packet as received).
        self.packets_nacked = 0
        self._nacked_up_to: int | None = None  # the newest sequence number counted
        handle_rtcp = sender._handle_rtcp_packet

        async def handle_rtcp_packet(packet: Any) -> None:
            await handle_rtcp(packet)  # receiver reports, NACKs, PLI: aiortc's own handling
            try:  # inside aiortc's RTCP loop: nothing may escape (it would end that loop)
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                    self._on_remb(packet)
                elif isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
                    self._on_receiver_reports(packet)
                elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
                    self._on_nack(packet.lost)
            except Exception:
                logger.exception("RTCP feedback of a leg to %s not read", self.subscriber_id)

        sender._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]
        # Retransmissions answer NACKs, within a budget: on a congested link every loss asked
        # again and again would otherwise be resent each time, and the resends add to the
        # congestion that lost the packets (a storm that starves the stream itself).
        self._retransmit_credit = 0.0
        self._retransmitted = [(-1, float("-inf"))] * RTP_HISTORY_SIZE  # (seq, when)
        self.packets_retransmitted = 0
        self.bytes_retransmitted = 0
        retransmit = sender._retransmit

        async def limited_retransmit(sequence_number: int) -> None:
            # Runs inside aiortc's RTCP loop: an exception here would end the transport's
            # receive loop, so none may escape.
            try:
                allowed = self._may_retransmit(sequence_number)
            except Exception:
                logger.exception("resend budget of a leg to %s failed", self.subscriber_id)
                allowed = True
            if allowed:
                await retransmit(sequence_number)

        sender._retransmit = limited_retransmit  # type: ignore[method-assign]
        # Simulcast tracks only: the splicer of the publisher's layers onto this leg's one
        # stream (made on the leg's first packet), and the layer the allocation chose for it
        # (None: switched off; AUTO_LAYER until it chose).
        self.switcher: SimulcastSwitcher | None = None
        self.chosen_layer: int | None = AUTO_LAYER

    @property
    def state(self) -> str:
        if self.closed:
            return self.CLOSED
        if not self._ready:
            return self.PENDING
        forwarder = self._forwarder()
        if not self.enabled or (forwarder is not None and not forwarder.enabled):
            return self.PAUSED
        if self.switcher is not None:
            if self.chosen_layer is None:
                return self.PAUSED
            return self.FORWARDING if self.switcher.current_layer is not None else self.WAITING
        if self._rewriter is not None and self._rewriter.active:
            return self.FORWARDING
        return self.WAITING

    @property
    def forwarded_layer(self) -> int | None:
        """The simulcast layer (index into the track's SSRCs) this leg forwards now, if any."""
        return None if self.switcher is None else self.switcher.current_layer

    def _on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        forwarder = self._forwarder()
        if forwarder is None or not self.enabled:
            return
        switcher = self.switcher
        if switcher is not None and switcher.current_layer is not None:
            # Only the layer this subscriber decodes needs a key frame.
            forwarder.request_layer_keyframe(switcher.layer_ssrcs[switcher.current_layer])
        else:
            forwarder.request_keyframe()

    def _on_remb(self, packet: RtcpPsfbPacket) -> None:
        try:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
        except ValueError:
            return  # another application-layer feedback, not a REMB
        if self.sender._ssrc in ssrcs:
            self.receiver_estimate = ReceiverEstimate(bitrate, len(ssrcs), time.monotonic())

    def _may_retransmit(self, seq: int) -> bool:
        """At most one resend of a packet per RETRANSMIT_SPACING_SECONDS, and resends at most
        RETRANSMIT_SHARE of the packets sent (a credit earned per packet, spent per resend)."""
        now = time.monotonic()
        slot = seq % RTP_HISTORY_SIZE
        last_seq, last_at = self._retransmitted[slot]
        if last_seq == seq and now - last_at < RETRANSMIT_SPACING_SECONDS:
            return False
        if self._retransmit_credit < 1.0:
            return False
        packet = self._sender_state[compat.SENDER_RTP_HISTORY].get(slot)  # a dict in aiortc
        if packet is None or packet.sequence_number != seq:
            return False
        self._retransmit_credit -= 1.0
        self._retransmitted[slot] = (seq, now)
        self.packets_retransmitted += 1
        self.bytes_retransmitted += len(packet.payload)
        return True

    def _on_nack(self, lost: Sequence[int]) -> None:
        """Count each lost packet once: a receiver asks again for a packet every round trip
        until it arrives, and NACK lists are in sequence order."""
        for seq in lost:
            newest = self._nacked_up_to
            if newest is None or 0 < (seq - newest) & 0xFFFF < 0x8000:
                self.packets_nacked += 1
                self._nacked_up_to = seq

    def _on_receiver_reports(self, packet: RtcpRrPacket | RtcpSrPacket) -> None:
        for report in packet.reports:
            if report.ssrc == self.sender._ssrc:
                self.reported_loss = ReportedLoss(report.fraction_lost / 256, time.monotonic())

    def is_dead(self) -> bool:
        if self.closed or self.transceiver.stopped:
            return True
        return bool(self.sender.transport.state in _DEAD_TRANSPORT_STATES)

    def try_activate(self, clock_rate: int) -> bool:
        """Become ready once negotiated, connected and started; True on the transition."""
        if self._ready:
            return False
        transceiver = self.transceiver
        if (
            transceiver.mid is None
            or transceiver.currentDirection not in _SENDING_DIRECTIONS
            or self.sender.transport.state != "connected"
            or not self._sender_state.get(compat.SENDER_STARTED, False)
        ):
            return False
        codecs: list[RTCRtpCodecParameters] = getattr(transceiver, compat.TRANSCEIVER_CODECS)
        for codec in codecs:
            if not _is_rtx(codec) and codec.payloadType is not None:
                self._payload_types.setdefault(codec.mimeType.lower(), codec.payloadType)
        if not self._payload_types:
            return False
        self._mid = transceiver.mid
        self._rewriter = _rewriter_for(self.sender, clock_rate)
        self._rewriter.stop_epoch()
        self._ready = True
        return True

    def pause_epoch(self) -> None:
        if self._rewriter is not None:
            self._rewriter.stop_epoch()
        if self.switcher is not None:
            # Off now; the next packet re-targets it (and asks for that layer's key frame).
            self.switcher.set_target(None, time.monotonic())

    def detach(self) -> None:
        """Stop forwarding and give the sender back its own keyframe handling."""
        self.closed = True
        self.pause_epoch()
        self.sender.__dict__.pop("_send_keyframe", None)
        self.sender.__dict__.pop("_handle_rtcp_packet", None)
        self.sender.__dict__.pop("_retransmit", None)

    async def forward(
        self,
        packet: RtpPacket,
        mime: str,
        is_keyframe: Callable[[], bool],
        repaired: bool,
        now: float,
        abs_send_time: int,
        ntp_time: int,
    ) -> int:
        """Send one publisher packet on this leg; returns the payload bytes sent (0: not sent)."""
        rewriter = self._rewriter
        payload_type = self._payload_types.get(mime)
        if rewriter is None or payload_type is None or not self.enabled:
            self.packets_dropped += 1
            return 0
        if not rewriter.active:
            if repaired or not is_keyframe():
                self.packets_dropped += 1
                return 0
            rewriter.start_epoch(packet.sequence_number, packet.timestamp, now)
        elif not rewriter.in_epoch(packet.sequence_number):
            return 0
        seq, ts = rewriter.map(packet.sequence_number, packet.timestamp, now)
        return await self._send(
            payload_type,
            packet.marker,
            seq,
            ts,
            packet.payload,
            repaired,
            abs_send_time,
            ntp_time,
            padding_size=packet.padding_size,
            audio_level=packet.extensions.audio_level,
        )

    async def forward_layer(
        self,
        packet: LayerPacket,
        mime: str,
        layer_ssrcs: tuple[int, ...],
        top_active: int,
        now: float,
        abs_send_time: int,
        ntp_time: int,
    ) -> tuple[int, int | None]:
        """Send one packet of a simulcast track's layers on this leg, if it is of the layer the
        leg forwards: (payload bytes sent, the layer SSRC a key frame is needed from or None)."""
        rewriter = self._rewriter
        payload_type = self._payload_types.get(mime)
        if rewriter is None or payload_type is None or not self.enabled:
            self.packets_dropped += 1
            return 0, None
        switcher = self.switcher
        if switcher is None or switcher.layer_ssrcs != layer_ssrcs:
            # The leg's stream continues where its sender stopped (a re-used slot, or a track
            # that became simulcast), with fresh VP8 picture numbering.
            seq, ts = rewriter.continuation(now)
            rewriter.stop_epoch()
            switcher = self.switcher = SimulcastSwitcher(
                layer_ssrcs,
                initial_sequence_number=seq,
                initial_timestamp=ts,
                initial_picture_id=random.randrange(PICTURE_ID_MOD_15),
                initial_tl0_pic_idx=random.randrange(TL0PICIDX_MOD),
            )
        chosen = self.chosen_layer
        target = top_active if chosen == AUTO_LAYER else chosen
        if target is not None:
            target = min(target, len(layer_ssrcs) - 1)
        request = switcher.set_target(target, now) if switcher.target_layer != target else None
        result = switcher.push(packet)
        sent = 0
        for out in result.packets:
            sent += await self._send(
                payload_type,
                int(out.marker),
                out.sequence_number,
                out.timestamp,
                out.payload,
                out.repaired,
                abs_send_time,
                ntp_time,
            )
        if not result.packets:
            self.packets_dropped += 1
        return sent, result.keyframe_request or request

    async def _send(
        self,
        payload_type: int,
        marker: int,
        seq: int,
        ts: int,
        payload: bytes,
        repaired: bool,
        abs_send_time: int,
        ntp_time: int,
        *,
        padding_size: int = 0,
        audio_level: Any = None,
    ) -> int:
        """Send one re-stamped packet on the leg's transport; the payload bytes sent (0: none)."""
        out = RtpPacket(
            payload_type=payload_type,
            marker=marker,
            sequence_number=seq,
            timestamp=ts,
            ssrc=self.sender._ssrc,
            payload=payload,
        )
        out.padding_size = padding_size
        extensions = out.extensions
        extensions.mid = self._mid
        extensions.abs_send_time = abs_send_time
        extensions.audio_level = audio_level
        state = self._sender_state
        state[compat.SENDER_RTP_HISTORY][seq % RTP_HISTORY_SIZE] = out
        data = out.serialize(state[compat.SENDER_EXTENSIONS_MAP])
        try:
            await self.sender.transport._send_rtp(data)
        except ConnectionError:
            self.packets_dropped += 1
            if self.sender.transport.state in _DEAD_TRANSPORT_STATES:
                self.closed = True
            return 0
        self.packets_sent += 1
        self.bytes_sent += len(payload)
        self._retransmit_credit = min(
            RETRANSMIT_CREDIT_MAX, self._retransmit_credit + RETRANSMIT_SHARE
        )
        if not repaired:
            state[compat.SENDER_NTP_TIMESTAMP] = ntp_time
            state[compat.SENDER_RTP_TIMESTAMP] = ts
        state[compat.SENDER_OCTET_COUNT] += len(payload)
        state[compat.SENDER_PACKET_COUNT] += 1
        return len(payload)

    def stats(self) -> LegStats:
        return LegStats(
            subscriber_id=self.subscriber_id,
            state=self.state,
            packets_sent=self.packets_sent,
            bytes_sent=self.bytes_sent,
            packets_dropped=self.packets_dropped,
            keyframe_requests=self.keyframe_requests,
        )


@dataclass
class TrackStats:
    track_id: str
    publisher_id: str
    kind: str
    enabled: bool
    packets_received: int
    bytes_received: int
    packets_forwarded: int
    bytes_forwarded: int
    keyframe_requests_sent: int
    frames_discarded: int
    legs: list[LegStats]


class _SimulcastInput:
    """A simulcast publisher's layers on one m-line: which SSRC is which layer (its RTX SSRC
    included), what is known of each layer, and when each last got a PLI."""

    def __init__(self, layers: Sequence[LayerSsrcPair]) -> None:
        self.ssrcs: tuple[int, ...] = tuple(ssrc for ssrc, _ in layers)
        self.index = {ssrc: index for index, ssrc in enumerate(self.ssrcs)}
        self.repairs = {rtx: ssrc for ssrc, rtx in layers if rtx is not None}
        self.monitor = LayerMonitor(self.ssrcs)
        self.last_pli: dict[int, float] = {}
        self._top_active = 0
        self._top_checked = float("-inf")
        self._recorded: int | None = None

    def primary_of(self, ssrc: int) -> int | None:
        """The layer SSRC a media or RTX SSRC belongs to (None: not one of the layers)."""
        return ssrc if ssrc in self.index else self.repairs.get(ssrc)

    def top_active(self, now: float) -> int:
        """The largest layer whose packets arrive (by key frame size, then bit rate), re-read at
        most every ``_LAYER_STATES_SECONDS``. Sizes decide, not the SIM group's order (which says
        nothing of size when the browser scales no encoding down)."""
        if now - self._top_checked >= _LAYER_STATES_SECONDS:
            self._top_checked = now
            active = [state for state in self.monitor.layers(now) if state.active]
            if active:
                best = max(active, key=lambda state: (state.width * state.height, state.bitrate))
                self._top_active = best.index
        return self._top_active

    def recorded_layer(self, now: float) -> int:
        """The layer recorders get: the largest one that arrives, kept once its size is known
        (a recording is one stream; it does not follow later changes)."""
        if self._recorded is not None:
            return self._recorded
        top = self.top_active(now)
        if self.monitor.layers(now)[top].width > 0:
            self._recorded = top
        return top


class TrackForwarder:
    """Forwards the RTP of one publisher receiver to any number of :class:`ForwardingLeg`.

    A simulcast publisher (:meth:`set_layers`) sends several layers on the m-line; each leg then
    forwards one of them at a time (:meth:`set_leg_layer`), spliced by its
    :class:`~atrium_media.forwarding.simulcast.SimulcastSwitcher`.
    """

    def __init__(
        self,
        publisher_id: str,
        track_id: str,
        transceiver: RTCRtpTransceiver,
        *,
        pli_interval: float = DEFAULT_PLI_INTERVAL,
        on_leg_removed: Callable[[ForwardingLeg], None] | None = None,
    ) -> None:
        receiver = transceiver.receiver
        compat.require_instance_attrs(receiver, compat.RECEIVER_INSTANCE_ATTRS)
        if "_handle_rtp_packet" in receiver.__dict__:
            raise ValueError("this receiver is already forwarded")
        self.publisher_id = publisher_id
        self.track_id = track_id
        self.kind: str = transceiver.kind
        self.transceiver = transceiver
        self.receiver = receiver
        self.enabled = True
        self.legs: dict[str, ForwardingLeg] = {}
        self.media_ssrc: int | None = None
        self.packets_received = 0
        self.bytes_received = 0
        # A single stream's rate, for the bandwidth allocation: (when, bytes received by then)
        # at the last sample, and the rate it gave (bits per second).
        self._rate_sample: tuple[float, int] = (time.monotonic(), 0)
        self._stream_bitrate = 0
        self.keyframe_requests_sent = 0
        self.packets_forwarded = 0
        self.bytes_forwarded = 0
        self._pli_interval = pli_interval
        self._last_pli = float("-inf")
        self._pli_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._codecs: dict[int, RTCRtpCodecParameters] = {}
        self._on_leg_removed = on_leg_removed
        self._closed = False
        self._pli_on_first_packet = False
        # Audio only: called with (publisher_id, level in -dBov 0..127, voice activity) for each
        # packet carrying RFC 6464's ssrc-audio-level, while the track is enabled. It is how
        # speaker detection learns levels without decoding audio.
        self.on_audio_level: AudioLevelListener | None = None
        # Packet taps (recorders): they see every media packet, with or without legs and whether
        # or not forwarding is enabled (what is published is recorded).
        self._taps: tuple[PacketTap, ...] = ()
        self._simulcast: _SimulcastInput | None = None

        self._original = receiver._handle_rtp_packet
        self._sink = FrameSink(receiver.__dict__[compat.RECEIVER_DECODER_QUEUE])
        receiver.__dict__[compat.RECEIVER_DECODER_QUEUE] = self._sink
        receiver._handle_rtp_packet = self._on_rtp  # type: ignore[method-assign]

    # ----------------------------------------------------------------- codec bookkeeping
    @property
    def codec(self) -> RTCRtpCodecParameters | None:
        """The primary negotiated codec (what a subscriber leg should negotiate)."""
        for codec in getattr(self.transceiver, compat.TRANSCEIVER_CODECS):
            if not _is_rtx(codec):
                return codec  # type: ignore[no-any-return]
        return None

    def _codec_for(self, payload_type: int) -> RTCRtpCodecParameters | None:
        codec = self._codecs.get(payload_type)
        if codec is None:
            for candidate in getattr(self.transceiver, compat.TRANSCEIVER_CODECS):
                if candidate.payloadType is not None:
                    self._codecs[candidate.payloadType] = candidate
            codec = self._codecs.get(payload_type)
        return codec

    @property
    def frames_discarded(self) -> int:
        """Re-assembled frames aiortc handed to the decoder queue and that were dropped unseen."""
        return self._sink.discarded

    # ----------------------------------------------------------------- legs
    def add_leg(self, subscriber_id: str, transceiver: RTCRtpTransceiver) -> ForwardingLeg:
        if self._closed:
            raise RuntimeError(f"track {self.track_id} is no longer published")
        if transceiver.kind != self.kind:
            raise ValueError(f"cannot forward {self.kind} on a {transceiver.kind} transceiver")
        old = self.legs.pop(subscriber_id, None)
        if old is not None:
            old.detach()
        leg = ForwardingLeg(subscriber_id, transceiver, self)
        self.legs[subscriber_id] = leg
        return leg

    def remove_leg(self, subscriber_id: str) -> ForwardingLeg | None:
        leg = self.legs.pop(subscriber_id, None)
        if leg is not None:
            leg.detach()
        return leg

    def _drop_dead_leg(self, leg: ForwardingLeg) -> None:
        if self.legs.get(leg.subscriber_id) is leg:
            del self.legs[leg.subscriber_id]
        leg.detach()
        if self._on_leg_removed is not None:
            self._on_leg_removed(leg)

    # ----------------------------------------------------------------- taps
    @property
    def taps(self) -> tuple[PacketTap, ...]:
        return self._taps

    def add_tap(self, tap: PacketTap) -> None:
        if tap not in self._taps:
            self._taps = (*self._taps, tap)

    def remove_tap(self, tap: PacketTap) -> None:
        self._taps = tuple(t for t in self._taps if t != tap)

    def _tap(self, taps: tuple[PacketTap, ...], packet: RtpPacket, arrival_time_ms: int) -> None:
        arrival = arrival_time_ms / 1000 - _NTP_TO_UNIX_SECONDS
        for tap in taps:
            try:
                tap(packet, arrival)
            except Exception:
                logger.exception("packet tap of %s failed", self.track_id)

    # ----------------------------------------------------------------- simulcast
    def set_layers(self, layers: Sequence[LayerSsrcPair]) -> None:
        """The layers the publisher's offer announces for this m-line, in its SIM group's order.
        Two or more make the track simulcast; one (or none) is a single stream, forwarded as
        before."""
        if self.kind != "video" or len(layers) < 2:
            if self._simulcast is not None:
                self._simulcast = None
                for leg in self.legs.values():
                    leg.switcher = None
                    leg.pause_epoch()
                self.request_keyframe()
            return
        if self._simulcast is not None and self._simulcast.ssrcs == tuple(s for s, _ in layers):
            return
        self._simulcast = _SimulcastInput(layers)
        self.media_ssrc = None
        for leg in self.legs.values():
            leg.pause_epoch()

    @property
    def is_simulcast(self) -> bool:
        return self._simulcast is not None

    def layer_states(self) -> tuple[LayerState, ...]:
        """What is known of each simulcast layer now (empty for a single stream)."""
        if self._simulcast is None:
            return ()
        return self._simulcast.monitor.layers(time.monotonic())

    def stream_state(self) -> LayerState | None:
        """A single video stream seen as one layer, for the allocation: its rate over about
        the last second, its size unknown (0x0: nothing in its packets is parsed for it), active
        while packets arrive. None for audio and data, and for a simulcast track (see
        :meth:`layer_states`)."""
        if self.kind != "video" or self._simulcast is not None:
            return None
        now = time.monotonic()
        sampled_at, sampled_bytes = self._rate_sample
        if now - sampled_at >= _STREAM_RATE_SECONDS:
            self._stream_bitrate = round(
                8 * (self.bytes_received - sampled_bytes) / (now - sampled_at)
            )
            self._rate_sample = (now, self.bytes_received)
        active = self.enabled and self._stream_bitrate > 0
        return LayerState(0, self.media_ssrc or 0, 0, 0, self._stream_bitrate, active)

    def set_leg_layer(self, subscriber_id: str, layer: int | None) -> None:
        """Forward ``layer`` (an index into the layers' SSRCs, or AUTO_LAYER) to the subscriber,
        or nothing (None). The switch happens at the layer's next key frame."""
        leg = self.legs.get(subscriber_id)
        if leg is not None and leg.chosen_layer != layer:
            logger.info(
                "track %s to %s: layer %s -> %s",
                self.track_id,
                subscriber_id,
                leg.chosen_layer,
                layer,
            )
            leg.chosen_layer = layer

    def leg(self, subscriber_id: str) -> ForwardingLeg | None:
        """The subscriber's leg of this track, if it has one."""
        return self.legs.get(subscriber_id)

    def request_layer_keyframe(self, ssrc: int) -> None:
        """A PLI for one layer, at most once per PLI interval per layer (the switchers repeat
        theirs while they wait, so one skipped here is not lost)."""
        simulcast = self._simulcast
        if simulcast is None or self._closed:
            return
        now = time.monotonic()
        if now - simulcast.last_pli.get(ssrc, float("-inf")) < self._pli_interval:
            return
        simulcast.last_pli[ssrc] = now
        self.keyframe_requests_sent += 1
        self._spawn(self.receiver._send_rtcp_pli(ssrc))

    # ----------------------------------------------------------------- control
    def set_enabled(self, enabled: bool) -> None:
        """Pause (stop forwarding to every leg) or resume (legs re-gate on a requested keyframe)."""
        if enabled == self.enabled:
            return
        self.enabled = enabled
        for leg in self.legs.values():
            leg.pause_epoch()
        if enabled:
            self.request_keyframe()

    def set_leg_enabled(self, subscriber_id: str, enabled: bool) -> None:
        leg = self.legs.get(subscriber_id)
        if leg is None or leg.enabled == enabled:
            return
        logger.info("track %s to %s: %s", self.track_id, subscriber_id, "on" if enabled else "off")
        leg.enabled = enabled
        leg.pause_epoch()
        if enabled:
            self.request_keyframe()

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (video only), at most once per PLI interval.

        A request inside the interval is deferred to its end (one timer), so it is never lost.
        """
        if self.kind != "video" or self._closed:
            return
        if self._simulcast is not None:
            for leg in self.legs.values():
                switcher = leg.switcher
                if switcher is not None and switcher.current_layer is not None:
                    self.request_layer_keyframe(switcher.layer_ssrcs[switcher.current_layer])
            return  # legs waiting for a layer ask for it themselves
        now = time.monotonic()
        wait = self._last_pli + self._pli_interval - now
        if wait <= 0:
            self._send_pli(now)
        elif self._pli_timer is None:
            loop = asyncio.get_running_loop()
            self._pli_timer = loop.call_later(wait, self._deferred_pli)

    def _deferred_pli(self) -> None:
        self._pli_timer = None
        if not self._closed:
            self._send_pli(time.monotonic())

    def _send_pli(self, now: float) -> None:
        ssrc = self.media_ssrc
        if ssrc is None:
            sources = self.receiver.getSynchronizationSources()
            if not sources:
                # No packet yet, so no SSRC to address: ask as soon as the first one arrives.
                self._pli_on_first_packet = True
                return
            ssrc = sources[0].source
        self._last_pli = now
        self.keyframe_requests_sent += 1
        self._spawn(self.receiver._send_rtcp_pli(ssrc))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- packet path
    async def _on_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        simulcast = self._simulcast
        if simulcast is not None:
            await self._on_simulcast_rtp(simulcast, packet, arrival_time_ms)
            return
        await self._original(packet, arrival_time_ms)
        if self._closed or not self.receiver._enabled:
            return
        self.packets_received += 1
        self.bytes_received += len(packet.payload)
        codec = self._codec_for(packet.payload_type)
        if codec is None:
            return
        repaired = False
        taps = self._taps
        if _is_rtx(codec):
            if (not self.legs or not self.enabled) and not taps:
                return
            apt = codec.parameters.get("apt")
            if not isinstance(apt, int) or self.media_ssrc is None or len(packet.payload) < 2:
                return
            primary = self._codec_for(apt)
            if primary is None:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=self.media_ssrc)
            codec = primary
            repaired = True
            if taps:
                self._tap(taps, packet, arrival_time_ms)
        else:
            if packet.ssrc != self.media_ssrc:
                if self.media_ssrc is None and self._pli_on_first_packet:
                    self._pli_on_first_packet = False
                    self.media_ssrc = packet.ssrc
                    self.request_keyframe()
                elif self.media_ssrc is not None:
                    # The publisher restarted its stream: every leg re-gates on a fresh keyframe.
                    for leg in self.legs.values():
                        leg.pause_epoch()
                    self.request_keyframe()
                self.media_ssrc = packet.ssrc
            listener = self.on_audio_level
            if listener is not None and self.enabled:
                level = packet.extensions.audio_level
                if level is not None:
                    listener(self.publisher_id, level[1], level[0])
            if taps:
                self._tap(taps, packet, arrival_time_ms)
        if not self.legs or not self.enabled:
            return
        try:
            await self._forward(packet, codec, repaired)
        except Exception:
            # Never let a forwarding bug kill the publisher's DTLS receive loop.
            logger.exception("forwarding %s failed", self.track_id)

    async def _forward(
        self, packet: RtpPacket, codec: RTCRtpCodecParameters, repaired: bool
    ) -> None:
        mime = codec.mimeType.lower()
        gated = needs_keyframe_gate(mime)
        detect = keyframe_detector(mime)
        keyframe: list[bool] = []

        def is_keyframe() -> bool:
            if not keyframe:
                keyframe.append(detect(packet.payload))
            return keyframe[0]

        now = time.monotonic()
        ntp_time = current_ntp_time()
        abs_send_time = (ntp_time >> 14) & 0x00FFFFFF
        waiting = False
        for leg in tuple(self.legs.values()):
            if leg.is_dead():
                self._drop_dead_leg(leg)
                continue
            if leg.try_activate(codec.clockRate) and gated:
                self.request_keyframe()
            sent = await leg.forward(
                packet, mime, is_keyframe, repaired, now, abs_send_time, ntp_time
            )
            if sent:
                self.packets_forwarded += 1
                self.bytes_forwarded += sent
            if leg.closed:
                self._drop_dead_leg(leg)
            elif gated and leg.state == ForwardingLeg.WAITING:
                waiting = True
        if waiting and now - self._last_pli >= KEYFRAME_RETRY_SECONDS:
            self.request_keyframe()

    async def _on_simulcast_rtp(
        self, simulcast: _SimulcastInput, packet: RtpPacket, arrival_time_ms: int
    ) -> None:
        primary = simulcast.primary_of(packet.ssrc)
        codec = self._codec_for(packet.payload_type)
        if primary is None or codec is None:
            await self._original(packet, arrival_time_ms)  # not a layer: aiortc's business
            return
        received = packet
        repaired = False
        if _is_rtx(codec):
            apt = codec.parameters.get("apt")
            primary_codec = self._codec_for(apt) if isinstance(apt, int) else None
            if primary_codec is None or not isinstance(apt, int) or len(packet.payload) < 2:
                # Padding (Chrome probes bandwidth on its RTX streams): counted, not forwarded.
                await self._estimate_bandwidth(packet, arrival_time_ms)
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=primary)
            codec = primary_codec
            repaired = True
        if simulcast.index[primary] == 0:
            # aiortc's receive path (receiver reports, NACKs, jitter buffer) follows one stream,
            # the first layer, repairs unwrapped here (it maps no RTX SSRC of a simulcast
            # m-line, so it would NACK the repaired packets again and again). Fed every layer,
            # it would take the jumps between their sequence numbers for losses and flood the
            # publisher with NACKs and PLIs.
            await self._original(packet, arrival_time_ms)
        else:
            await self._estimate_bandwidth(received, arrival_time_ms)
        if self._closed or not self.receiver._enabled:
            return
        self.packets_received += 1
        self.bytes_received += len(received.payload)
        mime = codec.mimeType.lower()
        now = time.monotonic()
        try:
            described = layer_packet(
                primary,
                packet.sequence_number,
                packet.timestamp,
                bool(packet.marker),
                packet.payload,
                now,
                mime_type=mime,
                repaired=repaired,
            )
        except ValueError:  # too short for its payload descriptor, or not VP8/H.264
            return
        simulcast.monitor.observe(described)
        taps = self._taps
        if taps and simulcast.index[primary] == simulcast.recorded_layer(now):
            self._tap(taps, packet, arrival_time_ms)
        if not self.legs or not self.enabled:
            return
        try:
            await self._forward_layers(simulcast, described, mime, codec.clockRate, now)
        except Exception:
            logger.exception("forwarding %s failed", self.track_id)

    async def _forward_layers(
        self,
        simulcast: _SimulcastInput,
        packet: LayerPacket,
        mime: str,
        clock_rate: int,
        now: float,
    ) -> None:
        ntp_time = current_ntp_time()
        abs_send_time = (ntp_time >> 14) & 0x00FFFFFF
        top = simulcast.top_active(now)
        for leg in tuple(self.legs.values()):
            if leg.is_dead():
                self._drop_dead_leg(leg)
                continue
            leg.try_activate(clock_rate)
            sent, request = await leg.forward_layer(
                packet, mime, simulcast.ssrcs, top, now, abs_send_time, ntp_time
            )
            if sent:
                self.packets_forwarded += 1
                self.bytes_forwarded += sent
            if request is not None:
                self.request_layer_keyframe(request)
            if leg.closed:
                self._drop_dead_leg(leg)

    async def _estimate_bandwidth(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """Count a packet that bypasses aiortc's receive path in its bandwidth estimate, so the
        REMB the publisher gets covers every layer it sends (the publisher sizes its layers by
        it)."""
        receiver_state = self.receiver.__dict__
        estimator = receiver_state.get(compat.RECEIVER_BITRATE_ESTIMATOR)
        abs_send_time = packet.extensions.abs_send_time
        if estimator is None or abs_send_time is None:
            return
        remb = estimator.add(
            abs_send_time=abs_send_time,
            arrival_time_ms=arrival_time_ms,
            payload_size=len(packet.payload) + packet.padding_size,
            ssrc=packet.ssrc,
        )
        rtcp_ssrc = receiver_state.get(compat.RECEIVER_RTCP_SSRC)
        if remb is not None and rtcp_ssrc is not None:
            feedback = RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)
            )
            await self.receiver._send_rtcp(feedback)

    # ----------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Unhook the receiver and detach every leg (the transceivers stay with their PCs)."""
        if self._closed:
            return
        self._closed = True
        if self._pli_timer is not None:
            self._pli_timer.cancel()
            self._pli_timer = None
        self.receiver.__dict__.pop("_handle_rtp_packet", None)
        self._taps = ()
        for leg in self.legs.values():
            leg.detach()
        self.legs.clear()

    def stats(self) -> TrackStats:
        legs = [leg.stats() for leg in self.legs.values()]
        return TrackStats(
            track_id=self.track_id,
            publisher_id=self.publisher_id,
            kind=self.kind,
            enabled=self.enabled,
            packets_received=self.packets_received,
            bytes_received=self.bytes_received,
            packets_forwarded=self.packets_forwarded,
            bytes_forwarded=self.bytes_forwarded,
            keyframe_requests_sent=self.keyframe_requests_sent,
            frames_discarded=self.frames_discarded,
            legs=legs,
        )
