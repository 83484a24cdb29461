"""What the worker observes of one participant's media links, for network quality.

Two directions, seen from the worker:

* **inbound** (the participant sends, the worker receives): per published track, the receiver's
  own counters (packets received and lost from sequence-number gaps, interarrival jitter) and the
  bytes that arrived.
* **outbound** (the worker sends, the participant receives): per forwarding leg, what the
  participant's RTCP receiver reports say (cumulative loss, the loss fraction of the last report
  interval, jitter) and the round-trip time aiortc derives from them, plus the bytes sent.

Counters are cumulative; whoever computes rates keeps the previous sample and takes differences.
Jitter is converted from RTP timestamp units to milliseconds here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.stats import RTCInboundRtpStreamStats, RTCRemoteInboundRtpStreamStats


@dataclass(frozen=True)
class InboundStream:
    track_id: str
    kind: str
    packets_received: int
    packets_lost: int
    jitter_ms: float
    bytes_received: int


@dataclass(frozen=True)
class OutboundStream:
    track_id: str
    kind: str
    packets_sent: int
    bytes_sent: int
    reported: bool  # False until the participant's first receiver report for this leg
    packets_lost: int = 0
    fraction_lost: float = 0.0  # 0..1, of the last report interval
    jitter_ms: float = 0.0
    rtt_ms: float | None = None


@dataclass(frozen=True)
class LinkSample:
    participant_id: str
    taken_at: float  # time.monotonic() seconds
    inbound: list[InboundStream] = field(default_factory=list)
    outbound: list[OutboundStream] = field(default_factory=list)


def _ms(jitter_units: float, clock_rate: int) -> float:
    return 1000.0 * jitter_units / clock_rate if clock_rate else 0.0


async def inbound_stream(
    receiver: RTCRtpReceiver, track_id: str, kind: str, clock_rate: int, bytes_received: int
) -> InboundStream:
    received = lost = 0
    jitter = 0.0
    for stats in (await receiver.getStats()).values():
        if isinstance(stats, RTCInboundRtpStreamStats):
            received += stats.packetsReceived
            lost += max(0, stats.packetsLost)
            jitter = max(jitter, _ms(stats.jitter, clock_rate))
    return InboundStream(track_id, kind, received, lost, jitter, bytes_received)


async def outbound_stream(
    sender: RTCRtpSender,
    track_id: str,
    kind: str,
    clock_rate: int,
    packets_sent: int,
    bytes_sent: int,
) -> OutboundStream:
    for stats in (await sender.getStats()).values():
        if isinstance(stats, RTCRemoteInboundRtpStreamStats):
            rtt = stats.roundTripTime
            return OutboundStream(
                track_id,
                kind,
                packets_sent,
                bytes_sent,
                True,
                packets_lost=max(0, stats.packetsLost),
                fraction_lost=stats.fractionLost / 256.0,  # the report's 8-bit fixed point
                jitter_ms=_ms(stats.jitter, clock_rate),
                rtt_ms=None if rtt is None else rtt * 1000.0,
            )
    return OutboundStream(track_id, kind, packets_sent, bytes_sent, False)
