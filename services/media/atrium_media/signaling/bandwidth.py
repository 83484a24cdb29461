"""Simulcast and switch-off in a hosted room: which layers each publisher's m-line carries, what
each subscriber receives of each video track, and which encodings each publisher must send.

The decision itself is :func:`atrium_media.extensions.allocation.allocate` (the rule is in
docs/bandwidth-allocation.md). This module feeds it what the worker knows (the subscriber's
bandwidth profile, render hints and priorities, each layer's resolution, rate and liveness as
received, the dominant speaker) and applies its answer to the subscriber's forwarding legs: a
layer per simulcast track, and the tracks switched off (simulcast or not). Each publisher
granted ``publisher_hints`` is told which encodings anybody needs (:func:`encodings_needed`).

Not fed yet: a bandwidth estimate of the subscriber's link; the budget is the profile's
``maxSubscriptionBitrate`` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from atrium_media.extensions.allocation import (
    Dimensions,
    LayerOption,
    Priority,
    RenderHint,
    VideoBandwidthProfile,
    VideoSubscription,
    allocate,
)
from atrium_media.extensions.track_msp import (
    BandwidthProfileError,
    LayerEncoding,
    PublisherHint,
    PublisherHints,
    PublisherHintsMessage,
    parse_bandwidth_profile,
)
from atrium_media.forwarding import AUTO_LAYER, LayerSsrcPair, LayerState, UnknownTrack
from atrium_media.signaling.simulcast_sdp import SimulcastSdpError, published_video_layers

__all__ = [
    "EVERY_LAYER",
    "SubscriberLayers",
    "SubscriberView",
    "allocate_layers",
    "encodings_needed",
    "layers_by_mid",
    "merged_hint",
    "publisher_hints_message",
    "video_profile_of",
]

log = logging.getLogger("atrium.media.bandwidth")

# A wanted layer meaning "every layer, up to the largest": a subscriber that has no layer choice
# yet (no profile, or no layer size known), and a recording.
EVERY_LAYER = -1


class SimulcastTrack(Protocol):
    """What the allocation needs of a published track (a TrackForwarder)."""

    track_id: str
    publisher_id: str

    @property
    def is_simulcast(self) -> bool: ...

    def layer_states(self) -> tuple[LayerState, ...]: ...

    def set_leg_layer(self, subscriber_id: str, layer: int | None) -> None: ...

    def set_leg_enabled(self, subscriber_id: str, enabled: bool) -> None: ...


class PublishedTracks(Protocol):
    """Where the allocation finds published tracks (the MediaRouter)."""

    def published_track(self, track_id: str) -> SimulcastTrack: ...


def video_profile_of(
    body: Mapping[str, Any], *, render_hints: bool = False, track_switch_off: bool = False
) -> VideoBandwidthProfile | None:
    """The video bandwidth profile of an RSP ``connect`` or ``update`` (None without one, or
    when it does not parse: the client then gets what a client without a profile gets), for a
    client granted (or not) the ``render_hints`` and ``track_switch_off`` extensions."""
    raw = body.get("bandwidth_profile")
    if raw is None:
        return None
    try:
        parsed = parse_bandwidth_profile(raw)
    except BandwidthProfileError as exc:
        log.info("bandwidth_profile ignored: %s", exc)
        return None
    return VideoBandwidthProfile.from_rsp(
        parsed, render_hints=render_hints, track_switch_off=track_switch_off
    )


def layers_by_mid(sdp: str) -> dict[str, list[LayerSsrcPair]]:
    """The video layers (media and RTX SSRC, lowest first) of each m-line a client's offer
    sends on, by mid (empty when its SSRC groups do not make sense: every track is then
    forwarded as a single stream)."""
    try:
        found = published_video_layers(sdp)
    except SimulcastSdpError as exc:
        log.info("simulcast layers not read: %s", exc)
        return {}
    return {
        published.mid: [(layer.ssrc, layer.rtx_ssrc) for layer in published.layers]
        for published in found
        if published.mid is not None
    }


@dataclass(frozen=True, slots=True)
class SubscriberView:
    """What one subscriber said about its video: its profile, its render hints and priorities
    per track (``render_hints`` / ``track_priority`` MSP)."""

    profile: VideoBandwidthProfile
    hints: Mapping[str, RenderHint] = field(default_factory=dict)
    priorities: Mapping[str, Priority | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SubscriberLayers:
    """The outcome for one subscriber: per simulcast track the layer (an index into its SSRCs,
    or EVERY_LAYER) it would take with bandwidth to spare, and the tracks switched off for it."""

    wanted: dict[str, int]
    switched_off: frozenset[str]


def allocate_layers(
    router: PublishedTracks,
    subscriber_sid: str,
    track_sids: Iterable[str],
    view: SubscriberView,
    dominant_speaker: str | None,
) -> SubscriberLayers:
    """Decide every video track in ``track_sids`` the subscriber receives and apply it to its
    legs: the layer of each simulcast track, and which tracks are switched off."""
    chosen: list[tuple[SimulcastTrack, list[int], VideoSubscription]] = []
    for sid in track_sids:
        try:
            forwarder = router.published_track(sid)
        except UnknownTrack:
            continue
        # The allocation counts layers smallest first. Which SSRC carries which size is read
        # from the key frames, not assumed from the offer: twilio-video scales its encodings
        # only in adaptive simulcast; with `{codec: 'VP8', simulcast: true}` Chrome (156) sends
        # every SIM SSRC at the camera's size. A layer is a choice once its size is known. A
        # single stream has no layer to choose (no sizes): only switch-off applies to it.
        sized = sorted(
            (state for state in forwarder.layer_states() if state.width > 0),
            key=lambda state: (state.width * state.height, state.bitrate),
        )
        layers = [
            LayerOption(rank, state.width, state.height, state.bitrate, state.active)
            for rank, state in enumerate(sized)
        ]
        subscription = VideoSubscription(
            sid,
            layers,
            subscribe_priority=view.priorities.get(sid),
            render_hint=view.hints.get(sid, RenderHint()),
            dominant_speaker=forwarder.publisher_id == dominant_speaker,
        )
        chosen.append((forwarder, [state.index for state in sized], subscription))
    wanted: dict[str, int] = {}
    off: set[str] = set()
    if not chosen:
        return SubscriberLayers(wanted, frozenset())
    allocation = allocate(view.profile, [s for _, _, s in chosen], bandwidth_estimate=None)
    for (forwarder, indexes, _), decision in zip(chosen, allocation.tracks, strict=True):
        sid = forwarder.track_id
        switched_off = decision.layer is None and decision.reason != "no-media"
        forwarder.set_leg_enabled(subscriber_sid, not switched_off)
        if switched_off:
            off.add(sid)
        if not forwarder.is_simulcast:
            continue
        if decision.reason == "no-media" or not indexes:
            # No layer of known size yet: the largest that arrives until sizes are known,
            # rather than nothing.
            forwarder.set_leg_layer(subscriber_sid, AUTO_LAYER)
            wanted[sid] = EVERY_LAYER
            continue
        rank = decision.layer
        forwarder.set_leg_layer(subscriber_sid, None if rank is None else indexes[rank])
        if decision.wanted_layer is not None:
            wanted[sid] = indexes[decision.wanted_layer]
    return SubscriberLayers(wanted, frozenset(off))


def merged_hint(
    previous: RenderHint | None, enabled: bool | None, size: Dimensions | None
) -> RenderHint:
    """A track's render hint after a client's change (each hint carries only what changed)."""
    before = previous or RenderHint()
    return RenderHint(
        enabled=before.enabled if enabled is None else enabled,
        render_dimensions=before.render_dimensions if size is None else size,
    )


def encodings_needed(layers: Sequence[LayerState], wanted: Collection[int]) -> tuple[bool, ...]:
    """Which of a simulcast track's encodings (``layers``, in SSRC order) its publisher should
    send, given the layers its subscribers want (indexes, or EVERY_LAYER; empty: nobody wants
    any): each one no larger than the largest wanted (by size: SSRC order is not size order),
    the smallest always (a newcomer, or a subscriber short of bandwidth, starts there), and any
    whose size is not known yet (no key frame seen: whether it is needed cannot be told)."""

    def area(state: LayerState) -> int:
        return state.width * state.height

    sized = [state for state in layers if area(state) > 0]
    smallest = min(sized, key=area).index if sized else 0
    if EVERY_LAYER in wanted:
        cap = max((area(state) for state in layers), default=0)
    else:
        cap = max((area(layers[i]) for i in wanted if 0 <= i < len(layers)), default=0)
    return tuple(
        state.index == smallest or area(state) == 0 or area(state) <= cap for state in layers
    )


def publisher_hints_message(
    hint_id: int, encodings: Mapping[str, tuple[bool, ...]]
) -> PublisherHintsMessage:
    """The ``publisher_hints`` message asking for ``encodings`` per track."""
    return PublisherHintsMessage(
        publisher=PublisherHints(
            id=hint_id,
            hints=[
                PublisherHint(
                    track=sid,
                    encodings=[
                        LayerEncoding(layer_index=index, enabled=enabled)
                        for index, enabled in enumerate(wanted)
                    ],
                )
                for sid, wanted in encodings.items()
            ],
        )
    )
