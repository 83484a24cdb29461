"""The bandwidth allocation rule (docs/bandwidth-allocation.md) on synthetic subscribers."""

from __future__ import annotations

import pytest

from atrium_media.extensions.allocation import (
    PREDICTED_HEADROOM,
    Allocation,
    Dimensions,
    LayerOption,
    RenderHint,
    VideoBandwidthProfile,
    VideoSubscription,
    allocate,
    effective_priority,
    nominal_bitrate,
    switch_off_changes,
)
from atrium_media.extensions.track_msp import parse_bandwidth_profile

# A browser's three VP8 simulcast layers of a 720p camera, with what they send.
LOW, MID, HIGH = 150_000, 500_000, 1_500_000


def layers(*, active: tuple[bool, bool, bool] = (True, True, True)) -> tuple[LayerOption, ...]:
    return (
        LayerOption(0, 320, 180, LOW, active[0]),
        LayerOption(1, 640, 360, MID, active[1]),
        LayerOption(2, 1280, 720, HIGH, active[2]),
    )


def track(
    sid: str,
    *,
    publish: str = "standard",
    subscribe: str | None = None,
    hint: RenderHint | None = None,
    dominant: bool = False,
    options: tuple[LayerOption, ...] | None = None,
) -> VideoSubscription:
    return VideoSubscription(
        track_sid=sid,
        layers=layers() if options is None else options,
        publish_priority=publish,  # type: ignore[arg-type]
        subscribe_priority=subscribe,  # type: ignore[arg-type]
        render_hint=hint or RenderHint(),
        dominant_speaker=dominant,
    )


def sized(width: int, height: int) -> RenderHint:
    return RenderHint(render_dimensions=Dimensions(width, height))


HINTED = VideoBandwidthProfile(
    client_track_switch_off_control="auto",
    content_preferences_mode="auto",
    track_switch_off_mode="detected",
)


def chosen(allocation: Allocation) -> dict[str, int | None]:
    return {t.track_sid: t.layer for t in allocation.tracks}


def test_effective_priority() -> None:
    profile = VideoBandwidthProfile(dominant_speaker_priority="high")
    assert effective_priority(track("a"), profile) == "standard"
    assert effective_priority(track("a", publish="low", subscribe="high"), profile) == "high"
    assert effective_priority(track("a", publish="high", subscribe="low"), profile) == "low"
    assert effective_priority(track("a", publish="low", dominant=True), profile) == "high"
    low_floor = VideoBandwidthProfile(dominant_speaker_priority="low")
    assert effective_priority(track("a", publish="high", dominant=True), low_floor) == "high"


@pytest.mark.parametrize(
    ("hint", "layer"),
    [
        (sized(160, 90), 0),  # a thumbnail never gets more than the smallest layer
        (sized(320, 180), 0),
        (sized(400, 225), 1),
        (sized(640, 360), 1),
        (sized(1920, 1080), 2),
        (sized(0, 0), 0),  # an element not laid out yet
        (sized(-5, 100), 0),
    ],
)
def test_wanted_layer_follows_the_render_size(hint: RenderHint, layer: int) -> None:
    result = allocate(HINTED, [track("a", hint=hint)], bandwidth_estimate=None)
    assert chosen(result) == {"a": layer}
    assert result.tracks[0].wanted_layer == layer
    assert result.budget is None and not result.over_budget


def test_render_dimensions_by_priority_without_client_sizes() -> None:
    profile = VideoBandwidthProfile()  # content preferences disabled: defaults per priority
    result = allocate(
        profile,
        [track("low", publish="low"), track("std"), track("high", publish="high")],
        bandwidth_estimate=None,
    )
    # QCIF fits the smallest layer; VGA's area is above 640x360, so it takes 720p, as HD does.
    assert chosen(result) == {"low": 0, "std": 2, "high": 2}
    # Hints are ignored when the client does not control sizes.
    result = allocate(profile, [track("a", hint=sized(160, 90))], bandwidth_estimate=None)
    assert chosen(result) == {"a": 2}
    custom = VideoBandwidthProfile(render_dimensions={"standard": Dimensions(320, 180)})
    assert chosen(allocate(custom, [track("a")], bandwidth_estimate=None)) == {"a": 0}


