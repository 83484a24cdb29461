"""Simulcast in a hosted room (atrium_media.signaling.bandwidth): the layer each subscriber gets
and the encodings each publisher is asked for, on a fake router."""

from __future__ import annotations

from dataclasses import dataclass, field

from atrium_media.extensions.allocation import Dimensions, RenderHint, VideoBandwidthProfile
from atrium_media.forwarding import AUTO_LAYER, LayerState, UnknownTrack
from atrium_media.signaling.bandwidth import (
    EVERY_LAYER,
    SubscriberView,
    allocate_layers,
    encodings_needed,
    layers_by_mid,
    merged_hint,
    publisher_hints_message,
    video_profile_of,
)

SMALL, MEDIUM, LARGE = (320, 180), (640, 360), (1280, 720)


def state(
    index: int, size: tuple[int, int], *, bitrate: int = 100_000, active: bool = True
) -> LayerState:
    return LayerState(index, 1000 + index, size[0], size[1], bitrate, active)


@dataclass
class FakeForwarder:
    track_id: str
    layers: tuple[LayerState, ...]
    publisher_id: str = "PApublisher"
    legs: dict[str, int | None] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)

    @property
    def is_simulcast(self) -> bool:
        return len(self.layers) > 1

    def layer_states(self) -> tuple[LayerState, ...]:
        return self.layers

    def set_leg_layer(self, subscriber_id: str, layer: int | None) -> None:
        self.legs[subscriber_id] = layer

    def set_leg_enabled(self, subscriber_id: str, enabled: bool) -> None:
        self.enabled[subscriber_id] = enabled

    def leg(self, subscriber_id: str) -> None:
        return None  # no RTCP feedback: these tests decide without a downlink budget

    def stream_state(self) -> LayerState | None:
        return None if self.is_simulcast or not self.layers else self.layers[0]


@dataclass
class FakeRouter:
    tracks: dict[str, FakeForwarder]

    def published_track(self, track_id: str) -> FakeForwarder:
        if track_id not in self.tracks:
            raise UnknownTrack(track_id)
        return self.tracks[track_id]


def profile(width: int, height: int) -> VideoBandwidthProfile:
    size = {"standard": {"width": width, "height": height}}
    found = video_profile_of({"bandwidth_profile": {"video": {"render_dimensions": size}}})
    assert found is not None
    return found


def view(width: int, height: int) -> SubscriberView:
    return SubscriberView(profile(width, height))


HINTED = video_profile_of(
    {"bandwidth_profile": {"video": {"mode": "grid"}}}, render_hints=True, track_switch_off=True
)


def test_each_subscriber_gets_the_smallest_layer_that_covers_its_render_size() -> None:
    # SSRC order is not size order: sizes come from the key frames.
    cam = FakeForwarder("MTcam", (state(0, LARGE), state(1, SMALL), state(2, MEDIUM)))
    router = FakeRouter({"MTcam": cam})
    wanted = allocate_layers(router, "PAbob", ["MTcam", "MTgone"], view(320, 180), None)
    assert cam.legs["PAbob"] == 1 and wanted.wanted == {"MTcam": 1}
    assert cam.enabled["PAbob"] and wanted.switched_off == frozenset()
    wanted = allocate_layers(router, "PAcarol", ["MTcam"], view(1280, 720), None)
    assert cam.legs["PAcarol"] == 0 and wanted.wanted == {"MTcam": 0}
    allocate_layers(router, "PAdan", ["MTcam"], view(600, 340), None)
    assert cam.legs["PAdan"] == 2


def test_layers_of_unknown_size_leave_the_leg_on_the_largest_that_arrives() -> None:
    cam = FakeForwarder("MTcam", (state(0, (0, 0)), state(1, (0, 0))))
    wanted = allocate_layers(FakeRouter({"MTcam": cam}), "PAbob", ["MTcam"], view(320, 180), None)
    assert cam.legs["PAbob"] == AUTO_LAYER and cam.enabled["PAbob"]
    assert wanted.wanted == {"MTcam": EVERY_LAYER}


def test_single_stream_tracks_are_left_alone() -> None:
    cam = FakeForwarder("MTcam", (state(0, LARGE),))
    router = FakeRouter({"MTcam": cam})
    decided = allocate_layers(router, "PAbob", ["MTcam"], view(320, 180), None)
    assert decided.wanted == {} and decided.switched_off == frozenset()
    assert cam.legs == {} and cam.enabled == {"PAbob": True}


