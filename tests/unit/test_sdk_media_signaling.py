"""The Python SDK's media signaling client, without a server: what ``connect`` asks for, how the
extension channels are bound, what the answers do to the object model, the network quality
request cadence, and remote participants' reconnecting states."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pyee.asyncio import AsyncIOEventEmitter

import atrium_video.media_signaling as msp
from atrium_media.extensions.msp import NetworkQualityRequest, parse_client_message
from atrium_video import NetworkQualityStats, Room, TwilioError
from atrium_video.network_quality import network_quality_verbosity
from tests.support.sdk import ME
from tests.support.waiting import eventually

ANN = "PA" + "a" * 32
BEN = "PA" + "b" * 32
GRANTED = {
    "active_speaker": {"transport": {"type": "data-channel", "label": "active_speaker"}},
    "network_quality": {"transport": {"type": "data-channel", "label": "network_quality"}},
}


class FakeChannel(AsyncIOEventEmitter):
    """What the SDK uses of an RTCDataChannel; ``sent`` holds the decoded messages."""

    def __init__(self, label: str, state: str = "open") -> None:
        super().__init__()
        self.label = label
        self.readyState = state
        self.sent: list[dict[str, Any]] = []
        self.sent_at: list[float] = []

    def send(self, data: str) -> None:
        assert isinstance(data, str)  # MSP messages are JSON text
        self.sent.append(json.loads(data))
        self.sent_at.append(time.monotonic())

    def open(self) -> None:
        self.readyState = "open"
        self.emit("open")

    def receive(self, message: dict[str, Any]) -> None:
        self.emit("message", json.dumps(message))

    def close(self) -> None:
        self.readyState = "closed"
        self.emit("close")


def entry(sid: str, identity: str, revision: int, state: str = "connected") -> dict[str, Any]:
    return {
        "sid": sid,
        "identity": identity,
        "state": state,
        "revision": revision,
        "tracks": [{"sid": "MT" + sid[2:], "kind": "audio", "name": "mic", "enabled": True}],
    }


def record(emitter: Any, *names: str) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    for name in names:
        emitter.on(name, lambda *args, name=name: seen.append((name, *args)))
    return seen


# connect options ---------------------------------------------------------------------------------
def test_network_quality_verbosity_mirrors_twilio_video_defaults() -> None:
    assert network_quality_verbosity(False) is None
    assert network_quality_verbosity(True) == (1, 0)
    assert network_quality_verbosity({"local": 1, "remote": 1}) == (1, 1)
    assert network_quality_verbosity({"local": 3, "remote": 3}) == (3, 3)
    assert network_quality_verbosity({"remote": 2}) == (1, 2)
    assert network_quality_verbosity({}) == (1, 0)
    # Out of range or not a number: the default, as NetworkQualityConfigurationImpl does.
    assert network_quality_verbosity({"local": 0, "remote": 4}) == (1, 0)
    assert network_quality_verbosity({"local": 2.0, "remote": True}) == (1, 0)
    with pytest.raises(TypeError):
        network_quality_verbosity("high")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "media_signaling", "rule"),
    [
        ({}, {}, "include"),
        ({"automatic_subscription": False}, {}, "exclude"),
        ({"dominant_speaker": True}, {"active_speaker"}, "include"),
        ({"network_quality": True}, {"network_quality"}, "include"),
        (
            {
                "dominant_speaker": True,
                "network_quality": {"local": 3},
                "automatic_subscription": False,
            },
            {"active_speaker", "network_quality"},
            "exclude",
        ),
    ],
)
async def test_the_connect_body_asks_for_extensions_and_carries_the_subscribe_rule(
    make_room: Any, options: dict[str, Any], media_signaling: Any, rule: str
) -> None:
    room = make_room(**options)
    room.state = "connecting"
    sent: list[dict[str, Any]] = []

    async def open_first(body: dict[str, Any]) -> Any:
        sent.append(body)
        raise TwilioError(53000)

    room._open_first = open_first
    with pytest.raises(TwilioError):
        await room._connect([], 5)
    (body,) = sent
    assert set(body["media_signaling"]) == set(media_signaling)
    for name in media_signaling:
        assert body["media_signaling"][name] == {"transports": [{"type": "data-channel"}]}
    assert body["subscribe"] == {"rules": [{"type": rule, "all": True}], "revision": 1}


# Channels ----------------------------------------------------------------------------------------
async def test_a_granted_label_channel_is_the_extension_transport_not_a_data_track(
    make_room: Any,
) -> None:
    room = make_room(dominant_speaker=True)
    await room._apply_state({"media_signaling": GRANTED}, full=False)
    channel = FakeChannel("active_speaker")
    room._on_datachannel(channel)
    assert channel.sent == [{"type": "ready"}]
    assert "active_speaker" not in room._remote_channels
    # network_quality was granted but not asked for: that channel stays an ordinary one.
    other = FakeChannel("network_quality")
    room._on_datachannel(other)
    assert other.sent == [] and room._remote_channels == {"network_quality": other}


async def test_a_channel_arriving_before_the_grant_is_bound_when_the_grant_comes(
    make_room: Any,
) -> None:
    room = make_room(dominant_speaker=True)
    channel = FakeChannel("active_speaker", state="connecting")
    room._on_datachannel(channel)
    await room._apply_state({"media_signaling": GRANTED}, full=False)
    assert room._remote_channels == {}
    assert channel.sent == []  # queued until open
    channel.open()
    assert channel.sent == [{"type": "ready"}]


async def test_an_ungranted_extension_stays_inert(make_room: Any) -> None:
    room = make_room(dominant_speaker=True, network_quality=True)
    await room._apply_state(
        {"media_signaling": {"active_speaker": GRANTED["active_speaker"]}}, full=False
    )
    assert room._network_quality_signaling is not None
    assert not room._network_quality_signaling.is_setup
    assert room._dominant_speaker_signaling is not None
    assert room._dominant_speaker_signaling.is_setup


# Dominant speaker --------------------------------------------------------------------------------
async def test_active_speaker_messages_set_the_dominant_speaker(make_room: Any) -> None:
    room = make_room(dominant_speaker=True)
    events = record(room, "dominant_speaker_changed", "participant_disconnected")
    await room._apply_state(
        {"participants": [entry(ANN, "ann", 1), entry(BEN, "ben", 1)], "media_signaling": GRANTED},
        full=False,
    )
    channel = FakeChannel("active_speaker")
    room._on_datachannel(channel)
    ann, ben = room.participants[ANN], room.participants[BEN]

    channel.receive({"type": "active_speaker", "participant": ANN})
    assert room.dominant_speaker is ann
    channel.receive({"type": "active_speaker", "participant": ANN})  # unchanged: no event
    channel.receive({"type": "something_else", "participant": BEN})
    channel.receive({"type": "active_speaker", "participant": BEN})
    assert room.dominant_speaker is ben
    # The server names this client: room.dominant_speaker is a RemoteParticipant, so None.
    channel.receive({"type": "active_speaker", "participant": ME})
    assert room.dominant_speaker is None
    channel.emit("message", "not json")  # ignored
    channel.receive({"type": "active_speaker", "participant": ANN})
    # The dominant speaker leaves: participant_disconnected, then dominant_speaker_changed(None).
    await room._apply_state({"participants": [entry(ANN, "ann", 2, "disconnected")]}, full=False)
    assert room.dominant_speaker is None
    assert events == [
        ("dominant_speaker_changed", ann),
        ("dominant_speaker_changed", ben),
        ("dominant_speaker_changed", None),
        ("dominant_speaker_changed", ann),
        ("participant_disconnected", ann),
        ("dominant_speaker_changed", None),
    ]


# Network quality ---------------------------------------------------------------------------------
async def bound_network_quality(room: Room) -> FakeChannel:
    await room._apply_state({"media_signaling": GRANTED}, full=False)
    channel = FakeChannel("network_quality")
    room._on_datachannel(channel)  # type: ignore[arg-type]
    await eventually(lambda: len(channel.sent) >= 2, timeout=5, message="the first request")
    return channel


async def test_requests_carry_the_verbosity_and_statistics_the_server_accepts(
    make_room: Any,
) -> None:
    room = make_room(network_quality={"local": 2, "remote": 1})
    channel = await bound_network_quality(room)
    ready, request = channel.sent[:2]
    assert ready == {"type": "ready"}
    assert request["reportLevel"] == 2 and request["remoteReportLevel"] == 1
    parsed = parse_client_message(json.dumps(request))  # the worker's own parser
    assert isinstance(parsed, NetworkQualityRequest)
    assert (parsed.reportLevel, parsed.remoteReportLevel) == (2, 1)
    assert set(request) >= {"ice", "send", "recv", "audio", "video"}


async def test_answers_set_levels_and_stats_and_emit_only_on_change(make_room: Any) -> None:
    room = make_room(network_quality={"local": 3, "remote": 1})
    await room._apply_state({"participants": [entry(ANN, "ann", 1)]}, full=False)
    channel = await bound_network_quality(room)
    me, ann = room.local_participant, room.participants[ANN]
    mine = record(me, "network_quality_level_changed")
    theirs = record(ann, "network_quality_level_changed")
    at_room = record(room, "network_quality_level_changed")
    assert me.network_quality_level is None and ann.network_quality_level is None

    detailed = {
        "level": 4,
        "audio": {
            "send": 4,
            "recv": 5,
            "sendStats": {
                "bandwidth": {"actual": 32000, "available": None, "level": 5},
                "fractionLost": {"fractionLost": 0.02, "level": 4},
                "latency": {"jitter": 0.004, "rtt": 0.03, "level": 5},
            },
        },
        "video": {"send": 5, "recv": 5},
    }
    channel.receive(
        {"type": "network_quality", "local": detailed, "remotes": [{"sid": ANN, "level": 3}]}
    )
    assert me.network_quality_level == 4 and ann.network_quality_level == 3
    stats = me.network_quality_stats
    assert isinstance(stats, NetworkQualityStats) and stats.level == 4
    assert stats.audio is not None and stats.audio.send == 4 and stats.audio.recv == 5
    assert stats.audio.send_stats is not None and stats.audio.recv_stats is None
    assert stats.audio.send_stats.fraction_lost is not None
    assert stats.audio.send_stats.fraction_lost.fraction_lost == 0.02
    assert stats.audio.send_stats.bandwidth is not None
    assert stats.audio.send_stats.bandwidth.actual == 32000
    assert stats.audio.send_stats.bandwidth.available is None
    assert stats.audio.send_stats.latency is not None and stats.audio.send_stats.latency.rtt == 0.03
    assert stats.video is not None and stats.video.send_stats is None
    assert ann.network_quality_stats is None  # level only: no breakdown
    assert mine == [("network_quality_level_changed", 4, stats)]
    assert theirs == [("network_quality_level_changed", 3, None)]

    # The same levels again: no events. A bare number (verbosity 1): the level, no stats.
    channel.receive(
        {"type": "network_quality", "local": detailed, "remotes": [{"sid": ANN, "level": 3}]}
    )
    channel.receive({"type": "network_quality", "local": 2, "remotes": [{"sid": ANN, "level": 3}]})
    assert me.network_quality_level == 2 and me.network_quality_stats is None
    # A level object without `level`: the lowest of its send/recv levels (twilio-video.js).
    channel.receive(
        {
            "type": "network_quality",
            "local": {"audio": {"send": 5, "recv": 1}, "video": {"send": 5, "recv": 5}},
            "remotes": [{"sid": ANN, "level": 0}],
        }
    )
    assert me.network_quality_level == 1 and ann.network_quality_level == 0
    assert [e[1] for e in mine] == [4, 2, 1] and [e[1] for e in theirs] == [3, 0]
    assert at_room == []  # as twilio-video.js: the Room does not re-emit it

    # A participant that joins after its level was reported gets it when it appears.
    channel.receive(
        {
            "type": "network_quality",
            "local": 1,
            "remotes": [{"sid": ANN, "level": 0}, {"sid": BEN, "level": 5}],
        }
    )
    await room._apply_state({"participants": [entry(BEN, "ben", 1)]}, full=False)
    assert room.participants[BEN].network_quality_level == 5


async def test_requests_repeat_a_second_after_each_answer_and_back_off_without_answers(
    make_room: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shrunk timings: answer timeout 0.4 s (real 5 s), interval after an answer 0.2 s (real 1 s).
    # A timer never fires early; a busy machine may make it late, hence the one-sided slack.
    monkeypatch.setattr(msp, "RESPONSE_TIMEOUT_SECONDS", 0.4)
    monkeypatch.setattr(msp, "REQUEST_INTERVAL_SECONDS", 0.2)

    def took(seconds: float, expected: float) -> bool:
        return expected - 0.02 <= seconds <= expected + 0.25

    room = make_room(network_quality=True)
    channel = await bound_network_quality(room)
    await eventually(lambda: len(channel.sent) >= 5, timeout=10, message="unanswered requests")
    at = channel.sent_at
    gaps = [at[2] - at[1], at[3] - at[2], at[4] - at[3]]
    # No answer: asked again after 0.4 s, then 0.6 s, then 0.9 s (x1.5 each time).
    assert took(gaps[0], 0.4) and took(gaps[1], 0.6) and took(gaps[2], 0.9), gaps
    assert gaps[0] < gaps[1] < gaps[2], gaps
    # An answer: the next request 0.2 s later, and the answer timeout is back to 0.4 s.
    sent = len(channel.sent)
    answered_at = time.monotonic()
    channel.receive({"type": "network_quality", "local": 5})
    await eventually(
        lambda: len(channel.sent) > sent, timeout=5, message="the request after an answer"
    )
    assert took(at[sent] - answered_at, 0.2), at[sent] - answered_at
    await eventually(lambda: len(channel.sent) > sent + 1, timeout=5, message="one more request")
    assert took(at[sent + 1] - at[sent], 0.4), at[sent + 1] - at[sent]
    assert all(m["type"] == "network_quality" for m in channel.sent[1:])
    # The channel closes: the requests stop.
    nq = room._network_quality_signaling
    assert nq is not None
    channel.close()
    assert nq.transport is None
    await asyncio.sleep(0)
    assert nq._loop is None


# Reconnecting participants -----------------------------------------------------------------------
async def test_remote_participants_go_reconnecting_and_come_back(make_room: Any) -> None:
    room = make_room()
    await room._apply_state({"participants": [entry(ANN, "ann", 1)]}, full=False)
    ann = room.participants[ANN]
    at_room = record(
        room, "participant_reconnecting", "participant_reconnected", "participant_disconnected"
    )
    at_ann = record(ann, "reconnecting", "reconnected")

    await room._apply_state({"participants": [entry(ANN, "ann", 2, "reconnecting")]}, full=False)
    assert ann.state == "reconnecting"
    await room._apply_state({"participants": [entry(ANN, "ann", 2, "connected")]}, full=False)
    assert ann.state == "reconnecting"  # a stale revision changes nothing
    await room._apply_state({"participants": [entry(ANN, "ann", 3, "connected")]}, full=False)
    assert ann.state == "connected" and len(ann.tracks) == 1
    await room._apply_state({"participants": [entry(ANN, "ann", 4, "reconnecting")]}, full=False)
    await room._apply_state({"participants": [entry(ANN, "ann", 5, "disconnected")]}, full=False)
    assert ann.state == "disconnected" and ANN not in room.participants
    assert at_ann == [("reconnecting",), ("reconnected",), ("reconnecting",)]
    assert at_room == [
        ("participant_reconnecting", ann),
        ("participant_reconnected", ann),
        ("participant_reconnecting", ann),
        ("participant_disconnected", ann),
    ]

    # Met while reconnecting (e.g. in `connected`): no reconnecting event, but it comes back.
    joined = record(
        room, "participant_connected", "participant_reconnecting", "participant_reconnected"
    )
    await room._apply_state({"participants": [entry(BEN, "ben", 7, "reconnecting")]}, full=False)
    ben = room.participants[BEN]
    assert ben.state == "reconnecting"
    await room._apply_state({"participants": [entry(BEN, "ben", 8)]}, full=False)
    assert ben.state == "connected"
    assert joined == [("participant_connected", ben), ("participant_reconnected", ben)]
