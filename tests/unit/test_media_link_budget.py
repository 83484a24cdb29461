"""The downlink budget of one subscriber (issue 13): cut on congestion, hold, probe a layer up,
back off when the probe does not fit; and how the worker's legs feed it (REMB from Chrome and
from aiortc, receiver reports, NACKs)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket

from atrium_media import aiortc_compat as compat
from atrium_media.extensions.allocation import (
    STAY_DISCOUNT,
    LayerOption,
    VideoBandwidthProfile,
    VideoSubscription,
    allocate,
)
from atrium_media.extensions.link_budget import (
    CUT_FACTOR,
    CUT_GRACE_SECONDS,
    FURTHER_CUT_LIMIT,
    MAX_HOLD_SECONDS,
    MIN_BUDGET,
    MIN_HOLD_SECONDS,
    PROBE_FACTOR,
    PROBE_FLOOR,
    PROBE_SECONDS,
    LinkBudget,
    LinkFeedback,
)
from atrium_media.forwarding import ForwardingLeg, ReceiverEstimate, ReportedLoss
from atrium_media.forwarding.track import RETRANSMIT_SHARE
from atrium_media.signaling.bandwidth import AUDIO_ALLOWANCE, Downlink

CLEAN = 0.0
CONGESTED = 0.3


def test_no_budget_until_the_link_shows_congestion() -> None:
    link = LinkBudget()
    for second in range(30):
        assert link.update(second, LinkFeedback(2_000_000, CLEAN, 500_000)) is None
    assert link.state == "unconstrained"


def test_loss_cuts_the_budget_to_what_got_through() -> None:
    link = LinkBudget()
    budget = link.update(0.0, LinkFeedback(1_000_000, 0.4, None))
    assert budget == pytest.approx(1_000_000 * 0.6 * CUT_FACTOR)
    assert link.state == "holding"


def test_no_second_cut_while_the_first_has_not_taken_effect() -> None:
    link = LinkBudget()
    first = link.update(0.0, LinkFeedback(1_000_000, 0.5, None))
    assert first is not None
    # Past the grace, still sending the old layer (its switch waits for a key frame): no cut.
    late = CUT_GRACE_SECONDS + 1
    assert link.update(late, LinkFeedback(first * 2, 0.5, None)) == first
    # Then a further cut, of at most half the budget.
    assert link.update(late + 0.5, LinkFeedback(first, 0.8, None)) == pytest.approx(
        first * FURTHER_CUT_LIMIT
    )
    assert link.update(late + 4, LinkFeedback(first * 0.5, 0.1, None)) == pytest.approx(
        first * 0.5 * 0.9 * CUT_FACTOR
    )


def test_a_sharp_drop_of_the_estimate_is_congestion_without_loss() -> None:
    link = LinkBudget()
    assert link.update(0.0, LinkFeedback(700_000, CLEAN, 900_000)) is None
    budget = link.update(0.5, LinkFeedback(700_000, CLEAN, 500_000))
    assert budget == pytest.approx(500_000 * CUT_FACTOR)


def test_a_cut_never_goes_below_the_floor() -> None:
    assert LinkBudget().update(0.0, LinkFeedback(40_000, 0.9, None)) == MIN_BUDGET


def test_loss_reported_just_after_a_cut_does_not_cut_again() -> None:
    link = LinkBudget()
    first = link.update(0.0, LinkFeedback(1_000_000, 0.5, None))
    # The smaller layer starts at its next key frame; the queue drains meanwhile.
    assert link.update(CUT_GRACE_SECONDS / 2, LinkFeedback(900_000, 0.5, None)) == first
    later = link.update(CUT_GRACE_SECONDS + 0.1, LinkFeedback(300_000, 0.5, None))
    assert first is not None and later is not None and later < first


def test_after_the_hold_a_probe_lifts_the_budget_about_one_layer() -> None:
    link = LinkBudget()
    held = link.update(0.0, LinkFeedback(1_000_000, 0.5, None))
    assert link.update(MIN_HOLD_SECONDS - 0.1, LinkFeedback(150_000, CLEAN, None)) == held
    probe = link.update(MIN_HOLD_SECONDS, LinkFeedback(150_000, CLEAN, None))
    assert held is not None
    assert probe == pytest.approx(max(held, 150_000) * PROBE_FACTOR + PROBE_FLOOR)
    assert link.state == "probing"


def test_a_probe_passes_once_it_took_effect_without_loss_and_the_next_climbs_from_it() -> None:
    link = LinkBudget()
    held = link.update(0.0, LinkFeedback(1_000_000, 0.5, None))
    probe = link.update(MIN_HOLD_SECONDS, LinkFeedback(150_000, CLEAN, None))
    assert held is not None and probe is not None
    # The larger layer starts at its key frame, a while into the probe: the probe runs on.
    upgraded_at = MIN_HOLD_SECONDS + 3.0
    assert link.update(MIN_HOLD_SECONDS + PROBE_SECONDS, LinkFeedback(150_000, CLEAN, None))
    assert link.update(upgraded_at + 1, LinkFeedback(held * 1.5, CLEAN, None)) == probe
    assert link.state == "probing"
    passed_at = upgraded_at + 1 + PROBE_SECONDS
    assert link.update(passed_at, LinkFeedback(held * 1.5, CLEAN, None)) == probe
    assert link.state == "holding"
    # The hold after a passed probe is the shortest again.
    next_probe = link.update(passed_at + MIN_HOLD_SECONDS, LinkFeedback(held * 1.5, CLEAN, None))
    assert next_probe == pytest.approx(probe * PROBE_FACTOR + PROBE_FLOOR)


def test_a_probe_that_takes_no_effect_passes_after_twice_as_long() -> None:
    """Nothing larger fits its budget yet (the next probe climbs from it), or nothing larger is
    wanted (the probes change nothing)."""
    link = LinkBudget()
    link.update(0.0, LinkFeedback(1_000_000, 0.5, None))
    probe = link.update(MIN_HOLD_SECONDS, LinkFeedback(150_000, CLEAN, None))
    link.update(MIN_HOLD_SECONDS + 2 * PROBE_SECONDS - 0.1, LinkFeedback(150_000, CLEAN, None))
    assert link.state == "probing"
    assert link.update(MIN_HOLD_SECONDS + 2 * PROBE_SECONDS, LinkFeedback(150_000, CLEAN, None))
    assert link.state == "holding" and link.budget == probe


def test_a_probe_that_loses_packets_restores_the_budget_and_waits_twice_as_long() -> None:
    link = LinkBudget()
    held = link.update(0.0, LinkFeedback(1_000_000, 0.5, None))
    link.update(MIN_HOLD_SECONDS, LinkFeedback(150_000, CLEAN, None))
    failed_at = MIN_HOLD_SECONDS + 1.0
    assert link.update(failed_at, LinkFeedback(700_000, CONGESTED, None)) == held
    assert link.state == "holding"
    waited = failed_at + 2 * MIN_HOLD_SECONDS
    assert link.update(waited - 0.1, LinkFeedback(150_000, CLEAN, None)) == held
    assert link.update(waited, LinkFeedback(150_000, CLEAN, None)) != held


def test_the_hold_stops_growing_at_its_maximum() -> None:
    link = LinkBudget()
    now = 0.0
    link.update(now, LinkFeedback(1_000_000, 0.5, None))
    hold = MIN_HOLD_SECONDS
    for _ in range(8):
        now += hold
        assert link.update(now, LinkFeedback(150_000, CLEAN, None)) is not None
        assert link.state == "probing"
        now += 1.0
        link.update(now, LinkFeedback(700_000, CONGESTED, None))
        hold = min(hold * 2, MAX_HOLD_SECONDS)
    assert hold == MAX_HOLD_SECONDS
    assert link.update(now + MAX_HOLD_SECONDS - 0.1, LinkFeedback(150_000, CLEAN, None))
    assert link.state == "holding"


def test_nacks_count_each_lost_packet_once() -> None:
    leg = object.__new__(ForwardingLeg)
    leg.packets_nacked = 0
    leg._nacked_up_to = None
    leg._on_nack([65534, 65535])
    leg._on_nack([65535, 0, 3])  # asked again for 65535; sequence numbers wrap
    leg._on_nack([3])
    assert leg.packets_nacked == 4


def test_resends_are_spaced_per_packet_and_capped_by_what_was_sent() -> None:
    history: dict[int, RtpPacket] = {}  # aiortc's sender history: a dict, slots filled as sent
    for seq in range(100):
        history[seq % RTP_HISTORY_SIZE] = RtpPacket(sequence_number=seq, payload=b"x" * 100)
    leg = object.__new__(ForwardingLeg)
    leg._sender_state = {compat.SENDER_RTP_HISTORY: history}
    leg._retransmitted = [(-1, float("-inf"))] * RTP_HISTORY_SIZE
    leg.packets_retransmitted = leg.bytes_retransmitted = 0
    leg._retransmit_credit = 10 * RETRANSMIT_SHARE  # 10 packets sent: 3 resends
    assert leg._may_retransmit(50)
    assert not leg._may_retransmit(50)  # asked again within a round trip
    assert not leg._may_retransmit(500)  # not in the history (another packet in its slot)
    assert not leg._may_retransmit(120)  # a slot never filled
    assert leg._may_retransmit(51) and leg._may_retransmit(52)
    assert not leg._may_retransmit(53)  # the credit is spent
    assert (leg.packets_retransmitted, leg.bytes_retransmitted) == (3, 300)


@dataclass
class FakeLeg:
    bytes_sent: int = 0
    bytes_retransmitted: int = 0
    packets_sent: int = 0
    packets_nacked: int = 0
    receiver_estimate: ReceiverEstimate | None = None
    reported_loss: ReportedLoss | None = None
    forwarded_layer: int | None = None
    enabled: bool = True


def test_downlink_rates_come_from_the_bytes_sent_between_ticks() -> None:
    leg = FakeLeg()
    downlink = Downlink()
    assert downlink.update(0.0, [leg], 0) is None
    leg.bytes_sent, leg.packets_sent, leg.packets_nacked = 125_000, 100, 40  # 1 Mbit/s, 40 %
    budget = downlink.update(1.0, [leg], 0)
    assert budget == pytest.approx(1_000_000 * 0.6 * CUT_FACTOR)


def test_a_receiver_report_counts_once() -> None:
    leg = FakeLeg(reported_loss=ReportedLoss(0.5, received_at=0.5))
    downlink = Downlink()
    downlink.update(0.0, [leg], 0)
    leg.bytes_sent, leg.packets_sent = 125_000, 100
    cut = downlink.update(1.0, [leg], 0)
    assert cut is not None
    # Past the grace, with the same (old) report, no new cut.
    leg.bytes_sent, leg.packets_sent = 150_000, 120
    assert downlink.update(1.0 + CUT_GRACE_SECONDS + 0.5, [leg], 0) == cut


def test_chromes_remb_is_the_whole_transport_and_aiortcs_is_per_stream() -> None:
    now = 10.0
    chrome = [
        FakeLeg(receiver_estimate=ReceiverEstimate(800_000, 3, now)),
        FakeLeg(receiver_estimate=ReceiverEstimate(800_000, 3, now)),
    ]
    aiortc = [
        FakeLeg(receiver_estimate=ReceiverEstimate(300_000, 1, now)),
        FakeLeg(receiver_estimate=ReceiverEstimate(500_000, 1, now)),
    ]
    assert Downlink._estimate(now, chrome, 1) == 800_000 - AUDIO_ALLOWANCE
    assert Downlink._estimate(now, aiortc, 0) == 800_000
    stale = [FakeLeg(receiver_estimate=ReceiverEstimate(300_000, 1, now - 10))]
    assert Downlink._estimate(now, stale, 0) is None


def test_the_forwarded_layer_is_kept_until_the_budget_falls_well_below_it() -> None:
    def layers(forwarded: int | None) -> list[LayerOption]:
        return [
            LayerOption(0, 320, 180, 150_000, forwarded=forwarded == 0),
            LayerOption(1, 640, 360, 450_000, forwarded=forwarded == 1),
        ]

    profile = VideoBandwidthProfile(track_switch_off_mode="detected")

    def layer(budget: float, forwarded: int | None) -> int | None:
        subscription = VideoSubscription("MT1", layers(forwarded))
        return allocate(profile, [subscription], bandwidth_estimate=budget).tracks[0].layer

    assert layer(440_000, None) == 0  # not whole: not taken
    assert layer(440_000, 1) == 1  # but kept while receiving it
    assert layer(450_000 * STAY_DISCOUNT - 1, 1) == 0
