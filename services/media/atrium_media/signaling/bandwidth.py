"""Simulcast and switch-off in a hosted room: which layers each publisher's m-line carries, what
each subscriber receives of each video track, and which encodings each publisher must send.

The decision itself is :func:`atrium_media.extensions.allocation.allocate` (the rule is in
docs/bandwidth-allocation.md). This module feeds it what the worker knows (the subscriber's
bandwidth profile, render hints and priorities, each layer's resolution, rate and liveness as
received, the dominant speaker) and applies its answer to the subscriber's forwarding legs: a
layer per simulcast track, and the tracks switched off (simulcast or not). Each publisher
granted ``publisher_hints`` is told which encodings anybody needs (:func:`encodings_needed`).

The budget is the profile's ``maxSubscriptionBitrate`` and what the subscriber's link takes:
:class:`Downlink` turns the RTCP the subscriber sends about its legs (receiver reports, REMB)
into the samples :class:`atrium_media.extensions.link_budget.LinkBudget` decides on.
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
from atrium_media.extensions.link_budget import LinkBudget, LinkFeedback
from atrium_media.extensions.track_msp import (
    BandwidthProfileError,
    LayerEncoding,
    PublisherHint,
    PublisherHints,
    PublisherHintsMessage,
    parse_bandwidth_profile,
)
from atrium_media.forwarding import (
    AUTO_LAYER,
    LayerSsrcPair,
    LayerState,
    ReceiverEstimate,
    ReportedLoss,
    UnknownTrack,
)
from atrium_media.signaling.simulcast_sdp import SimulcastSdpError, published_video_layers

__all__ = [
    "AUDIO_ALLOWANCE",
    "EVERY_LAYER",
    "Downlink",
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


# What one subscribed audio track takes of the subscriber's REMB estimate (which covers every
# stream of its transport; the budget is for video): Opus at twilio-video's usual rates.
AUDIO_ALLOWANCE = 40_000
# Older feedback than this says nothing of the link now (REMB and receiver reports come about
# every second).
FEEDBACK_MAX_AGE = 3.0


class LegFeedback(Protocol):
    """What the downlink needs of a forwarding leg (a ForwardingLeg)."""

    bytes_sent: int
    bytes_retransmitted: int
    packets_sent: int
    packets_nacked: int
    receiver_estimate: ReceiverEstimate | None
    reported_loss: ReportedLoss | None

    enabled: bool

    @property
    def forwarded_layer(self) -> int | None: ...


class SimulcastTrack(Protocol):
    """What the allocation needs of a published track (a TrackForwarder)."""

    track_id: str
    publisher_id: str

    @property
    def is_simulcast(self) -> bool: ...

    def layer_states(self) -> tuple[LayerState, ...]: ...

    def set_leg_layer(self, subscriber_id: str, layer: int | None) -> None: ...

    def set_leg_enabled(self, subscriber_id: str, enabled: bool) -> None: ...

    def leg(self, subscriber_id: str) -> LegFeedback | None: ...

    def stream_state(self) -> LayerState | None: ...


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


class Downlink:
    """One subscriber's downlink as its RTCP tells it: each allocation tick, :meth:`update`
    samples its video legs (bytes sent, the receiver reports and REMB that arrived since the
    previous tick) and returns the budget its :class:`LinkBudget` decides (None: no limit)."""

    def __init__(self) -> None:
        self.link = LinkBudget()
        # When, and the legs' bytes sent, packets sent and packets NACKed by then.
        self._sent: tuple[float, int, int, int] | None = None
        self._seen = float("-inf")  # receiver reports up to this time are counted

    def update(self, now: float, legs: Sequence[LegFeedback], audio_tracks: int) -> float | None:
        totals = (
            sum(leg.bytes_sent + leg.bytes_retransmitted for leg in legs),
            sum(leg.packets_sent for leg in legs),
            sum(leg.packets_nacked for leg in legs),
        )
        previous, self._sent = self._sent, (now, *totals)
        if previous is None or now <= previous[0] or any(map(int.__lt__, totals, previous[1:])):
            return self.link.budget  # first sample, or the legs changed: no rate yet
        elapsed = now - previous[0]
        bitrate = 8 * (totals[0] - previous[1]) / elapsed
        packets, nacked = totals[1] - previous[2], totals[2] - previous[3]
        # Loss two ways: the share of the tick's packets NACKed (quick), and the receiver
        # reports that arrived since the last tick (slower, but from receivers without NACK).
        losses = [min(1.0, nacked / packets)] if packets > 0 else []
        losses += [
            leg.reported_loss.fraction_lost
            for leg in legs
            if leg.reported_loss is not None and leg.reported_loss.received_at > self._seen
        ]
        self._seen = now
        feedback = LinkFeedback(
            sent_bitrate=bitrate,
            fraction_lost=max(losses) if losses else None,
            estimate=self._estimate(now, legs, audio_tracks),
        )
        before = self.link.budget
        budget = self.link.update(now, feedback)
        if budget != before:
            log.info(
                "downlink budget %s -> %s (%s; sent %.0f bit/s, lost %s, estimate %s)",
                _kbit(before),
                _kbit(budget),
                self.link.state,
                bitrate,
                feedback.fraction_lost,
                feedback.estimate,
            )
        return budget

    @staticmethod
    def _estimate(now: float, legs: Sequence[LegFeedback], audio_tracks: int) -> float | None:
        fresh = [
            leg.receiver_estimate
            for leg in legs
            if leg.receiver_estimate is not None
            and now - leg.receiver_estimate.received_at <= FEEDBACK_MAX_AGE
        ]
        if not fresh:
            return None
        # Chrome sends one REMB for the whole transport, listing every SSRC it receives: that is
        # the total. aiortc estimates each receiver's stream on its own: the total is the sum.
        shared = [estimate.bitrate for estimate in fresh if estimate.ssrc_count > 1]
        total = max(shared) if shared else sum(estimate.bitrate for estimate in fresh)
        return max(0.0, float(total - AUDIO_ALLOWANCE * audio_tracks))


def _kbit(bitrate: float | None) -> str:
    return "none" if bitrate is None else f"{bitrate / 1000:.0f} kbit/s"


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
    *,
    bandwidth_estimate: float | None = None,
    publish_priorities: Mapping[str, Priority] | None = None,
) -> SubscriberLayers:
    """Decide every video track in ``track_sids`` the subscriber receives and apply it to its
    legs: the layer of each simulcast track, and which tracks are switched off, within
    ``bandwidth_estimate`` (bits per second for video, None: no limit but the profile's).
    ``publish_priorities``: each track's publish priority (standard when not given)."""
    publish_priorities = publish_priorities or {}
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
        # single stream is one layer of unknown size: on (at its measured rate) or switched off.
        leg = forwarder.leg(subscriber_sid)
        if forwarder.is_simulcast:
            sized = sorted(
                (state for state in forwarder.layer_states() if state.width > 0),
                key=lambda state: (state.width * state.height, state.bitrate),
            )
            forwarded = leg.forwarded_layer if leg is not None else None
        else:
            single = forwarder.stream_state()
            sized = [] if single is None else [single]
            forwarded = 0 if leg is not None and leg.enabled else None
        layers = [
            LayerOption(
                rank,
                state.width,
                state.height,
                state.bitrate,
                state.active,
                forwarded=state.index == forwarded,
            )
            for rank, state in enumerate(sized)
        ]
        subscription = VideoSubscription(
            sid,
            layers,
            publish_priority=publish_priorities.get(sid, "standard"),
            subscribe_priority=view.priorities.get(sid),
            render_hint=view.hints.get(sid, RenderHint()),
            dominant_speaker=forwarder.publisher_id == dominant_speaker,
        )
        chosen.append((forwarder, [state.index for state in sized], subscription))
    wanted: dict[str, int] = {}
    off: set[str] = set()
    if not chosen:
        return SubscriberLayers(wanted, frozenset())
    allocation = allocate(
        view.profile, [s for _, _, s in chosen], bandwidth_estimate=bandwidth_estimate
    )
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
