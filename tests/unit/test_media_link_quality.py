"""From two link samples to network quality inputs, and from those to levels."""

from __future__ import annotations

import pytest

from atrium_media.extensions import NetworkQualityEstimator
from atrium_media.forwarding import InboundStream, LinkSample, OutboundStream
from atrium_media.signaling.link_quality import participant_stats


def inbound(received: int, lost: int, sent_bytes: int, jitter_ms: float = 2.0) -> InboundStream:
    return InboundStream("MTv", "video", received, lost, jitter_ms, sent_bytes)


def outbound(sent_bytes: int, fraction: float, rtt_ms: float | None = 20.0) -> OutboundStream:
    return OutboundStream(
        "MTa",
        "audio",
        100,
        sent_bytes,
        True,
        packets_lost=0,
        fraction_lost=fraction,
        jitter_ms=4.0,
        rtt_ms=rtt_ms,
    )


def test_send_loss_and_bitrate_come_from_the_interval_not_the_totals() -> None:
    before = LinkSample("PA1", 10.0, inbound=[inbound(1000, 100, 100_000)])
    after = LinkSample(
        "PA1",
        11.0,
        inbound=[inbound(1090, 110, 225_000, jitter_ms=8.0)],
        outbound=[outbound(0, 0.0, rtt_ms=40.0)],
    )
    stats = participant_stats(before, after)
    send = stats.video.send
    assert send is not None
    assert send.fraction_lost == pytest.approx(10 / 100)  # 10 of the 100 expected this second
    assert send.bitrate == pytest.approx(125_000 * 8)
    assert send.jitter == pytest.approx(0.008)
    assert send.rtt == pytest.approx(0.040)
    assert stats.audio.send is None  # publishes no audio: not judged
    assert stats.video.recv is None  # receives no video


def test_recv_weights_each_leg_by_what_it_carried() -> None:
    legs = [
        OutboundStream("MT1", "video", 10, 1_000, True, fraction_lost=0.0, jitter_ms=1.0),
        OutboundStream("MT2", "video", 10, 3_000, True, fraction_lost=0.2, jitter_ms=9.0),
    ]
    stats = participant_stats(LinkSample("PA2", 0.0), LinkSample("PA2", 1.0, outbound=legs))
    recv = stats.video.recv
    assert recv is not None
    assert recv.fraction_lost == pytest.approx(0.15)  # (0 * 1000 + 0.2 * 3000) / 4000
    assert recv.expected_bitrate == pytest.approx(32_000)
    assert recv.bitrate == pytest.approx(32_000 * 0.85)
    assert recv.jitter == pytest.approx(0.009)


def test_legs_without_a_receiver_report_are_not_judged() -> None:
    silent = OutboundStream("MT1", "video", 10, 1_000, False)
    stats = participant_stats(None, LinkSample("PA3", 5.0, outbound=[silent]))
    assert stats.video.recv is None


def test_a_lossy_uplink_lowers_the_level_and_recovery_raises_it() -> None:
    estimator = NetworkQualityEstimator()
    received = lost = sent = 0
    previous: LinkSample | None = None
    levels: list[int] = []
    for second in range(16):
        loss = 30 if 3 <= second < 8 else 0  # 30 of 100 packets lost for five seconds
        received, lost, sent = received + 100 - loss, lost + loss, sent + 120_000
        sample = LinkSample("PA4", float(second), inbound=[inbound(received, lost, sent)])
        estimator.update(participant_stats(previous, sample), float(second))
        previous = sample
        levels.append(estimator.level)
    assert levels[2] == 5
    assert min(levels[3:9]) <= 2
    assert levels[-1] == 5
