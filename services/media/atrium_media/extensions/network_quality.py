"""Network quality levels (0..5) per participant, from what the media worker observes.

Pure and I/O-free: the worker feeds :class:`ParticipantStats` (one :class:`DirectionStats` per
media kind and direction) into a per-participant :class:`NetworkQualityEstimator` with the
current time, and turns the resulting :class:`NetworkQualityReport`\\ s into the MSP answer with
:func:`build_network_quality_message`.

Directions are named from the participant's side, as twilio-video.js names them:

* **send** -- what the participant publishes, as the worker receives it: loss and jitter the
  worker measures itself on the incoming RTP (what its own receiver reports would say), the
  round-trip time to the participant, the bit rate arriving versus the bit rate the participant
  put on the wire (its RTCP sender-report octet counts) or otherwise demonstrated.
* **recv** -- what the worker forwards to the participant, as the participant's RTCP receiver
  reports describe it: fraction lost, interarrival jitter (converted to seconds with the codec
  clock rate) and the RTT from LSR/DLSR; the bit rate the participant acknowledges receiving
  versus the bit rate the worker sent (or wanted to send) to it.

Mapping (a component whose inputs are missing is *unknown* and does not count):

=====  ================  ==========================  ========================
level  fraction lost     latency = rtt + 2 x jitter  bit rate / expected
=====  ================  ==========================  ========================
5      <= 1 %            <= 200 ms                   >= 0.85
4      <= 3 %            <= 300 ms                   >= 0.70
3      <= 6 %            <= 450 ms                   >= 0.50
2      <= 12 %           <= 700 ms                   >= 0.30
1      < 50 %            > 700 ms                    >= 0.10
0      >= 50 %           (latency alone never 0)     < 0.10
=====  ================  ==========================  ========================

The bit-rate ratio is only judged when at least :data:`MIN_EXPECTED_BPS` was expected (a muted
or DTX-silent track says nothing about the network). A direction's level is the lowest of its
known components, or 5 when none is known; so is a media kind that is not used in a direction
(Twilio documents that a participant who neither publishes nor subscribes is at 5). A media
kind's levels are its send and recv levels, and the participant's level is the lowest of the
four. A participant reported ``broken`` (reconnecting, ICE lost) is at 0 at once.

Smoothing, per direction: a lower level is taken only after it has been observed in at least
two updates spanning :attr:`SmoothingConfig.down_confirm_seconds` (1 s) with no good update in
between, and then the *best* of those bad observations is taken (so one bad receiver report
never moves the level, and a real degradation shows within about 2 s of its start). A higher
level is approached one step per :attr:`SmoothingConfig.up_step_seconds` (1 s), so full
recovery from 1 to 5 takes about 4 s. The first observation is taken as it is.

Feed each new observation once (e.g. on a 1 s stats tick, with loss computed from the
cumulative counters over the last interval, or on each new receiver report); re-feeding the same
stale report every 100 ms would make a single bad report look persistent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from atrium_media.extensions.msp import (
    BandwidthStats,
    FractionLostStats,
    LatencyStats,
    MediaLevels,
    NetworkQualityLevels,
    NetworkQualityMessage,
    RemoteNetworkQuality,
    SendOrRecvStats,
)

__all__ = [
    "BANDWIDTH_RATIO_THRESHOLDS",
    "LATENCY_THRESHOLDS_SECONDS",
    "LOSS_THRESHOLDS",
    "MAX_LEVEL",
    "MIN_EXPECTED_BPS",
    "PERFECT_REPORT",
    "DirectionReport",
    "DirectionStats",
    "MediaReport",
    "MediaStats",
    "NetworkQualityEstimator",
    "NetworkQualityReport",
    "ParticipantStats",
    "SmoothingConfig",
    "bandwidth_level",
    "build_network_quality_message",
    "direction_level",
    "latency_level",
    "loss_level",
]

MAX_LEVEL = 5

#: Upper bounds of fraction lost for levels 5, 4, 3, 2, 1; above the last one: level 0.
LOSS_THRESHOLDS = (0.01, 0.03, 0.06, 0.12, 0.50)
#: Upper bounds of rtt + 2 x jitter (seconds) for levels 5, 4, 3, 2; above: level 1.
LATENCY_THRESHOLDS_SECONDS = (0.200, 0.300, 0.450, 0.700)
#: Lower bounds of (bit rate / expected bit rate) for levels 5, 4, 3, 2, 1; below: level 0.
BANDWIDTH_RATIO_THRESHOLDS = (0.85, 0.70, 0.50, 0.30, 0.10)
#: Below this expected bit rate (bits/s) the bandwidth component is unknown.
MIN_EXPECTED_BPS = 8_000.0


@dataclass(frozen=True, slots=True)
class DirectionStats:
    """One media kind in one direction, over the last observation interval.

    Every field is optional; ``None`` means "not observed" (that component is then unknown).

    :ivar fraction_lost: share of the packets sent that were lost, 0..1.
    :ivar jitter: interarrival jitter, seconds.
    :ivar rtt: round-trip time between the worker and the participant, seconds.
    :ivar bitrate: bits per second that actually arrived at the far end.
    :ivar expected_bitrate: bits per second that should have arrived (what was sent or wanted).
    :ivar available_bitrate: estimated available bandwidth, bits per second (REMB/TWCC, or the
        client's ``ice.availableSend``); only reported at verbosity 3, not used for the level.
    """

    fraction_lost: float | None = None
    jitter: float | None = None
    rtt: float | None = None
    bitrate: float | None = None
    expected_bitrate: float | None = None
    available_bitrate: float | None = None


@dataclass(frozen=True, slots=True)
class MediaStats:
    """One media kind: what the participant sends and what it receives (``None``: not used)."""

    send: DirectionStats | None = None
    recv: DirectionStats | None = None


@dataclass(frozen=True, slots=True)
class ParticipantStats:
    """Everything observed about one participant for one update."""

    audio: MediaStats = field(default_factory=MediaStats)
    video: MediaStats = field(default_factory=MediaStats)


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def loss_level(fraction_lost: float | None) -> int | None:
    """Level for a fraction of packets lost (0..1); ``None`` when unknown."""
    loss = _finite(fraction_lost)
    if loss is None:
        return None
    *graded, broken_at = LOSS_THRESHOLDS
    for level, bound in zip(range(MAX_LEVEL, 1, -1), graded, strict=True):
        if loss <= bound:
            return level
    return 1 if loss < broken_at else 0


def latency_level(rtt: float | None, jitter: float | None) -> int | None:
    """Level for latency ``rtt + 2 * jitter`` (seconds; a missing part counts as 0)."""
    rtt_s = _finite(rtt)
    jitter_s = _finite(jitter)
    if rtt_s is None and jitter_s is None:
        return None
    latency = max(rtt_s or 0.0, 0.0) + 2.0 * max(jitter_s or 0.0, 0.0)
    for level, bound in zip(range(MAX_LEVEL, 1, -1), LATENCY_THRESHOLDS_SECONDS, strict=True):
        if latency <= bound:
            return level
    return 1


def bandwidth_level(bitrate: float | None, expected_bitrate: float | None) -> int | None:
    """Level for the bit rate that arrived versus the bit rate expected; ``None`` if unknown."""
    actual = _finite(bitrate)
    expected = _finite(expected_bitrate)
    if actual is None or expected is None or expected < MIN_EXPECTED_BPS:
        return None
    ratio = max(actual, 0.0) / expected
    for level, bound in zip(range(MAX_LEVEL, 0, -1), BANDWIDTH_RATIO_THRESHOLDS, strict=True):
        if ratio >= bound:
            return level
    return 0


def direction_level(stats: DirectionStats | None) -> int:
    """The raw (unsmoothed) level of one direction: its worst known component, else 5."""
    if stats is None:
        return MAX_LEVEL
    known = [
        level
        for level in (
            loss_level(stats.fraction_lost),
            latency_level(stats.rtt, stats.jitter),
            bandwidth_level(stats.bitrate, stats.expected_bitrate),
        )
        if level is not None
    ]
    return min(known, default=MAX_LEVEL)


@dataclass(frozen=True, slots=True)
class SmoothingConfig:
    """How fast levels may move (see the module docstring)."""

    down_confirm_seconds: float = 1.0
    down_confirm_updates: int = 2
    up_step_seconds: float = 1.0


class _Smoother:
    """Hysteresis on one direction's level."""

    __slots__ = ("_bad_best", "_bad_count", "_bad_since", "_changed_at", "_config", "level")

    def __init__(self, config: SmoothingConfig) -> None:
        self._config = config
        self.level: int | None = None
        self._changed_at = 0.0
        self._bad_since: float | None = None
        self._bad_best = 0
        self._bad_count = 0

    def feed(self, raw: int, now: float) -> int:
        level = self.level
        if level is None:
            self.level = raw
            self._changed_at = now
            self._bad_since = None
            return raw
        if raw < level:
            if self._bad_since is None:
                self._bad_since = now
                self._bad_best = raw
                self._bad_count = 1
            else:
                self._bad_best = max(self._bad_best, raw)
                self._bad_count += 1
            if (
                self._bad_count >= self._config.down_confirm_updates
                and now - self._bad_since >= self._config.down_confirm_seconds
            ):
                level = self.level = self._bad_best
                self._changed_at = now
                self._bad_since = None
            return level
        self._bad_since = None
        if raw > level and now - self._changed_at >= self._config.up_step_seconds:
            level = self.level = level + 1
            self._changed_at = now
        return level

    def force(self, level: int, now: float) -> None:
        self.level = level
        self._changed_at = now
        self._bad_since = None


@dataclass(frozen=True, slots=True)
class DirectionReport:
    """One direction's smoothed level and, for verbosity 3, its latest inputs."""

    level: int
    stats: DirectionStats | None = None

    def to_stats(self) -> SendOrRecvStats:
        """The verbosity-3 ``sendStats`` / ``recvStats`` object (component levels are raw)."""
        s = self.stats or DirectionStats()
        available = s.available_bitrate if s.available_bitrate is not None else s.expected_bitrate
        return SendOrRecvStats(
            bandwidth=BandwidthStats(
                actual=_finite(s.bitrate),
                available=_finite(available),
                level=bandwidth_level(s.bitrate, s.expected_bitrate),
            ),
            fractionLost=FractionLostStats(
                fractionLost=_finite(s.fraction_lost), level=loss_level(s.fraction_lost)
            ),
            latency=LatencyStats(
                jitter=_finite(s.jitter), rtt=_finite(s.rtt), level=latency_level(s.rtt, s.jitter)
            ),
        )


@dataclass(frozen=True, slots=True)
class MediaReport:
    """One media kind's send and recv reports."""

    send: DirectionReport
    recv: DirectionReport

    def to_levels(self, verbosity: int) -> MediaLevels:
        detailed = verbosity >= 3
        return MediaLevels(
            send=self.send.level,
            recv=self.recv.level,
            sendStats=self.send.to_stats() if detailed else None,
            recvStats=self.recv.to_stats() if detailed else None,
        )


_PERFECT = DirectionReport(MAX_LEVEL)


@dataclass(frozen=True, slots=True)
class NetworkQualityReport:
    """A participant's current network quality."""

    level: int
    audio: MediaReport = field(default_factory=lambda: MediaReport(_PERFECT, _PERFECT))
    video: MediaReport = field(default_factory=lambda: MediaReport(_PERFECT, _PERFECT))

    def local_payload(self, verbosity: int) -> int | NetworkQualityLevels:
        """The ``local`` field for a client that asked for ``reportLevel=verbosity``.

        Verbosity 1 (or anything below 2): the bare level. 2: the level plus audio/video
        send/recv levels. 3: also each direction's stats. Level 0 carries no breakdown.
        """
        if verbosity < 2:
            return self.level
        return self._levels(verbosity)

    def remote_payload(self, sid: str, verbosity: int) -> RemoteNetworkQuality:
        """One ``remotes`` entry for a client that asked for ``remoteReportLevel=verbosity``."""
        if verbosity < 2 or self.level == 0:
            return RemoteNetworkQuality(sid=sid, level=self.level)
        return RemoteNetworkQuality(
            sid=sid,
            level=self.level,
            audio=self.audio.to_levels(verbosity),
            video=self.video.to_levels(verbosity),
        )

    def _levels(self, verbosity: int) -> NetworkQualityLevels:
        if self.level == 0:
            return NetworkQualityLevels(level=0)
        return NetworkQualityLevels(
            level=self.level,
            audio=self.audio.to_levels(verbosity),
            video=self.video.to_levels(verbosity),
        )


#: The report of a participant nothing is known about yet (Twilio: an idle network is at 5).
PERFECT_REPORT = NetworkQualityReport(MAX_LEVEL)


class NetworkQualityEstimator:
    """Smoothed network quality of one participant.

    ``update(stats, now)`` once per observation interval; ``report`` at any time (before the
    first update it is :data:`PERFECT_REPORT`). ``now`` is any monotonic clock in seconds.
    """

    _KEYS = ("audio_send", "audio_recv", "video_send", "video_recv")

    def __init__(self, smoothing: SmoothingConfig | None = None) -> None:
        config = smoothing or SmoothingConfig()
        self._smoothers = {key: _Smoother(config) for key in self._KEYS}
        self._report = PERFECT_REPORT

    @property
    def report(self) -> NetworkQualityReport:
        return self._report

    @property
    def level(self) -> int:
        return self._report.level

    def update(
        self, stats: ParticipantStats, now: float, *, broken: bool = False
    ) -> NetworkQualityReport:
        """Fold in one observation and return the new report.

        ``broken=True`` (participant reconnecting, ICE disconnected, no packets at all) sets
        every level to 0 at once; recovery afterwards follows the normal upward rate.
        """
        inputs = {
            "audio_send": stats.audio.send,
            "audio_recv": stats.audio.recv,
            "video_send": stats.video.send,
            "video_recv": stats.video.recv,
        }
        reports: dict[str, DirectionReport] = {}
        for key, direction in inputs.items():
            smoother = self._smoothers[key]
            if broken:
                smoother.force(0, now)
                level = 0
            else:
                level = smoother.feed(direction_level(direction), now)
            reports[key] = DirectionReport(level, direction)
        audio = MediaReport(reports["audio_send"], reports["audio_recv"])
        video = MediaReport(reports["video_send"], reports["video_recv"])
        overall = min(r.level for r in reports.values())
        self._report = NetworkQualityReport(overall, audio, video)
        return self._report


def build_network_quality_message(
    local: NetworkQualityReport,
    remotes: Mapping[str, NetworkQualityReport] | Iterable[tuple[str, NetworkQualityReport]],
    *,
    local_verbosity: int,
    remote_verbosity: int,
) -> NetworkQualityMessage:
    """The answer to one ``network_quality`` request.

    ``local_verbosity`` / ``remote_verbosity`` are the request's ``reportLevel`` /
    ``remoteReportLevel``. Local verbosity is at least 1 (twilio-video.js never asks for less);
    with remote verbosity 0 the ``remotes`` field is left out, so the client keeps no remote
    levels. ``remotes`` should hold every other participant in the room (the client replaces
    its whole remote map with each answer), and never the local participant itself.
    """
    local_v = min(max(local_verbosity, 1), 3)
    remote_v = min(max(remote_verbosity, 0), 3)
    items = remotes.items() if isinstance(remotes, Mapping) else remotes
    return NetworkQualityMessage(
        local=local.local_payload(local_v),
        remotes=[report.remote_payload(sid, remote_v) for sid, report in items]
        if remote_v >= 1
        else None,
    )
