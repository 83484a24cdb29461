"""The bandwidth profile of ``connect(bandwidth_profile=...)``, as twilio-video's
``bandwidthProfile``, with Python names.

The application gives a mapping (or a :class:`BandwidthProfile`)::

    {"video": {
        "mode": "grid",                          # or "collaboration", "presentation"
        "max_subscription_bitrate": 2_000_000,   # bits per second; 0: no limit
        "dominant_speaker_priority": "high",     # "low", "standard", "high"
        "track_switch_off_mode": "predicted",    # or "detected", "disabled"
        "client_track_switch_off_control": "manual",  # or "auto"
        "content_preferences_mode": "manual",          # or "auto"
        "render_dimensions": {"high": (1280, 720), "low": {"width": 176, "height": 144}},
        "max_tracks": 4,
    }}

It travels in RSP ``connect`` (and ``update``) under twilio-video's wire names
(``util/index.js`` ``createBandwidthProfileVideoPayload``): ``mode``,
``max_subscription_bandwidth``, ``active_speaker_priority``, ``track_switch_off``,
``render_dimensions`` (``{"high": {"height": h, "width": w}}``), ``max_tracks``; only the options
given are sent.

``client_track_switch_off_control`` and ``content_preferences_mode`` are not on the wire. As in
twilio-video's ``connect.js`` they default to ``"auto"`` with a profile, and become
``"disabled"`` with the deprecated ``max_tracks`` (switch-off control) or ``render_dimensions``
(content preferences); giving both a deprecated option and its replacement is an error, as
there. The client asks for the ``render_hints`` extension unless both are disabled; the server
reads the modes back from that and from which deprecated options are present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

__all__ = [
    "PRIORITIES",
    "BandwidthProfile",
    "ClientControl",
    "Priority",
    "VideoBandwidthProfile",
    "bandwidth_profile_of",
    "render_dimensions_of",
]

Priority = Literal["low", "standard", "high"]
ClientControl = Literal["auto", "manual", "disabled"]
PRIORITIES: tuple[Priority, ...] = ("low", "standard", "high")
_MODES = ("grid", "collaboration", "presentation")
_SWITCH_OFF_MODES = ("detected", "predicted", "disabled")
_CONTROLS = ("auto", "manual")  # what an application may ask for ("disabled" is derived)

# Python name -> twilio-video's camelCase name (only for a helpful error message).
_CAMEL = {
    "mode": "mode",
    "max_subscription_bitrate": "maxSubscriptionBitrate",
    "dominant_speaker_priority": "dominantSpeakerPriority",
    "track_switch_off_mode": "trackSwitchOffMode",
    "client_track_switch_off_control": "clientTrackSwitchOffControl",
    "content_preferences_mode": "contentPreferencesMode",
    "render_dimensions": "renderDimensions",
    "max_tracks": "maxTracks",
}
_SNAKE = {camel: snake for snake, camel in _CAMEL.items()}


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, not {value!r}")
    return value


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")
    return cast(str, value)


def render_dimensions_of(value: Any, name: str = "render_dimensions") -> tuple[float, float]:
    """``(width, height)`` from a ``(width, height)`` pair or a ``{"width", "height"}`` mapping;
    ValueError otherwise. Zero means "as small as possible" to the server."""
    if isinstance(value, Mapping):
        unknown = set(value) - {"width", "height"}
        if unknown or len(value) != 2:
            raise ValueError(f"{name} needs exactly 'width' and 'height', not {dict(value)!r}")
        width, height = value["width"], value["height"]
    elif isinstance(value, tuple | list) and len(value) == 2:
        width, height = value
    else:
        raise ValueError(f"{name} must be (width, height) or {{'width', 'height'}}, not {value!r}")
    return _number(width, f"{name} width"), _number(height, f"{name} height")


@dataclass(frozen=True, slots=True)
class VideoBandwidthProfile:
    """``bandwidth_profile["video"]``. None means "not given" (the server's default applies,
    and nothing is sent for it). ``client_track_switch_off_control`` and
    ``content_preferences_mode`` are the effective modes (``"auto"``, ``"manual"`` or
    ``"disabled"``)."""

    mode: str | None = None
    max_subscription_bitrate: float | None = None
    dominant_speaker_priority: Priority | None = None
    track_switch_off_mode: str | None = None
    render_dimensions: Mapping[Priority, tuple[float, float]] | None = None
    max_tracks: float | None = None
    client_track_switch_off_control: ClientControl = "auto"
    content_preferences_mode: ClientControl = "auto"

    @classmethod
    def parse(
        cls, value: Mapping[str, Any], *, defaults: VideoBandwidthProfile | None = None
    ) -> VideoBandwidthProfile:
        """Validate the ``video`` mapping (ValueError naming the bad option). ``defaults``
        gives the control modes when the mapping does not name them (a profile replacing an
        earlier one keeps its modes)."""
        if not isinstance(value, Mapping):
            raise ValueError(f"bandwidth_profile video must be a mapping, not {value!r}")
        for key in value:
            if key not in _CAMEL:
                hint = f" (did you mean {_SNAKE[key]!r}?)" if key in _SNAKE else ""
                raise ValueError(f"unknown bandwidth_profile video option {key!r}{hint}")
        if "max_tracks" in value and "client_track_switch_off_control" in value:
            raise ValueError(
                "max_tracks is deprecated (as in twilio-video): use"
                " client_track_switch_off_control instead, not both"
            )
        if "render_dimensions" in value and "content_preferences_mode" in value:
            raise ValueError(
                "render_dimensions is deprecated (as in twilio-video): use"
                " content_preferences_mode instead, not both"
            )
        mode = value.get("mode")
        if mode is not None:
            _choice(mode, "mode", _MODES)
        bitrate = value.get("max_subscription_bitrate")
        if bitrate is not None:
            bitrate = _number(bitrate, "max_subscription_bitrate")
        speaker = value.get("dominant_speaker_priority")
        if speaker is not None:
            _choice(speaker, "dominant_speaker_priority", PRIORITIES)
        switch_off = value.get("track_switch_off_mode")
        if switch_off is not None:
            _choice(switch_off, "track_switch_off_mode", _SWITCH_OFF_MODES)
        max_tracks = value.get("max_tracks")
        if max_tracks is not None:
            max_tracks = _number(max_tracks, "max_tracks")
        dimensions: dict[Priority, tuple[float, float]] | None = None
        raw_dimensions = value.get("render_dimensions")
        if raw_dimensions is not None:
            if not isinstance(raw_dimensions, Mapping):
                raise ValueError("render_dimensions must map priorities to (width, height)")
            dimensions = {}
            for priority, size in raw_dimensions.items():
                _choice(priority, "a render_dimensions priority", PRIORITIES)
                dimensions[priority] = render_dimensions_of(
                    size, f"render_dimensions[{priority!r}]"
                )
        # connect.js: a deprecated option disables its replacement; otherwise what the app
        # asked for, else what the profile being replaced had, else "auto".
        control = cast(
            ClientControl,
            _choice(
                value.get(
                    "client_track_switch_off_control",
                    _kept(defaults.client_track_switch_off_control if defaults else None),
                ),
                "client_track_switch_off_control",
                _CONTROLS,
            ),
        )
        content = cast(
            ClientControl,
            _choice(
                value.get(
                    "content_preferences_mode",
                    _kept(defaults.content_preferences_mode if defaults else None),
                ),
                "content_preferences_mode",
                _CONTROLS,
            ),
        )
        return cls(
            mode=mode,
            max_subscription_bitrate=bitrate,
            dominant_speaker_priority=speaker,
            track_switch_off_mode=switch_off,
            render_dimensions=dimensions,
            max_tracks=max_tracks,
            client_track_switch_off_control="disabled" if "max_tracks" in value else control,
            content_preferences_mode="disabled" if "render_dimensions" in value else content,
        )

    def payload(self) -> dict[str, Any]:
        """The wire ``video`` object: only the options given, under twilio-video's names."""
        body: dict[str, Any] = {}
        if self.mode is not None:
            body["mode"] = self.mode
        if self.max_subscription_bitrate is not None:
            body["max_subscription_bandwidth"] = self.max_subscription_bitrate
        if self.dominant_speaker_priority is not None:
            body["active_speaker_priority"] = self.dominant_speaker_priority
        if self.track_switch_off_mode is not None:
            body["track_switch_off"] = self.track_switch_off_mode
        if self.max_tracks is not None:
            body["max_tracks"] = self.max_tracks
        if self.render_dimensions is not None:
            body["render_dimensions"] = {
                priority: {"height": height, "width": width}
                for priority, (width, height) in self.render_dimensions.items()
            }
        return body


