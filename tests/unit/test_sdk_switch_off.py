"""The Python SDK's bandwidth profile, track priority, track switch-off and render hints, without a
server: the profile's wire form (read back with the worker's own parser), what ``connect`` asks
for, the MSP messages each call sends (parsed with the worker's parser), the render hints'
one-in-flight rule and resend backoff, and the switch-off events on track, publication,
participant and room."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiortc import MediaStreamTrack
from pyee.asyncio import AsyncIOEventEmitter

import atrium_video.media_signaling as msp
from atrium_media.extensions.allocation import Dimensions, VideoBandwidthProfile
from atrium_media.extensions.msp import MspReady
from atrium_media.extensions.track_msp import (
    RenderHintResult,
    RenderHintResults,
    RenderHintsReply,
    RenderHintsRequest,
    TrackPriorityRequest,
    TrackSwitchOffMessage,
    parse_bandwidth_profile,
    parse_track_client_message,
)
from atrium_video import BandwidthProfile, RemoteVideoTrack, Room, TwilioError
from atrium_video.bandwidth_profile import bandwidth_profile_of
from tests.support.waiting import eventually

ANN = "PA" + "a" * 32
CAM = "MT" + "a" * 32
MIC = "MT" + "b" * 32
OTHER = "MT" + "c" * 32
EXTENSIONS = ("track_priority", "track_switch_off", "render_hints")
GRANTED = {name: {"transport": {"type": "data-channel", "label": name}} for name in EXTENSIONS}
MANUAL = {
    "video": {"client_track_switch_off_control": "manual", "content_preferences_mode": "manual"}
}


class FakeChannel(AsyncIOEventEmitter):
    """What the SDK uses of an RTCDataChannel; ``sent`` holds the raw JSON text sent."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.readyState = "open"
        self.sent: list[str] = []

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self.sent]

    def send(self, data: str) -> None:
        assert isinstance(data, str)
        self.sent.append(data)

    def receive(self, message: dict[str, Any] | str) -> None:
        self.emit("message", message if isinstance(message, str) else json.dumps(message))

    def close(self) -> None:
        self.readyState = "closed"
        self.emit("close")


class Silent(MediaStreamTrack):
    """A receiving track that never yields a frame."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._forever: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        await self._forever
        raise AssertionError


def record(emitter: Any, *names: str) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    for name in names:
        emitter.on(name, lambda *args, name=name: seen.append((name, *args)))
    return seen


def bind(room: Room, *names: str) -> dict[str, FakeChannel]:
    channels = {}
    for name in names:
        channel = FakeChannel(name)
        room._on_datachannel(channel)  # type: ignore[arg-type]
        channels[name] = channel
    return channels


def client_messages(channel: FakeChannel) -> list[Any]:
    """What the worker's own parser makes of every message sent on ``channel``."""
    return [parse_track_client_message(text) for text in channel.sent]


async def with_ann(room: Room, *, subscribed: tuple[str, ...] = (CAM,)) -> None:
    """Ann is in the room with a camera and a microphone; ``subscribed`` arrive here."""
    for sid in subscribed:
        room._receivers[f"id-{sid}"] = Silent()
    await room._apply_state(
        {
            "participants": [
                {
                    "sid": ANN,
                    "identity": "ann",
                    "state": "connected",
                    "revision": 1,
                    "tracks": [
                        {"sid": CAM, "kind": "video", "name": "cam", "enabled": True},
                        {"sid": MIC, "kind": "audio", "name": "mic", "enabled": True},
                    ],
                }
            ],
            "subscribed": {
                "revision": 1,
                "tracks": [{"sid": sid, "id": f"id-{sid}"} for sid in subscribed],
            },
            "media_signaling": GRANTED,
        },
        full=False,
    )


def camera(room: Room) -> RemoteVideoTrack:
    track = room.participants[ANN].tracks[CAM].track
    assert isinstance(track, RemoteVideoTrack)
    return track


