"""Network quality: the verbosity a client asks for, and the statistics the server reports.

A participant's network quality level is a number from 0 (network broken) to 5 (excellent),
computed by the server from what it observes of the participant's connection. How much detail
comes with it is the *verbosity* the client asks for, as twilio-video.js's
``NetworkQualityConfiguration``: ``local`` 1..3 for this client's own level, ``remote`` 0..3 for
the other participants' (0: none).

===========  ===========================================================================
verbosity    what is reported
===========  ===========================================================================
0 (none)     nothing (``remote`` only)
1 (minimal)  the level only (``network_quality_stats`` stays ``None``)
2 (moderate) the level, plus send and receive levels for audio and video
3 (detailed) as 2, plus the bandwidth, fraction lost and latency behind each of those levels
===========  ===========================================================================

The statistics classes mirror twilio-video.js's ``NetworkQualityStats`` family, in snake case;
any figure the server left out is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# twilio-video.js's DEFAULT_NQ_LEVEL_LOCAL, DEFAULT_NQ_LEVEL_REMOTE and MAX_NQ_LEVEL.
DEFAULT_LOCAL_VERBOSITY = 1
DEFAULT_REMOTE_VERBOSITY = 0
MAX_VERBOSITY = 3


def network_quality_verbosity(option: bool | Mapping[str, Any]) -> tuple[int, int] | None:
    """``(local, remote)`` verbosity for ``connect(network_quality=...)``; None when it is off.

    ``True`` is ``{"local": 1, "remote": 0}``, as twilio-video.js's ``networkQuality: true``. A
    mapping may give ``local`` (1..3) and ``remote`` (0..3); a missing or out-of-range value takes
    its default (1 and 0), as twilio-video.js does.
    """
    if option is False or option is None:
        return None
    if option is True:
        return DEFAULT_LOCAL_VERBOSITY, DEFAULT_REMOTE_VERBOSITY
    if not isinstance(option, Mapping):
        raise TypeError("network_quality must be a bool or a mapping with 'local' / 'remote'")

    def pick(key: str, minimum: int) -> int:
        value = option.get(key)
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and minimum <= value <= MAX_VERBOSITY
        ):
            return value
        return minimum

    return pick("local", DEFAULT_LOCAL_VERBOSITY), pick("remote", DEFAULT_REMOTE_VERBOSITY)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _level(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _object(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class NetworkQualityBandwidthStats:
    """Bit rate actually used and the estimated available one (bits per second), and the level
    they earned."""

    actual: float | None = None
    available: float | None = None
    level: int | None = None


@dataclass(frozen=True)
class NetworkQualityFractionLostStats:
    """The share of packets lost (0..1), and the level it earned."""

    fraction_lost: float | None = None
    level: int | None = None


@dataclass(frozen=True)
class NetworkQualityLatencyStats:
    """Jitter and round-trip time (seconds), and the level they earned."""

    jitter: float | None = None
    rtt: float | None = None
    level: int | None = None


@dataclass(frozen=True)
class NetworkQualitySendOrRecvStats:
    """What one direction's level is based on (verbosity 3 only)."""

    bandwidth: NetworkQualityBandwidthStats | None = None
    fraction_lost: NetworkQualityFractionLostStats | None = None
    latency: NetworkQualityLatencyStats | None = None

    @classmethod
    def _parse(cls, value: Any) -> NetworkQualitySendOrRecvStats | None:
        raw = _object(value)
        if raw is None:
            return None
        bandwidth = _object(raw.get("bandwidth"))
        lost = _object(raw.get("fractionLost"))
        latency = _object(raw.get("latency"))
        return cls(
            bandwidth=NetworkQualityBandwidthStats(
                _number(bandwidth.get("actual")),
                _number(bandwidth.get("available")),
                _level(bandwidth.get("level")),
            )
            if bandwidth is not None
            else None,
            fraction_lost=NetworkQualityFractionLostStats(
                _number(lost.get("fractionLost")), _level(lost.get("level"))
            )
            if lost is not None
            else None,
            latency=NetworkQualityLatencyStats(
                _number(latency.get("jitter")),
                _number(latency.get("rtt")),
                _level(latency.get("level")),
            )
            if latency is not None
            else None,
        )


@dataclass(frozen=True)
class NetworkQualityMediaStats:
    """One media kind: the ``send`` and ``recv`` levels (0..5), and with verbosity 3 the
    statistics behind them (``send_stats`` / ``recv_stats``)."""

    send: int | None = None
    recv: int | None = None
    send_stats: NetworkQualitySendOrRecvStats | None = None
    recv_stats: NetworkQualitySendOrRecvStats | None = None

    @classmethod
    def _parse(cls, value: Any) -> NetworkQualityMediaStats | None:
        raw = _object(value)
        if raw is None:
            return None
        return cls(
            _level(raw.get("send")),
            _level(raw.get("recv")),
            NetworkQualitySendOrRecvStats._parse(raw.get("sendStats")),
            NetworkQualitySendOrRecvStats._parse(raw.get("recvStats")),
        )


@dataclass(frozen=True)
class NetworkQualityStats:
    """A participant's network quality in detail (verbosity 2 and 3): its ``level`` and the
    ``audio`` and ``video`` breakdown (twilio-video.js's ``NetworkQualityStats``)."""

    level: int | None = None
    audio: NetworkQualityMediaStats | None = None
    video: NetworkQualityMediaStats | None = None

    @classmethod
    def _parse(cls, value: Any) -> NetworkQualityStats | None:
        """The stats of a ``NetworkQualityLevels`` object; None without an audio/video part."""
        raw = _object(value)
        if raw is None:
            return None
        audio = NetworkQualityMediaStats._parse(raw.get("audio"))
        video = NetworkQualityMediaStats._parse(raw.get("video"))
        if audio is None and video is None:
            return None
        return cls(_level(raw.get("level")), audio, video)


def level_of(levels: Mapping[str, Any]) -> int | None:
    """The level of a ``NetworkQualityLevels`` object: its ``level``, else (as twilio-video.js
    does for servers that leave it out) the lowest of the audio/video send/recv levels."""
    level = _level(levels.get("level"))
    if level is not None:
        return level
    parts: list[int | None] = []
    for kind in ("audio", "video"):
        media = _object(levels.get(kind)) or {}
        parts.extend(_level(media.get(direction)) for direction in ("send", "recv"))
    known = [p for p in parts if p is not None]
    return min(known) if len(known) == 4 else None