def test_grid_shares_evenly_and_switches_off_the_lowest_ranked() -> None:
    subs = [track("a", hint=sized(1280, 720)), track("b", hint=sized(1280, 720))]
    # Enough for both at MID, not for one at HIGH on top.
    result = allocate(HINTED, subs, bandwidth_estimate=2 * MID + 100_000)
    assert chosen(result) == {"a": 1, "b": 1}
    assert result.bitrate == 2 * MID
    # Enough for a HIGH and a MID: the first ranked (order given) goes up first.
    result = allocate(HINTED, subs, bandwidth_estimate=HIGH + MID)
    assert chosen(result) == {"a": 2, "b": 1}
    # Not enough for two minimums: the lower ranked one is switched off.
    low_priority = [track("a", publish="low", hint=sized(1280, 720)), track("b")]
    result = allocate(HINTED, low_priority, bandwidth_estimate=LOW + 10_000)
    assert chosen(result) == {"a": None, "b": 0}
    off = result.get("a")
    assert off is not None and off.reason == "bandwidth" and off.switched_off
    assert off.wanted_layer == 2  # still wanted: the publisher keeps encoding it
    assert result.get("missing") is None
    assert result.switched_off == {"a"}


def test_switch_off_is_strict_in_rank_order() -> None:
    # The high track's minimum does not fit; a cheaper lower-ranked one would, but stays off.
    cheap = (LayerOption(0, 160, 90, 50_000),)
    result = allocate(
        HINTED,
        [track("big", publish="high"), track("small", options=cheap)],
        bandwidth_estimate=100_000,
    )
    assert chosen(result) == {"big": None, "small": None}


def test_dominant_speaker_ranks_first_among_equals() -> None:
    subs = [track("a"), track("b", dominant=True)]
    result = allocate(HINTED, subs, bandwidth_estimate=LOW + 1)
    assert chosen(result) == {"a": None, "b": 0}


def test_subscriber_priority_outranks_publish_priority() -> None:
    subs = [track("a", publish="high", subscribe="low"), track("b")]
    result = allocate(HINTED, subs, bandwidth_estimate=LOW + 1)
    assert chosen(result) == {"a": None, "b": 0}


def test_switch_off_mode_disabled_degrades_instead() -> None:
    profile = VideoBandwidthProfile(track_switch_off_mode="disabled")
    result = allocate(profile, [track("a"), track("b")], bandwidth_estimate=LOW)
    assert chosen(result) == {"a": 0, "b": 0}
    assert result.over_budget and result.bitrate == 2 * LOW


def test_predicted_keeps_headroom_and_the_subscription_cap_applies() -> None:
    predicted = VideoBandwidthProfile(content_preferences_mode="auto")
    sub = [track("a", hint=sized(1280, 720))]
    assert chosen(allocate(predicted, sub, bandwidth_estimate=HIGH + 1)) == {"a": 1}
    result = allocate(predicted, sub, bandwidth_estimate=HIGH / PREDICTED_HEADROOM + 1)
    assert chosen(result) == {"a": 2}
    capped = VideoBandwidthProfile(
        content_preferences_mode="auto",
        track_switch_off_mode="detected",
        max_subscription_bitrate=MID,
    )
    result = allocate(capped, sub, bandwidth_estimate=10_000_000)
    assert chosen(result) == {"a": 1} and result.budget == MID
    assert chosen(allocate(capped, sub, bandwidth_estimate=None)) == {"a": 1}
    unlimited = VideoBandwidthProfile(content_preferences_mode="auto", max_subscription_bitrate=0)
    assert chosen(allocate(unlimited, sub, bandwidth_estimate=None)) == {"a": 2}


def test_presentation_serves_high_priority_first() -> None:
    profile = VideoBandwidthProfile(
        mode="presentation",
        track_switch_off_mode="detected",
        content_preferences_mode="auto",
    )
    subs = [
        track("cam", hint=sized(1280, 720)),
        track("screen", publish="high", hint=sized(1280, 720)),
    ]
    # HIGH for the screen first; what is left cannot pay the camera's minimum.
    result = allocate(profile, subs, bandwidth_estimate=HIGH + LOW - 1)
    assert chosen(result) == {"cam": None, "screen": 2}
    result = allocate(profile, subs, bandwidth_estimate=HIGH + LOW)
    assert chosen(result) == {"cam": 0, "screen": 2}
    # Grid with the same budget keeps both on at lower quality instead.
    grid = VideoBandwidthProfile(track_switch_off_mode="detected", content_preferences_mode="auto")
    assert chosen(allocate(grid, subs, bandwidth_estimate=HIGH + LOW - 1)) == {
        "cam": 1,
        "screen": 1,
    }