def test_single_stream_tracks_beyond_max_tracks_or_the_budget_are_switched_off() -> None:
    """SDK publishers, H.264 and VP8 without simulcast: one layer, on or off."""
    one = FakeForwarder("MTone", (state(0, (0, 0), bitrate=400_000),))
    two = FakeForwarder("MTtwo", (state(0, (0, 0), bitrate=400_000),))
    router = FakeRouter({"MTone": one, "MTtwo": two})
    tracks = ["MTone", "MTtwo"]
    limited = video_profile_of(
        {"bandwidth_profile": {"video": {"max_tracks": 1}}}, track_switch_off=True
    )
    assert limited is not None
    decided = allocate_layers(router, "PAbob", tracks, SubscriberView(limited), None)
    assert decided.switched_off == {"MTtwo"}
    assert one.enabled["PAbob"] and not two.enabled["PAbob"]
    grid = video_profile_of({"bandwidth_profile": {"video": {}}}, track_switch_off=True)
    assert grid is not None
    decided = allocate_layers(
        router, "PAbob", tracks, SubscriberView(grid), None, bandwidth_estimate=600_000
    )
    assert decided.switched_off == {"MTtwo"}  # one fits in 600 kbit/s, not two
    decided = allocate_layers(
        router, "PAbob", tracks, SubscriberView(grid), None, bandwidth_estimate=1_200_000
    )
    assert decided.switched_off == frozenset()
    assert one.enabled["PAbob"] and two.enabled["PAbob"] and decided.wanted == {}


def test_a_track_the_subscriber_switched_off_is_not_forwarded_and_comes_back() -> None:
    cam = FakeForwarder("MTcam", (state(0, SMALL), state(1, LARGE)))
    screen = FakeForwarder("MTscreen", (state(0, LARGE),))  # a single stream
    router = FakeRouter({"MTcam": cam, "MTscreen": screen})
    assert HINTED is not None
    both = ["MTcam", "MTscreen"]
    off = RenderHint(enabled=False)
    decided = allocate_layers(
        router, "PAbob", both, SubscriberView(HINTED, {"MTcam": off, "MTscreen": off}), None
    )
    assert decided.switched_off == {"MTcam", "MTscreen"}
    assert cam.enabled["PAbob"] is False and screen.enabled["PAbob"] is False
    small = merged_hint(off, True, Dimensions(160, 90))
    assert small == RenderHint(enabled=True, render_dimensions=Dimensions(160, 90))
    assert merged_hint(small, None, None) == small  # a hint carries only what changed
    hints = {"MTcam": small, "MTscreen": merged_hint(off, True, None)}
    decided = allocate_layers(router, "PAbob", both, SubscriberView(HINTED, hints), None)
    assert decided.switched_off == frozenset()
    assert cam.enabled["PAbob"] and screen.enabled["PAbob"] and cam.legs["PAbob"] == 0


def test_encodings_needed_follow_the_largest_wanted_layer() -> None:
    layers = (state(0, SMALL), state(1, MEDIUM), state(2, LARGE))
    assert encodings_needed(layers, {0}) == (True, False, False)
    assert encodings_needed(layers, {0, 1}) == (True, True, False)
    assert encodings_needed(layers, {2}) == (True, True, True)
    assert encodings_needed(layers, {EVERY_LAYER}) == (True, True, True)
    assert encodings_needed(layers, set()) == (True, False, False)  # nobody: the smallest only
    # By size, not by position; a layer never seen stays on (it may be the one wanted).
    shuffled = (state(0, LARGE), state(1, SMALL), state(2, (0, 0)))
    assert encodings_needed(shuffled, {1}) == (False, True, True)
    # The largest wanted by size: the SSRC index of the small layer is the higher one here.
    assert encodings_needed(shuffled, {0, 1}) == (True, True, True)


def test_publisher_hints_message_is_what_twilio_video_reads() -> None:
    message = publisher_hints_message(3, {"MTcam": (True, False)})
    assert message.model_dump(mode="json") == {
        "type": "publisher_hints",
        "publisher": {
            "id": 3,
            "hints": [
                {
                    "track": "MTcam",
                    "encodings": [
                        {"layer_index": 0, "enabled": True},
                        {"layer_index": 1, "enabled": False},
                    ],
                }
            ],
        },
    }


def test_video_profile_of_a_body_without_one_or_with_garbage() -> None:
    assert video_profile_of({}) is None
    assert video_profile_of({"bandwidth_profile": {"video": {"mode": 7}}}) is None
    assert profile(320, 180).render_dimensions["standard"].width == 320


def test_layers_by_mid_reads_the_offer_sim_group() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "o=- 1 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0",
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
            "c=IN IP4 0.0.0.0",
            "a=mid:0",
            "a=sendonly",
            "a=rtpmap:96 VP8/90000",
            "a=rtpmap:97 rtx/90000",
            "a=fmtp:97 apt=96",
            "a=ssrc-group:FID 1 2",
            "a=ssrc-group:FID 3 4",
            "a=ssrc-group:SIM 1 3",
            "a=ssrc:1 cname:x",
            "a=ssrc:2 cname:x",
            "a=ssrc:3 cname:x",
            "a=ssrc:4 cname:x",
            "",
        ]
    )
    assert layers_by_mid(sdp) == {"0": [(1, 2), (3, 4)]}
    assert layers_by_mid("not sdp") == {}
