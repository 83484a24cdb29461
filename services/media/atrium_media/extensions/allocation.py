"""Bandwidth allocation: which layer of each subscribed video track a subscriber gets, or whether
the track is switched off, and which layers each publisher needs to encode at all.

The rule is documented in ``docs/bandwidth-allocation.md``; in short:

1. **Priority.** A track's priority is the subscriber's priority for it (``track_priority`` MSP)
   if set, else its publish priority; the dominant speaker's tracks are raised to at least the
   profile's ``dominantSpeakerPriority``.
2. **Switched off by the subscriber** when its client controls switch-off (render hints) and the
   last hint said ``enabled: false``; with the deprecated ``maxTracks`` instead, all but the
   ``maxTracks`` best-ranked tracks are off.
3. **Wanted layer**: the smallest layer that covers the size the track is rendered at (the render
   hint's dimensions, else the profile's render dimensions for its priority). A 160x90 tile never
   gets 640x480.
4. **Budget**: the subscriber's bandwidth estimate, capped by ``maxSubscriptionBitrate``, less a
   margin in ``predicted`` switch-off mode. Tracks are ranked (priority, then dominant speaker,
   then the order given). Each gets its lowest layer in rank order while the budget lasts;
   the first that does not fit and every track ranked below it are switched off (``disabled``
   switch-off mode: they get their lowest layer anyway). What is left upgrades layers, one step
   at a time: ``grid`` evenly, ``collaboration`` in proportion to each priority's render area,
   ``presentation`` all of the high priority tracks first, then the next priority (whose
   minimums come only after the higher ones are served).
5. **Publisher hints**: a publisher keeps encoding layers up to the highest one any subscriber
   *wants* (``TrackAllocation.wanted_layer``: bandwidth aside, so a congested subscriber does
   not starve the others of the layer it will want back); the lowest layer always stays on.
   The worker applies it in ``atrium_media.signaling.bandwidth.encodings_needed``.

Pure functions on frozen dataclasses; no I/O, no clock. Not wired into the worker yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from atrium_media.extensions.track_msp import (
    BandwidthProfileBody,
    RenderDimensionsBody,
    VideoBandwidthProfileBody,
)

__all__ = [
    "DEFAULT_RENDER_DIMENSIONS",
    "PREDICTED_HEADROOM",
    "STAY_DISCOUNT",
    "Allocation",
    "Dimensions",
    "LayerOption",
    "RenderHint",
    "TrackAllocation",
    "VideoBandwidthProfile",
    "VideoSubscription",
    "allocate",
    "effective_priority",
    "nominal_bitrate",
    "switch_off_changes",
]

Priority = Literal["low", "standard", "high"]
Mode = Literal["grid", "collaboration", "presentation"]
TrackSwitchOffMode = Literal["detected", "predicted", "disabled"]
ClientControl = Literal["auto", "manual", "disabled"]
SwitchOffReason = Literal["subscriber", "max-tracks", "bandwidth", "no-media"]
"""Why a track is switched off: the subscriber switched it off (render hint), it is beyond
``maxTracks``, the budget does not reach it, or the publisher sends no layer of it."""

_RANK: dict[Priority, int] = {"low": 0, "standard": 1, "high": 2}
_PRIORITIES_HIGH_FIRST: tuple[Priority, ...] = ("high", "standard", "low")

STAY_DISCOUNT = 0.8
"""The layer a subscriber receives counts at this share of its rate: it is kept until the budget
falls 20 % below it, and a layer is only taken when it fits whole."""

PREDICTED_HEADROOM = 0.85
"""Share of the estimate used in ``predicted`` mode: tracks are switched off before the link is
full rather than once it is congested (``detected`` uses the whole estimate)."""

# Bits per pixel per frame at 30 frames per second behind :func:`nominal_bitrate`: about what
# Chrome's VP8 simulcast layers send (~120 kbit/s at 320x180, ~1.9 Mbit/s at 1280x720).
_NOMINAL_BITS_PER_PIXEL = 0.07
_NOMINAL_FPS = 30


@dataclass(frozen=True, slots=True)
class Dimensions:
    """A width and height in pixels. Zero or negative means "as small as possible"."""

    width: float
    height: float

    @property
    def pixels(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @classmethod
    def from_body(cls, body: RenderDimensionsBody) -> Dimensions:
        return cls(width=body.width, height=body.height)


DEFAULT_RENDER_DIMENSIONS: Mapping[Priority, Dimensions] = {
    "low": Dimensions(176, 144),
    "standard": Dimensions(640, 480),
    "high": Dimensions(1280, 720),
}
"""twilio-video's documented defaults for ``renderDimensions`` (QCIF, VGA, HD)."""


