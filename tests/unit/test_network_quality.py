"""Network quality levels from observed link statistics, and their MSP payloads."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from atrium_media.extensions.msp import (
    NetworkQualityLevels,
    NetworkQualityMessage,
    parse_server_message,
)
from atrium_media.extensions.network_quality import (
    PERFECT_REPORT,
    DirectionStats,
    MediaStats,
    NetworkQualityEstimator,
    ParticipantStats,
    SmoothingConfig,
    bandwidth_level,
    build_network_quality_message,
    direction_level,
    latency_level,
    loss_level,
)


def link(
    loss: float = 0.0,
    rtt: float = 0.030,
    jitter: float = 0.004,
    share: float = 1.0,
    expected: float = 600_000.0,
) -> DirectionStats:
    return DirectionStats(
        fraction_lost=loss,
        jitter=jitter,
        rtt=rtt,
        bitrate=expected * share,
        expected_bitrate=expected,
        available_bitrate=1_500_000.0,
    )


def everywhere(d: DirectionStats) -> ParticipantStats:
    audio = DirectionStats(
        fraction_lost=d.fraction_lost,
        jitter=d.jitter,
        rtt=d.rtt,
        bitrate=32_000.0,
        expected_bitrate=32_000.0,
    )
    return ParticipantStats(
        audio=MediaStats(send=audio, recv=audio), video=MediaStats(send=d, recv=d)
    )


def only_video_send(d: DirectionStats) -> ParticipantStats:
    return ParticipantStats(
        audio=MediaStats(send=link(), recv=link()), video=MediaStats(send=d, recv=link())
    )


@pytest.mark.parametrize(
    ("loss", "level"),
    [
        (0.0, 5),
        (0.01, 5),
        (0.02, 4),
        (0.03, 4),
        (0.05, 3),
        (0.10, 2),
        (0.12, 2),
        (0.2, 1),
        (0.49, 1),
        (0.5, 0),
        (1.0, 0),
    ],
)
def test_loss_mapping(loss: float, level: int) -> None:
    assert loss_level(loss) == level


@pytest.mark.parametrize(
    ("rtt", "jitter", "level"),
    [
        (0.0, 0.0, 5),
        (0.100, 0.010, 5),
        (0.150, 0.050, 4),
        (0.250, None, 4),
        (0.400, None, 3),
        (None, 0.200, 3),
        (0.600, 0.0, 2),
        (1.000, 0.0, 1),
        (5.0, 1.0, 1),
    ],
)
def test_latency_mapping(rtt: float | None, jitter: float | None, level: int) -> None:
    assert latency_level(rtt, jitter) == level


@pytest.mark.parametrize(
    ("share", "level"),
    [
        (1.2, 5),
        (0.9, 5),
        (0.75, 4),
        (0.6, 3),
        (0.4, 2),
        (0.2, 1),
        (0.05, 0),
        (0.0, 0),
    ],
)
def test_bandwidth_mapping(share: float, level: int) -> None:
    assert bandwidth_level(500_000 * share, 500_000) == level


def test_unknown_components_do_not_count() -> None:
    assert loss_level(None) is None
    assert loss_level(math.nan) is None
    assert latency_level(None, None) is None
    assert latency_level(math.inf, None) == latency_level(None, None)
    # A (nearly) silent track says nothing about bandwidth.
    assert bandwidth_level(0.0, 2_000.0) is None
    assert bandwidth_level(None, 500_000.0) is None
    assert direction_level(None) == 5
    assert direction_level(DirectionStats()) == 5
    # The worst known component sets the direction's level.
    assert direction_level(DirectionStats(fraction_lost=0.0, rtt=0.4)) == 3
    assert direction_level(DirectionStats(fraction_lost=0.08, rtt=0.01)) == 2
    assert direction_level(link(share=0.4)) == 2


def test_nothing_observed_is_level_5() -> None:
    est = NetworkQualityEstimator()
    assert est.report is PERFECT_REPORT
    assert est.level == 5
    assert est.update(ParticipantStats(), 0.0).level == 5


def test_clean_link_is_5() -> None:
    est = NetworkQualityEstimator()
    for i in range(5):
        report = est.update(everywhere(link()), float(i))
        assert report.level == 5
    assert (report.audio.send.level, report.audio.recv.level) == (5, 5)
    assert (report.video.send.level, report.video.recv.level) == (5, 5)


def test_increasing_loss_lowers_the_level_step_by_step() -> None:
    est = NetworkQualityEstimator()
    seen: list[int] = []
    t = 0.0
    for loss in (0.0, 0.02, 0.05, 0.10, 0.25, 0.60):
        for _ in range(3):  # each loss rate lasts 3 s
            report = est.update(only_video_send(link(loss=loss)), t)
            t += 1.0
        seen.append(report.level)
        # Only the degraded direction is blamed.
        assert report.video.recv.level == 5
        assert report.audio.send.level == 5
        assert report.video.send.level == report.level
    assert seen == [5, 4, 3, 2, 1, 0]


def test_a_single_bad_report_does_not_move_the_level() -> None:
    est = NetworkQualityEstimator()
    t = 0.0
    levels = []
    for loss in (0.0, 0.0, 0.30, 0.0, 0.0, 0.45, 0.0, 0.0):
        levels.append(est.update(everywhere(link(loss=loss)), t).level)
        t += 1.0
    assert levels == [5] * 8


def test_two_bad_reports_within_the_confirmation_time_do_not_move_it_either() -> None:
    est = NetworkQualityEstimator()
    assert est.update(everywhere(link()), 0.0).level == 5
    # Two bad reports 0.2 s apart (a burst), then good again.
    assert est.update(everywhere(link(loss=0.3)), 1.0).level == 5
    assert est.update(everywhere(link(loss=0.3)), 1.2).level == 5
    assert est.update(everywhere(link()), 2.0).level == 5


def test_sustained_degradation_shows_within_two_reports_using_the_best_of_them() -> None:
    est = NetworkQualityEstimator()
    est.update(everywhere(link()), 0.0)
    assert est.update(everywhere(link(loss=0.20)), 1.0).level == 5  # not yet confirmed
    # Confirmed one second later; the better of the two bad reports (0.08 -> 2) wins.
    assert est.update(everywhere(link(loss=0.08)), 2.0).level == 2


def test_recovery_is_one_level_per_second() -> None:
    est = NetworkQualityEstimator()
    t = 0.0
    for _ in range(4):
        est.update(everywhere(link(loss=0.3)), t)
        t += 1.0
    assert est.level == 1
    levels = []
    for _ in range(8):
        levels.append(est.update(everywhere(link()), t).level)
        t += 1.0
    assert levels == [2, 3, 4, 5, 5, 5, 5, 5]
    # Faster reports do not make it recover faster: one step per second of wall time.
    est2 = NetworkQualityEstimator()
    est2.update(everywhere(link(loss=0.3)), 0.0)
    assert est2.level == 1
    levels = [est2.update(everywhere(link()), 0.5 + 0.1 * i).level for i in range(25)]
    assert levels[0] == 1  # 0.5 s after the last change: not yet
    assert max(b - a for a, b in itertools.pairwise(levels)) == 1
    assert levels[-1] == 3  # at 2.9 s: steps at 1.0 and 2.0 only


def test_broken_is_zero_at_once_and_recovers() -> None:
    est = NetworkQualityEstimator()
    est.update(everywhere(link()), 0.0)
    report = est.update(everywhere(link()), 1.0, broken=True)
    assert report.level == 0
    assert report.video.recv.level == 0
    levels = [est.update(everywhere(link()), 2.0 + i).level for i in range(6)]
    assert levels == [1, 2, 3, 4, 5, 5]


def test_bandwidth_shortfall_lowers_the_level() -> None:
    est = NetworkQualityEstimator()
    for i in range(3):
        report = est.update(only_video_send(link(share=0.4)), float(i))
    assert report.level == 2
    assert report.video.send.level == 2


def test_custom_smoothing() -> None:
    est = NetworkQualityEstimator(
        SmoothingConfig(down_confirm_seconds=0.0, down_confirm_updates=1, up_step_seconds=0.0)
    )
    assert est.update(everywhere(link(loss=0.3)), 0.0).level == 1
    assert est.update(everywhere(link()), 0.0).level == 2


# MSP payloads ---------------------------------------------------------------------------------


def _reports() -> tuple[NetworkQualityEstimator, NetworkQualityEstimator]:
    local = NetworkQualityEstimator()
    remote = NetworkQualityEstimator()
    for i in range(3):
        local.update(only_video_send(link(loss=0.05)), float(i))
        remote.update(everywhere(link()), float(i))
    assert (local.level, remote.level) == (3, 5)
    return local, remote


def test_verbosity_1_is_the_bare_level() -> None:
    local, remote = _reports()
    msg = build_network_quality_message(
        local.report, {"PB": remote.report}, local_verbosity=1, remote_verbosity=0
    )
    assert json.loads(msg.to_json()) == {"type": "network_quality", "local": 3}
    msg = build_network_quality_message(
        local.report, {"PB": remote.report}, local_verbosity=1, remote_verbosity=1
    )
    assert json.loads(msg.to_json()) == {
        "type": "network_quality",
        "local": 3,
        "remotes": [{"sid": "PB", "level": 5}],
    }


def test_verbosity_2_adds_the_audio_video_breakdown() -> None:
    local, remote = _reports()
    msg = build_network_quality_message(
        local.report, [("PB", remote.report)], local_verbosity=2, remote_verbosity=2
    )
    wire = json.loads(msg.to_json())
    assert wire["local"] == {
        "level": 3,
        "audio": {"send": 5, "recv": 5},
        "video": {"send": 3, "recv": 5},
    }
    assert wire["remotes"] == [
        {
            "sid": "PB",
            "level": 5,
            "audio": {"send": 5, "recv": 5},
            "video": {"send": 5, "recv": 5},
        }
    ]
    # The level twilio-video.js would fall back to (min of the four) equals the level we send.
    levels = wire["local"]
    assert levels["level"] == min(
        levels["audio"]["send"],
        levels["audio"]["recv"],
        levels["video"]["send"],
        levels["video"]["recv"],
    )


def test_verbosity_3_adds_the_stats() -> None:
    local, remote = _reports()
    msg = build_network_quality_message(
        local.report, {"PB": remote.report}, local_verbosity=3, remote_verbosity=3
    )
    wire = json.loads(msg.to_json())
    video_send = wire["local"]["video"]["sendStats"]
    assert video_send == {
        "bandwidth": {"actual": 600_000.0, "available": 1_500_000.0, "level": 5},
        "fractionLost": {"fractionLost": 0.05, "level": 3},
        "latency": {"jitter": 0.004, "rtt": 0.030, "level": 5},
    }
    # Every direction carries stats objects, even the unused-but-reported ones.
    for kind in ("audio", "video"):
        for key in ("sendStats", "recvStats"):
            assert isinstance(wire["local"][kind][key], dict)
            assert isinstance(wire["remotes"][0][kind][key], dict)
    assert parse_server_message(msg.to_json()) == msg


def test_level_zero_has_no_breakdown_and_verbosity_is_clamped() -> None:
    est = NetworkQualityEstimator()
    est.update(everywhere(link()), 0.0, broken=True)
    msg = build_network_quality_message(
        est.report, {"PB": est.report}, local_verbosity=3, remote_verbosity=9
    )
    assert json.loads(msg.to_json()) == {
        "type": "network_quality",
        "local": {"level": 0},
        "remotes": [{"sid": "PB", "level": 0}],
    }
    msg = build_network_quality_message(PERFECT_REPORT, {}, local_verbosity=0, remote_verbosity=-1)
    assert msg == NetworkQualityMessage(local=5)


def test_unused_media_reports_5_so_the_level_is_the_minimum() -> None:
    est = NetworkQualityEstimator()
    stats = ParticipantStats(audio=MediaStats(send=link(loss=0.10)))  # audio-only publisher
    for i in range(3):
        est.update(stats, float(i))
    payload = est.report.local_payload(2)
    assert isinstance(payload, NetworkQualityLevels)
    wire = json.loads(payload.to_json())
    assert wire == {"level": 2, "audio": {"send": 2, "recv": 5}, "video": {"send": 5, "recv": 5}}