# The profile ------------------------------------------------------------------------------------
def test_python_names_go_out_under_twilio_video_wire_names_and_the_worker_reads_them_back() -> None:
    profile = bandwidth_profile_of(
        {
            "video": {
                "mode": "collaboration",
                "max_subscription_bitrate": 2_500_000,
                "dominant_speaker_priority": "high",
                "track_switch_off_mode": "detected",
                "client_track_switch_off_control": "manual",
                "content_preferences_mode": "auto",
            }
        }
    )
    assert profile is not None
    payload = profile.payload()
    assert payload == {
        "video": {
            "mode": "collaboration",
            "max_subscription_bandwidth": 2_500_000,
            "active_speaker_priority": "high",
            "track_switch_off": "detected",
        }
    }
    assert profile.client_track_switch_off_control == "manual"
    assert profile.content_preferences_mode == "auto"
    assert profile.wants_render_hints
    parsed = VideoBandwidthProfile.from_rsp(
        parse_bandwidth_profile(json.loads(json.dumps(payload))),
        render_hints=True,
        track_switch_off=True,
    )
    assert parsed.mode == "collaboration"
    assert parsed.max_subscription_bitrate == 2_500_000
    assert parsed.dominant_speaker_priority == "high"
    assert parsed.track_switch_off_mode == "detected"
    assert parsed.client_track_switch_off_control != "disabled"
    assert parsed.content_preferences_mode != "disabled"


def test_deprecated_max_tracks_and_render_dimensions_disable_client_control() -> None:
    profile = bandwidth_profile_of(
        {
            "video": {
                "max_tracks": 2,
                "render_dimensions": {"low": (160, 90), "high": {"width": 1280, "height": 720}},
            }
        }
    )
    assert profile is not None
    assert profile.client_track_switch_off_control == "disabled"
    assert profile.content_preferences_mode == "disabled"
    assert not profile.wants_render_hints
    payload = profile.payload()
    assert payload == {
        "video": {
            "max_tracks": 2,
            "render_dimensions": {
                "low": {"height": 90, "width": 160},
                "high": {"height": 720, "width": 1280},
            },
        }
    }
    parsed = VideoBandwidthProfile.from_rsp(
        parse_bandwidth_profile(payload), render_hints=False, track_switch_off=True
    )
    assert parsed.max_tracks == 2
    assert parsed.render_dimensions["low"] == Dimensions(160, 90)
    assert parsed.render_dimensions["high"] == Dimensions(1280, 720)
    assert parsed.client_track_switch_off_control == "disabled"
    # Only one of them: the other control stays with the client (render hints are asked for).
    only_tracks = bandwidth_profile_of({"video": {"max_tracks": 1}})
    assert only_tracks is not None and only_tracks.wants_render_hints
    assert only_tracks.content_preferences_mode == "auto"