@dataclass(frozen=True, slots=True)
class VideoBandwidthProfile:
    """A subscriber's video bandwidth profile, with twilio-video's defaults.

    ``max_subscription_bitrate`` (bits per second) and ``max_tracks`` of None, zero or less mean
    no limit. ``client_track_switch_off_control`` and ``content_preferences_mode`` say whether
    the client's render hints decide switch-off and render size ("auto" and "manual" differ only
    in who produces the hints on the client, the server treats them alike).
    """

    mode: Mode = "grid"
    max_subscription_bitrate: float | None = None
    dominant_speaker_priority: Priority = "standard"
    track_switch_off_mode: TrackSwitchOffMode = "predicted"
    client_track_switch_off_control: ClientControl = "disabled"
    content_preferences_mode: ClientControl = "disabled"
    render_dimensions: Mapping[Priority, Dimensions] = field(
        default_factory=lambda: dict(DEFAULT_RENDER_DIMENSIONS)
    )
    max_tracks: float | None = None

    @classmethod
    def from_rsp(
        cls,
        body: BandwidthProfileBody | None,
        *,
        render_hints: bool,
        track_switch_off: bool,
    ) -> VideoBandwidthProfile:
        """The profile of a client from its RSP ``bandwidth_profile`` (None when it sent none)
        and the extensions it was granted.

        twilio-video does not send ``clientTrackSwitchOffControl`` / ``contentPreferencesMode``.
        It requests ``render_hints`` when either is in use, and it sets them to "disabled" when
        the app used the deprecated ``maxTracks`` / ``renderDimensions`` instead (``connect.js``);
        that is what is read back here. A client that cannot be told about switch-offs (no
        ``track_switch_off`` channel) is never switched off for bandwidth: it gets the lowest
        layers instead, rather than a picture frozen without explanation.
        """
        video = body.video if body is not None else None
        if video is None:
            video = VideoBandwidthProfileBody()
        dims = dict(DEFAULT_RENDER_DIMENSIONS)
        if video.render_dimensions is not None:
            for priority in _PRIORITIES_HIGH_FIRST:
                given = getattr(video.render_dimensions, priority)
                if given is not None:
                    dims[priority] = Dimensions.from_body(given)
        switch_off_mode = video.track_switch_off or "predicted"
        if not track_switch_off:
            switch_off_mode = "disabled"
        hints_control: ClientControl = "auto" if render_hints else "disabled"
        return cls(
            mode=video.mode or "grid",
            max_subscription_bitrate=video.max_subscription_bandwidth,
            dominant_speaker_priority=video.active_speaker_priority or "standard",
            track_switch_off_mode=switch_off_mode,
            client_track_switch_off_control=(
                "disabled" if video.max_tracks is not None else hints_control
            ),
            content_preferences_mode=(
                "disabled" if video.render_dimensions is not None else hints_control
            ),
            render_dimensions=dims,
            max_tracks=video.max_tracks,
        )


@dataclass(frozen=True, slots=True)
class LayerOption:
    """One layer of a published track as the worker knows it. ``width``/``height`` 0 when no key
    frame of it was seen; ``bitrate`` (bits per second) 0 when not measured yet; ``active``
    while its packets arrive; ``forwarded`` for the layer this subscriber receives now."""

    index: int
    width: int
    height: int
    bitrate: int
    active: bool = True
    forwarded: bool = False


@dataclass(frozen=True, slots=True)
class RenderHint:
    """The subscriber's last render hint for a track (fields stay None until hinted)."""

    enabled: bool | None = None
    render_dimensions: Dimensions | None = None


@dataclass(frozen=True, slots=True)
class VideoSubscription:
    """One subscribed video track, as the allocation sees it. ``layers`` lists every layer the
    publisher announced (one for a non-simulcast track), lowest first."""

    track_sid: str
    layers: Sequence[LayerOption]
    publish_priority: Priority = "standard"
    subscribe_priority: Priority | None = None
    render_hint: RenderHint = field(default_factory=RenderHint)
    dominant_speaker: bool = False


@dataclass(frozen=True, slots=True)
class TrackAllocation:
    """The decision for one track: ``layer`` to forward (index into its layers) or None with a
    ``reason``; ``wanted_layer`` is what this subscriber would take with bandwidth to spare
    (None when it switched the track off itself); ``bitrate`` is what the layer costs."""

    track_sid: str
    layer: int | None
    reason: SwitchOffReason | None
    wanted_layer: int | None
    bitrate: int
    priority: Priority

    @property
    def switched_off(self) -> bool:
        return self.layer is None