def test_presentation_starved_high_priority_switches_off_lower_ones() -> None:
    profile = VideoBandwidthProfile(mode="presentation", track_switch_off_mode="detected")
    cheap = (LayerOption(0, 160, 90, 10_000),)
    subs = [track("screen", publish="high"), track("cam", options=cheap)]
    assert chosen(allocate(profile, subs, bandwidth_estimate=LOW - 1)) == {
        "screen": None,
        "cam": None,
    }


def test_collaboration_gives_higher_priorities_more_but_keeps_everyone_on() -> None:
    profile = VideoBandwidthProfile(
        mode="collaboration",
        track_switch_off_mode="detected",
        content_preferences_mode="auto",
    )
    subs = [
        track("low", publish="low", hint=sized(1280, 720)),
        track("high", publish="high", hint=sized(1280, 720)),
    ]
    result = allocate(profile, subs, bandwidth_estimate=HIGH + LOW)
    assert chosen(result) == {"low": 0, "high": 2}
    grid = VideoBandwidthProfile(track_switch_off_mode="detected", content_preferences_mode="auto")
    assert chosen(allocate(grid, subs, bandwidth_estimate=HIGH + LOW)) == {"low": 1, "high": 1}


def test_subscriber_switch_off_by_render_hint() -> None:
    hint = RenderHint(enabled=False, render_dimensions=Dimensions(1280, 720))
    result = allocate(HINTED, [track("a", hint=hint), track("b")], bandwidth_estimate=None)
    a = result.get("a")
    assert a is not None and (a.layer, a.reason, a.wanted_layer) == (None, "subscriber", None)
    assert chosen(result)["b"] is not None
    enabled = RenderHint(enabled=True)  # no size hinted: the standard priority's VGA
    assert chosen(allocate(HINTED, [track("a", hint=enabled)], bandwidth_estimate=None))["a"] == 2
    # Without client control, an enabled:false hint means nothing.
    no_control = VideoBandwidthProfile()
    assert chosen(allocate(no_control, [track("a", hint=hint)], bandwidth_estimate=None)) == {
        "a": 2
    }


def test_max_tracks_keeps_the_best_ranked() -> None:
    profile = VideoBandwidthProfile(max_tracks=2)
    subs = [track("a", publish="low"), track("b"), track("c", publish="high"), track("d")]
    result = allocate(profile, subs, bandwidth_estimate=None)
    assert chosen(result) == {"a": None, "b": 2, "c": 2, "d": None}
    d = result.get("d")
    assert d is not None and d.reason == "max-tracks"
    unlimited = allocate(VideoBandwidthProfile(max_tracks=0), subs, bandwidth_estimate=None)
    assert chosen(unlimited) == {"a": 0, "b": 2, "c": 2, "d": 2}  # low priority: QCIF


def test_layers_that_do_not_arrive_are_not_chosen() -> None:
    top_off = track("a", hint=sized(1280, 720), options=layers(active=(True, True, False)))
    result = allocate(HINTED, [top_off], bandwidth_estimate=None)
    assert chosen(result) == {"a": 1}
    assert result.tracks[0].wanted_layer == 2  # so publisher hints turn it back on
    only_top = track("a", hint=sized(160, 90), options=layers(active=(False, False, True)))
    assert chosen(allocate(HINTED, [only_top], bandwidth_estimate=None)) == {"a": 2}
    silent = allocate(
        HINTED, [track("a", options=layers(active=(False, False, False)))], bandwidth_estimate=None
    )
    assert silent.tracks[0].reason == "no-media"
    empty = allocate(HINTED, [track("a", options=())], bandwidth_estimate=None)
    assert empty.tracks[0].reason == "no-media" and empty.tracks[0].wanted_layer is None