def test_an_empty_profile_is_a_profile() -> None:
    empty: list[dict[str, Any]] = [{}, {"video": {}}]
    for value in empty:
        profile = bandwidth_profile_of(value)
        assert profile is not None
        assert profile.client_track_switch_off_control == "auto"
        assert profile.payload() in ({}, {"video": {}})
    assert bandwidth_profile_of(None) is None
    given = BandwidthProfile()
    assert bandwidth_profile_of(given) is given


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ({"audio": {}}, "unknown bandwidth_profile option"),
        ({"video": {"maxTracks": 2}}, "did you mean 'max_tracks'"),
        ({"video": {"mode": "gallery"}}, "mode must be one of"),
        ({"video": {"max_subscription_bitrate": -1}}, "must not be negative"),
        ({"video": {"max_subscription_bitrate": "1M"}}, "finite number"),
        ({"video": {"max_subscription_bitrate": float("inf")}}, "finite number"),
        ({"video": {"max_tracks": True}}, "finite number"),
        ({"video": {"dominant_speaker_priority": "urgent"}}, "dominant_speaker_priority"),
        ({"video": {"track_switch_off_mode": "never"}}, "track_switch_off_mode"),
        ({"video": {"client_track_switch_off_control": "disabled"}}, "must be one of"),
        ({"video": {"content_preferences_mode": "Manual"}}, "must be one of"),
        (
            {"video": {"max_tracks": 1, "client_track_switch_off_control": "manual"}},
            "max_tracks is deprecated",
        ),
        (
            {"video": {"render_dimensions": {}, "content_preferences_mode": "auto"}},
            "render_dimensions is deprecated",
        ),
        ({"video": {"render_dimensions": {"medium": (1, 1)}}}, "priority must be one of"),
        ({"video": {"render_dimensions": {"low": (160,)}}}, "(width, height)"),
        ({"video": {"render_dimensions": {"low": {"w": 1, "h": 2}}}}, "'width' and 'height'"),
        ({"video": "grid"}, "must be a mapping"),
    ],
)
def test_a_bad_profile_is_refused_with_the_option_named(
    value: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        bandwidth_profile_of(value)


@pytest.mark.parametrize(
    ("profile", "asked"),
    [
        (None, set()),
        ({}, set(EXTENSIONS)),
        (MANUAL, set(EXTENSIONS)),
        (
            {"video": {"max_tracks": 3, "render_dimensions": {"low": (176, 144)}}},
            {"track_priority", "track_switch_off"},
        ),
    ],
)
async def test_connect_sends_the_profile_and_asks_for_the_extensions_as_twilio_video(
    make_room: Any, profile: dict[str, Any] | None, asked: set[str]
) -> None:
    room = make_room(bandwidth_profile=profile, dominant_speaker=True)
    room.state = "connecting"
    sent: list[dict[str, Any]] = []

    async def open_first(body: dict[str, Any]) -> Any:
        sent.append(body)
        raise TwilioError(53000)

    room._open_first = open_first
    with pytest.raises(TwilioError):
        await room._connect([], 5)
    (body,) = sent
    assert set(body["media_signaling"]) == asked | {"active_speaker"}
    if profile is None:
        assert "bandwidth_profile" not in body
    else:
        expected = bandwidth_profile_of(profile)
        assert expected is not None
        assert body["bandwidth_profile"] == expected.payload()
        parse_bandwidth_profile(body["bandwidth_profile"])  # the worker accepts it


# Track priority ---------------------------------------------------------------------------------
async def test_priorities_wait_for_the_channel_then_follow_each_change(make_room: Any) -> None:
    room = make_room(bandwidth_profile={})
    await with_ann(room)
    track = camera(room)
    assert track.priority is None
    assert track.set_priority("high") is track
    assert track.priority == "high"
    with pytest.raises(ValueError, match="priority must be"):
        track.set_priority("urgent")
    channels = bind(room, "track_priority")
    channel = channels["track_priority"]
    assert client_messages(channel) == [
        MspReady(type="ready"),
        TrackPriorityRequest(type="track_priority", track=CAM, subscribe="high"),
    ]
    track.set_priority("high")  # unchanged: nothing sent
    track.set_priority(None)
    track.set_priority("low")
    assert channel.messages[2:] == [
        {"type": "track_priority", "track": CAM, "subscribe": None},
        {"type": "track_priority", "track": CAM, "subscribe": "low"},
    ]
    # A new channel (a media worker failover): every priority again.
    fresh = bind(room, "track_priority")["track_priority"]
    assert fresh.messages == [
        {"type": "ready"},
        {"type": "track_priority", "track": CAM, "subscribe": "low"},
    ]
    # A server that lost the state may say so: everything again.
    fresh.receive({"type": "client_reset"})
    assert fresh.messages[-1] == {"type": "track_priority", "track": CAM, "subscribe": "low"}
    # Unsubscribed: the server's copy is cleared, so a resubscription starts from scratch.
    await room._apply_state({"subscribed": {"revision": 2, "tracks": []}}, full=False)
    assert fresh.messages[-1] == {"type": "track_priority", "track": CAM, "subscribe": None}
    count = len(fresh.sent)
    track.set_priority("high")  # an ended track: nothing more
    assert len(fresh.sent) == count


async def test_without_a_profile_priorities_are_kept_locally_only(make_room: Any) -> None:
    room = make_room()
    await with_ann(room)
    track = camera(room)
    track.set_priority("high")
    assert track.priority == "high"
    assert room._track_priority_signaling is None
    with pytest.raises(RuntimeError, match="client_track_switch_off_control"):
        track.switch_off()
    with pytest.raises(RuntimeError, match="content_preferences_mode"):
        track.set_content_preferences(render_dimensions=(160, 90))


# Render hints -----------------------------------------------------------------------------------
async def test_switch_off_and_on_are_render_hints_one_in_flight_at_a_time(make_room: Any) -> None:
    room = make_room(bandwidth_profile=MANUAL)
    await with_ann(room)
    track = camera(room)
    assert track.switch_off() is track  # before the channel: kept
    channel = bind(room, "render_hints")["render_hints"]
    ready, first = client_messages(channel)
    assert ready == MspReady(type="ready")
    assert isinstance(first, RenderHintsRequest)
    assert first.subscriber.id == 1
    assert [(h.track, h.enabled, h.render_dimensions) for h in first.subscriber.hints] == [
        (CAM, False, None)
    ]
    # Until the server answers id 1 nothing more goes; then only what changed, merged.
    track.switch_on()
    track.set_content_preferences(render_dimensions=(320, 180))
    track.set_content_preferences(render_dimensions={"width": 640, "height": 360})
    assert len(channel.sent) == 2
    channel.receive({"type": "render_hints", "subscriber": {"id": 99, "hints": []}})  # not ours
    assert len(channel.sent) == 2
    channel.receive(
        RenderHintsReply(
            subscriber=RenderHintResults(id=1, hints=[RenderHintResult(track=CAM)])
        ).to_json()
    )
    assert room._render_hints_signaling is not None
    assert room._render_hints_signaling.results == {CAM: "OK"}
    assert channel.messages[2] == {
        "type": "render_hints",
        "subscriber": {
            "id": 2,
            "hints": [
                {"track": CAM, "enabled": True, "render_dimensions": {"height": 360, "width": 640}}
            ],
        },
    }
    second = client_messages(channel)[2]
    assert isinstance(second, RenderHintsRequest)
    # The same size again changes nothing, so once answered nothing more is sent.
    track.set_content_preferences(render_dimensions=(640, 360))
    channel.receive(
        {"type": "render_hints", "subscriber": {"id": 2, "hints": [{"track": CAM, "result": "OK"}]}}
    )
    assert len(channel.sent) == 3
    # A new channel gets every hint.
    fresh = bind(room, "render_hints")["render_hints"]
    assert fresh.messages[1]["subscriber"]["hints"] == [
        {"track": CAM, "enabled": True, "render_dimensions": {"height": 360, "width": 640}}
    ]


async def test_without_an_answer_every_hint_is_sent_again_waiting_twice_as_long() -> None:
    signaling = msp.RenderHintsSignaling(response_seconds=0.1)
    channel = FakeChannel("render_hints")
    signaling.bind(channel)  # type: ignore[arg-type]
    signaling.set_hint(CAM, enabled=False)
    signaling.set_hint(OTHER, render_dimensions=(160, 90))
    assert [m["subscriber"]["id"] for m in channel.messages[1:]] == [1]
    await eventually(lambda: len(channel.sent) >= 3, timeout=2, message="the first resend")
    await eventually(lambda: len(channel.sent) >= 4, timeout=2, message="the second resend")
    resent = channel.messages[3]["subscriber"]
    assert resent["id"] == 3
    assert sorted(resent["hints"], key=lambda h: h["track"]) == [
        {"track": CAM, "enabled": False},
        {"track": OTHER, "render_dimensions": {"height": 90, "width": 160}},
    ]
    # An answer to the last one: the wait is back to its start, and nothing is pending.
    channel.receive({"type": "render_hints", "subscriber": {"id": 3, "hints": []}})
    assert signaling._wait == 0.1 and signaling._in_flight is None
    signaling.teardown()


async def test_auto_control_keeps_hints_to_the_server_and_refuses_manual_calls(
    make_room: Any,
) -> None:
    room = make_room(bandwidth_profile={"video": {"mode": "grid"}})
    await with_ann(room)
    track = camera(room)
    with pytest.raises(RuntimeError, match="'manual'"):
        track.switch_off()
    with pytest.raises(RuntimeError, match="'manual'"):
        track.switch_on()
    with pytest.raises(RuntimeError, match="'manual'"):
        track.set_content_preferences(render_dimensions=(160, 90))
    with pytest.raises(ValueError, match="width"):
        track.set_content_preferences(render_dimensions=(160,))
    channel = bind(room, "render_hints")["render_hints"]
    assert channel.messages == [{"type": "ready"}]


# Switch-off -------------------------------------------------------------------------------------
async def test_switch_off_messages_reach_track_publication_participant_and_room(
    make_room: Any,
) -> None:
    room = make_room(bandwidth_profile=MANUAL)
    await with_ann(room)
    channel = bind(room, "track_switch_off")["track_switch_off"]
    assert channel.messages == [{"type": "ready"}]
    track = camera(room)
    ann = room.participants[ANN]
    publication = ann.tracks[CAM]
    seen = {
        "track": record(track, "switched_off", "switched_on"),
        "publication": record(publication, "track_switched_off", "track_switched_on"),
        "participant": record(ann, "track_switched_off", "track_switched_on"),
        "room": record(room, "track_switched_off", "track_switched_on"),
    }
    assert not track.is_switched_off
    channel.receive(TrackSwitchOffMessage(off=[CAM]).to_json())
    assert track.is_switched_off
    channel.receive(TrackSwitchOffMessage(off=[CAM]).to_json())  # no change: no event
    channel.receive({"type": "track_switch_off", "on": [CAM]})
    assert not track.is_switched_off
    # In both lists: off wins (twilio-video.js).
    channel.receive({"type": "track_switch_off", "off": [CAM], "on": [CAM]})
    assert track.is_switched_off
    channel.receive({"type": "something_else", "on": [CAM]})
    channel.receive("not json")
    assert seen == {
        "track": [("switched_off", track), ("switched_on", track), ("switched_off", track)],
        "publication": [
            ("track_switched_off", track),
            ("track_switched_on", track),
            ("track_switched_off", track),
        ],
        "participant": [
            ("track_switched_off", track, publication),
            ("track_switched_on", track, publication),
            ("track_switched_off", track, publication),
        ],
        "room": [
            ("track_switched_off", track, publication, ann),
            ("track_switched_on", track, publication, ann),
            ("track_switched_off", track, publication, ann),
        ],
    }


async def test_a_track_switched_off_before_it_is_subscribed_starts_switched_off(
    make_room: Any,
) -> None:
    room = make_room(bandwidth_profile=MANUAL)
    await room._apply_state({"media_signaling": GRANTED}, full=False)
    channel = bind(room, "track_switch_off")["track_switch_off"]
    events = record(room, "track_switched_off", "track_switched_on")
    channel.receive({"type": "track_switch_off", "off": [CAM, OTHER]})
    assert room._switched_off == {CAM, OTHER}
    await with_ann(room)
    assert camera(room).is_switched_off
    assert events == []  # its first state, not a change
    channel.receive({"type": "track_switch_off", "on": [CAM]})
    assert not camera(room).is_switched_off
    assert [name for name, *_ in events] == ["track_switched_on"]


# Changing the profile ---------------------------------------------------------------------------
class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, body: dict[str, Any]) -> bool:
        self.sent.append(body)
        return True

    async def close(self) -> None:
        pass