@dataclass(frozen=True, slots=True)
class Allocation:
    """Every track's decision, in the order the subscriptions were given. ``budget`` is None when
    unlimited; ``over_budget`` only happens with switch-off mode ``disabled``."""

    tracks: tuple[TrackAllocation, ...]
    budget: float | None
    bitrate: int

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.bitrate > self.budget

    @property
    def switched_off(self) -> frozenset[str]:
        return frozenset(t.track_sid for t in self.tracks if t.switched_off)

    def get(self, track_sid: str) -> TrackAllocation | None:
        return next((t for t in self.tracks if t.track_sid == track_sid), None)


def effective_priority(subscription: VideoSubscription, profile: VideoBandwidthProfile) -> Priority:
    """Subscriber priority if set, else publish priority; raised for the dominant speaker."""
    priority = subscription.subscribe_priority or subscription.publish_priority
    if subscription.dominant_speaker:
        floor = profile.dominant_speaker_priority
        if _RANK[floor] > _RANK[priority]:
            priority = floor
    return priority


def nominal_bitrate(width: float, height: float) -> int:
    """What a layer of this size typically sends, for layers not measured yet."""
    return round(max(0.0, width) * max(0.0, height) * _NOMINAL_BITS_PER_PIXEL * _NOMINAL_FPS)