def _kept(control: ClientControl | None) -> ClientControl:
    return control if control in _CONTROLS else "auto"


@dataclass(frozen=True, slots=True)
class BandwidthProfile:
    """A whole bandwidth profile (twilio-video has only ``video``)."""

    video: VideoBandwidthProfile | None = None

    @classmethod
    def parse(
        cls, value: Mapping[str, Any], *, defaults: BandwidthProfile | None = None
    ) -> BandwidthProfile:
        if not isinstance(value, Mapping):
            raise ValueError(f"bandwidth_profile must be a mapping, not {value!r}")
        unknown = set(value) - {"video"}
        if unknown:
            raise ValueError(f"unknown bandwidth_profile option(s) {sorted(unknown)!r}")
        video = value.get("video")
        if video is None:
            return cls()
        return cls(
            VideoBandwidthProfile.parse(video, defaults=defaults.video if defaults else None)
        )

    @property
    def client_track_switch_off_control(self) -> ClientControl:
        return self.video.client_track_switch_off_control if self.video else "auto"

    @property
    def content_preferences_mode(self) -> ClientControl:
        return self.video.content_preferences_mode if self.video else "auto"

    @property
    def wants_render_hints(self) -> bool:
        """Whether the client asks for ``render_hints`` (cancelableroomsignalingpromise.js)."""
        return (
            self.client_track_switch_off_control != "disabled"
            or self.content_preferences_mode != "disabled"
        )

    def payload(self) -> dict[str, Any]:
        """The RSP ``bandwidth_profile`` field."""
        return {"video": self.video.payload()} if self.video is not None else {}


def bandwidth_profile_of(
    value: Mapping[str, Any] | BandwidthProfile | None, *, defaults: BandwidthProfile | None = None
) -> BandwidthProfile | None:
    """The profile ``connect(bandwidth_profile=...)`` was given, validated (None: none)."""
    if value is None or isinstance(value, BandwidthProfile):
        return value
    return BandwidthProfile.parse(value, defaults=defaults)
