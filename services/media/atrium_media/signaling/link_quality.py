"""From two link samples of a participant to the statistics network quality is judged on.

The forwarding layer reports cumulative counters (:class:`~atrium_media.forwarding.LinkSample`);
this turns the difference between the previous sample and the current one into rates and loss
shares per media kind and direction (:class:`~atrium_media.extensions.ParticipantStats`):

* send (the participant publishes): the packets the worker missed among those it should have
  received over the interval, the worst interarrival jitter, the bit rate that arrived, and the
  round-trip time measured on the participant's downlink (one path, both directions).
* recv (the worker forwards to it): the loss share and jitter of the participant's latest
  receiver reports, weighted by what each leg carried, the round-trip time, and the bit rate that
  reached it (sent x (1 - lost)) against the bit rate sent.

A kind with no stream in a direction is ``None`` there (not used, so not judged).
"""

from __future__ import annotations

from collections.abc import Sequence

from atrium_media.extensions import (
    DirectionStats,
    MediaStats,
    NetworkQualityEstimator,
    NetworkQualityReport,
    ParticipantStats,
)
from atrium_media.forwarding import InboundStream, LinkSample, MediaRouter, OutboundStream

KINDS = ("audio", "video")


def _rtt_seconds(outbound: Sequence[OutboundStream]) -> float | None:
    rtts = sorted(s.rtt_ms for s in outbound if s.rtt_ms is not None)
    return rtts[len(rtts) // 2] / 1000.0 if rtts else None


def _send(
    now: Sequence[InboundStream],
    before: dict[str, InboundStream],
    seconds: float,
    rtt: float | None,
) -> DirectionStats | None:
    if not now:
        return None
    received = lost = sent_bytes = 0
    jitter = 0.0
    for stream in now:
        previous = before.get(stream.track_id)
        received += stream.packets_received - (previous.packets_received if previous else 0)
        lost += stream.packets_lost - (previous.packets_lost if previous else 0)
        sent_bytes += stream.bytes_received - (previous.bytes_received if previous else 0)
        jitter = max(jitter, stream.jitter_ms / 1000.0)
    expected = max(received, 0) + max(lost, 0)
    return DirectionStats(
        fraction_lost=(max(lost, 0) / expected) if expected else None,
        jitter=jitter,
        rtt=rtt,
        bitrate=max(sent_bytes, 0) * 8 / seconds if seconds > 0 else None,
    )


def _recv(
    now: Sequence[OutboundStream],
    before: dict[str, OutboundStream],
    seconds: float,
    rtt: float | None,
) -> DirectionStats | None:
    reported = [s for s in now if s.reported]
    if not reported:
        return None
    weights: list[tuple[OutboundStream, int]] = []
    for stream in reported:
        previous = before.get(stream.track_id)
        weights.append(
            (stream, max(stream.bytes_sent - (previous.bytes_sent if previous else 0), 0))
        )
    total = sum(w for _, w in weights)
    if total:
        fraction = sum(s.fraction_lost * w for s, w in weights) / total
    else:
        fraction = max(s.fraction_lost for s in reported)
    sent_bps = total * 8 / seconds if seconds > 0 else None
    return DirectionStats(
        fraction_lost=fraction,
        jitter=max(s.jitter_ms for s in reported) / 1000.0,
        rtt=rtt,
        bitrate=None if sent_bps is None else sent_bps * (1.0 - fraction),
        expected_bitrate=sent_bps,
    )


def participant_stats(previous: LinkSample | None, current: LinkSample) -> ParticipantStats:
    seconds = current.taken_at - previous.taken_at if previous is not None else 0.0
    inbound_before = {s.track_id: s for s in previous.inbound} if previous else {}
    outbound_before = {s.track_id: s for s in previous.outbound} if previous else {}
    rtt = _rtt_seconds(current.outbound)
    kinds: dict[str, MediaStats] = {}
    for kind in KINDS:
        kinds[kind] = MediaStats(
            send=_send(
                [s for s in current.inbound if s.kind == kind], inbound_before, seconds, rtt
            ),
            recv=_recv(
                [s for s in current.outbound if s.kind == kind], outbound_before, seconds, rtt
            ),
        )
    return ParticipantStats(audio=kinds["audio"], video=kinds["video"])


class LinkQuality:
    """One participant's network quality: sample its link, judge the interval since the last
    sample, keep the smoothed report. What a room host does once a second per participant."""

    def __init__(self) -> None:
        self.estimator = NetworkQualityEstimator()
        self.last: LinkSample | None = None

    @property
    def report(self) -> NetworkQualityReport:
        return self.estimator.report

    async def observe(
        self, router: MediaRouter, participant_sid: str, now: float, *, broken: bool = False
    ) -> NetworkQualityReport:
        sample = await router.link_sample(participant_sid, now)
        stats = participant_stats(self.last, sample)
        self.last = sample
        return self.estimator.update(stats, now, broken=broken)