def _limit(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def _sized_layers(layers: Sequence[LayerOption]) -> list[tuple[LayerOption, float]]:
    """Each layer with its area; unknown sizes estimated from the nearest known layer, assuming
    the factor 2 per layer (each dimension) that browsers and twilio-video use."""
    ordered = sorted(layers, key=lambda layer: layer.index)
    known = [(layer.index, layer.width * layer.height) for layer in ordered if layer.width > 0]
    sized = []
    for layer in ordered:
        area = float(layer.width * layer.height)
        if area <= 0 and known:
            index, known_area = min(known, key=lambda k: abs(k[0] - layer.index))
            area = known_area * 4.0 ** (layer.index - index)
        sized.append((layer, area))
    return sized


def _wanted_layer(sized: list[tuple[LayerOption, float]], cap: Dimensions) -> int:
    """Smallest layer covering ``cap``'s area; the highest when none does (or sizes are unknown)."""
    if all(area <= 0 for _, area in sized):
        return sized[-1][0].index
    target = cap.pixels
    for layer, area in sized:
        if area >= target:
            return layer.index
    return sized[-1][0].index


def _cost(layer: LayerOption, area: float) -> int:
    cost = layer.bitrate if layer.bitrate > 0 else area * _NOMINAL_BITS_PER_PIXEL * _NOMINAL_FPS
    # A layer's rate swings with the picture; without a margin for the one being forwarded, a
    # budget close to it would switch layers back and forth on every swing.
    return round(cost * STAY_DISCOUNT if layer.forwarded else cost)


@dataclass(slots=True)
class _Candidate:
    subscription: VideoSubscription
    order: int
    priority: Priority
    wanted: int
    options: list[tuple[int, int]]  # (layer index, cost), lowest first, all at most wanted
    chosen: int = -1  # position in options; -1: nothing yet
    done: bool = False
    weight: float = 1.0

    @property
    def rank(self) -> tuple[int, bool, int]:
        return (-_RANK[self.priority], not self.subscription.dominant_speaker, self.order)

    @property
    def cost(self) -> int:
        return self.options[self.chosen][1] if self.chosen >= 0 else 0


def allocate(
    profile: VideoBandwidthProfile,
    subscriptions: Sequence[VideoSubscription],
    *,
    bandwidth_estimate: float | None,
) -> Allocation:
    """Decide every subscribed video track of one subscriber (see the module docstring).

    ``bandwidth_estimate`` is what the subscriber can receive for video, in bits per second
    (REMB or transport-wide feedback, less audio); None while there is no estimate yet.
    """
    estimate = _limit(bandwidth_estimate)
    cap = _limit(profile.max_subscription_bitrate)
    limits = [value for value in (estimate, cap) if value is not None]
    budget = min(limits) if limits else None
    if budget is not None and profile.track_switch_off_mode == "predicted":
        budget *= PREDICTED_HEADROOM

    decided: dict[int, TrackAllocation] = {}
    candidates: list[_Candidate] = []
    client_controls = profile.client_track_switch_off_control != "disabled"
    client_sizes = profile.content_preferences_mode != "disabled"
    for order, subscription in enumerate(subscriptions):
        priority = effective_priority(subscription, profile)
        sid = subscription.track_sid
        if client_controls and subscription.render_hint.enabled is False:
            decided[order] = TrackAllocation(sid, None, "subscriber", None, 0, priority)
            continue
        sized = _sized_layers(subscription.layers)
        if not sized:
            decided[order] = TrackAllocation(sid, None, "no-media", None, 0, priority)
            continue
        hinted = subscription.render_hint.render_dimensions
        size = hinted if client_sizes and hinted is not None else None
        wanted = _wanted_layer(sized, size or profile.render_dimensions[priority])
        active = [(layer.index, _cost(layer, area)) for layer, area in sized if layer.active]
        if not active:
            decided[order] = TrackAllocation(sid, None, "no-media", wanted, 0, priority)
            continue
        options = [option for option in active if option[0] <= wanted] or active[:1]
        candidates.append(_Candidate(subscription, order, priority, wanted, options))

    candidates.sort(key=lambda c: c.rank)
    max_tracks = _limit(profile.max_tracks)
    if not client_controls and max_tracks is not None:
        for candidate in candidates[int(max_tracks) :]:
            decided[candidate.order] = _off(candidate, "max-tracks")
        candidates = candidates[: int(max_tracks)]

    state = _Budget(budget)
    force = profile.track_switch_off_mode == "disabled"
    if profile.mode == "presentation":
        starved = False
        for priority in _PRIORITIES_HIGH_FIRST:
            group = [c for c in candidates if c.priority == priority]
            starved = _minimums(group, state, force, starved)
            _upgrades(group, state)
    else:
        for candidate in candidates:
            if profile.mode == "collaboration":
                candidate.weight = max(1.0, profile.render_dimensions[candidate.priority].pixels)
        _minimums(candidates, state, force, False)
        _upgrades(candidates, state)

    for candidate in candidates:
        if candidate.chosen < 0:
            decided[candidate.order] = _off(candidate, "bandwidth")
        else:
            layer, cost = candidate.options[candidate.chosen]
            decided[candidate.order] = TrackAllocation(
                candidate.subscription.track_sid,
                layer,
                None,
                candidate.wanted,
                cost,
                candidate.priority,
            )
    tracks = tuple(decided[order] for order in range(len(subscriptions)))
    return Allocation(tracks=tracks, budget=budget, bitrate=sum(t.bitrate for t in tracks))


def _off(candidate: _Candidate, reason: SwitchOffReason) -> TrackAllocation:
    return TrackAllocation(
        candidate.subscription.track_sid,
        None,
        reason,
        candidate.wanted,
        0,
        candidate.priority,
    )


class _Budget:
    __slots__ = ("remaining",)

    def __init__(self, budget: float | None) -> None:
        self.remaining = budget

    def fits(self, cost: float) -> bool:
        return self.remaining is None or cost <= self.remaining

    def spend(self, cost: float) -> None:
        if self.remaining is not None:
            self.remaining -= cost


def _minimums(group: list[_Candidate], budget: _Budget, force: bool, starved: bool) -> bool:
    """Lowest layer for each, in rank order, until one does not fit: it and every one ranked
    below stay off (unless ``force``). Returns whether the budget ran out."""
    for candidate in group:
        cost = candidate.options[0][1]
        if not starved and budget.fits(cost):
            candidate.chosen = 0
            budget.spend(cost)
        elif force:
            candidate.chosen = 0
            budget.spend(cost)
            starved = True
        else:
            starved = True
    return starved


def _upgrades(group: list[_Candidate], budget: _Budget) -> None:
    """Raise layers one step at a time, always the track with the least bit rate per weight
    (ties: rank), while the next step fits."""
    while True:
        movable = [
            c for c in group if c.chosen >= 0 and not c.done and c.chosen + 1 < len(c.options)
        ]
        if not movable:
            return
        candidate = min(movable, key=lambda c: (c.cost / c.weight, c.rank))
        step = candidate.options[candidate.chosen + 1][1] - candidate.cost
        if budget.fits(step):
            candidate.chosen += 1
            budget.spend(step)
        else:
            candidate.done = True


def switch_off_changes(
    previous: Allocation | None, current: Allocation
) -> tuple[list[str], list[str]]:
    """(off, on): the tracks to announce in a ``track_switch_off`` message after a new allocation.

    A track is announced when its state changed, or when it is new and off (twilio-video starts
    every subscribed track switched on).
    """
    before = {t.track_sid: t.switched_off for t in previous.tracks} if previous else {}
    off = [
        t.track_sid for t in current.tracks if t.switched_off and not before.get(t.track_sid, False)
    ]
    on = [
        t.track_sid for t in current.tracks if not t.switched_off and before.get(t.track_sid, False)
    ]
    return off, on