async def test_set_bandwidth_profile_sends_an_update_when_it_changed(make_room: Any) -> None:
    room = make_room(bandwidth_profile=MANUAL)
    transport = FakeTransport()
    room._transport = transport
    room._session = "session"
    await room.set_bandwidth_profile({"video": {"max_subscription_bitrate": 300_000}})
    (update,) = transport.sent
    assert update["type"] == "update" and update["session"] == "session"
    assert update["bandwidth_profile"] == {"video": {"max_subscription_bandwidth": 300_000}}
    # The control modes of connect are kept when not named.
    assert room.bandwidth_profile is not None
    assert room.bandwidth_profile.client_track_switch_off_control == "manual"
    assert room.bandwidth_profile.content_preferences_mode == "manual"
    await room.set_bandwidth_profile({"video": {"max_subscription_bitrate": 300_000}})
    assert len(transport.sent) == 1  # unchanged
    with pytest.raises(ValueError, match="fixed when connecting"):
        await room.set_bandwidth_profile({"video": {"max_tracks": 1}})
    with pytest.raises(ValueError, match="fixed when connecting"):
        await room.set_bandwidth_profile({"video": {"content_preferences_mode": "auto"}})
    # Later updates (a track enabled, say) do not repeat it.
    await room._send_update()
    assert "bandwidth_profile" not in transport.sent[-1]


async def test_set_bandwidth_profile_needs_a_profile_from_connect(make_room: Any) -> None:
    room = make_room()
    with pytest.raises(RuntimeError, match="connect"):
        await room.set_bandwidth_profile({"video": {}})


async def test_a_new_peer_connection_says_the_profile_again(make_room: Any) -> None:
    """After a media worker failover (``create-offer``) the adopting worker gets the profile in
    the update that carries the new offer."""
    room = make_room(bandwidth_profile=MANUAL)
    transport = FakeTransport()
    room._transport = transport
    room._session = "session"
    async with room._lock:
        await room._restart_media()
    offer = transport.sent[-1]
    assert offer["peer_connections"][0]["description"]["type"] == "offer"
    assert offer["bandwidth_profile"] == {"video": {}}
    await room._send_update()
    assert "bandwidth_profile" not in transport.sent[-1]