def test_unknown_sizes_are_estimated_and_unmeasured_rates_are_nominal() -> None:
    unseen = (
        LayerOption(0, 320, 180, 0),
        LayerOption(1, 0, 0, 0, active=False),
        LayerOption(2, 0, 0, 0, active=False),
    )
    result = allocate(
        HINTED, [track("a", hint=sized(1280, 720), options=unseen)], bandwidth_estimate=None
    )
    assert result.tracks[0].wanted_layer == 2  # 320x180 doubled twice
    assert result.tracks[0].bitrate == nominal_bitrate(320, 180)
    nothing_known = (LayerOption(0, 0, 0, 0), LayerOption(1, 0, 0, 0))
    result = allocate(
        HINTED, [track("a", hint=sized(160, 90), options=nothing_known)], bandwidth_estimate=None
    )
    assert result.tracks[0].wanted_layer == 1  # nothing to go by: do not turn layers off
    assert nominal_bitrate(1280, 720) > nominal_bitrate(640, 360) > nominal_bitrate(0, 100) == 0


def test_single_layer_tracks() -> None:
    single = (LayerOption(0, 640, 480, 800_000),)
    result = allocate(
        HINTED, [track("a", hint=sized(160, 90), options=single)], bandwidth_estimate=None
    )
    assert chosen(result) == {"a": 0}
    result = allocate(HINTED, [track("a", options=single)], bandwidth_estimate=500_000)
    assert chosen(result) == {"a": None}


def test_switch_off_changes() -> None:
    subs = [track("a", publish="low"), track("b")]
    roomy = allocate(HINTED, subs, bandwidth_estimate=None)
    tight = allocate(HINTED, subs, bandwidth_estimate=LOW + 1)
    assert switch_off_changes(None, roomy) == ([], [])
    assert switch_off_changes(None, tight) == (["a"], [])
    assert switch_off_changes(roomy, tight) == (["a"], [])
    assert switch_off_changes(tight, tight) == ([], [])
    assert switch_off_changes(tight, roomy) == ([], ["a"])


def test_profile_from_rsp() -> None:
    default = VideoBandwidthProfile.from_rsp(None, render_hints=False, track_switch_off=False)
    assert default == VideoBandwidthProfile(track_switch_off_mode="disabled")
    body = parse_bandwidth_profile(
        {
            "video": {
                "mode": "presentation",
                "max_subscription_bandwidth": 2_000_000,
                "active_speaker_priority": "high",
                "track_switch_off": "detected",
            }
        }
    )
    profile = VideoBandwidthProfile.from_rsp(body, render_hints=True, track_switch_off=True)
    assert (profile.mode, profile.max_subscription_bitrate) == ("presentation", 2_000_000)
    assert profile.dominant_speaker_priority == "high"
    assert profile.track_switch_off_mode == "detected"
    assert profile.client_track_switch_off_control == "auto"
    assert profile.content_preferences_mode == "auto"
    # An empty profile: twilio-video's defaults, with hints driving switch-off and sizes.
    empty = VideoBandwidthProfile.from_rsp(
        parse_bandwidth_profile({}), render_hints=True, track_switch_off=True
    )
    assert (empty.mode, empty.track_switch_off_mode) == ("grid", "predicted")
    assert empty.client_track_switch_off_control == "auto"
    # The deprecated options turn the matching client control off.
    legacy = VideoBandwidthProfile.from_rsp(
        parse_bandwidth_profile(
            {"video": {"max_tracks": 3, "render_dimensions": {"low": {"width": 90, "height": 60}}}}
        ),
        render_hints=True,
        track_switch_off=True,
    )
    assert legacy.client_track_switch_off_control == "disabled"
    assert legacy.content_preferences_mode == "disabled"
    assert legacy.max_tracks == 3
    assert legacy.render_dimensions["low"] == Dimensions(90, 60)
    assert legacy.render_dimensions["high"] == Dimensions(1280, 720)
    # Without a track_switch_off channel the client could not be told: never switch off.
    silent = VideoBandwidthProfile.from_rsp(body, render_hints=False, track_switch_off=False)
    assert silent.track_switch_off_mode == "disabled"
    assert silent.client_track_switch_off_control == "disabled"
