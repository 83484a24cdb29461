"""MSP (media signaling) messages: round trips and rejection of hostile input."""

from __future__ import annotations

import json
import random

import pytest

from atrium_media.extensions.msp import (
    MAX_MESSAGE_BYTES,
    ActiveSpeakerMessage,
    MediaLevels,
    MspError,
    MspReady,
    NetworkQualityLevels,
    NetworkQualityMessage,
    NetworkQualityRequest,
    RemoteNetworkQuality,
    parse_client_message,
    parse_server_message,
)

# What twilio-video.js 2.36.0 in Chromium 156 sends: the per-kind summaries carry only
# ``bitrate: 0`` (Chromium's stats no longer have the ids the SDK looks for), ``ice`` has the
# selected candidate pair's figures, ``undefined`` fields are simply absent.
CHROMIUM_REQUEST = json.dumps(
    {
        "type": "network_quality",
        "ice": {"availableSend": 1_234_567, "recv": 512_000.5, "rtt": 0.002, "send": 700_000},
        "send": {"bitrate": 0},
        "recv": {"bitrate": 0},
        "audio": {"send": {"bitrate": 0}, "recv": {"bitrate": 0}},
        "video": {
            "send": {"bitrate": 0},
            "recv": {"bitrate": 0, "fractionLost": 0.01, "jitter": 0.003},
        },
        "reportLevel": 3,
        "remoteReportLevel": 1,
        "somethingNew": {"deep": [1, 2, {"x": None}]},
    }
)


def test_ready() -> None:
    assert parse_client_message('{"type":"ready"}') == MspReady(type="ready")
    assert parse_client_message(b'{"type": "ready"}') == MspReady(type="ready")


def test_network_quality_request_from_chromium() -> None:
    msg = parse_client_message(CHROMIUM_REQUEST)
    assert isinstance(msg, NetworkQualityRequest)
    assert (msg.reportLevel, msg.remoteReportLevel) == (3, 1)
    assert msg.ice is not None
    assert msg.ice.rtt == 0.002
    assert msg.ice.availableSend == 1_234_567.0
    assert msg.video is not None and msg.video.recv is not None
    assert msg.video.recv.fractionLost == 0.01
    assert msg.video.recv.jitter == 0.003
    assert msg.audio is not None and msg.audio.send is not None
    assert msg.audio.send.rtt is None
    assert msg.send is not None and msg.send.bitrate == 0.0


def test_network_quality_request_defaults_and_nulls() -> None:
    # NaN bit rates become null in JSON.stringify; missing levels take the SDK defaults.
    msg = parse_client_message('{"type":"network_quality","send":{"bitrate":null}}')
    assert isinstance(msg, NetworkQualityRequest)
    assert (msg.reportLevel, msg.remoteReportLevel) == (1, 0)
    assert msg.send is not None and msg.send.bitrate is None
    assert msg.ice is None


def test_active_speaker_round_trip() -> None:
    msg = ActiveSpeakerMessage(participant="PA0123456789abcdef0123456789abcdef")
    assert msg.to_json() == (
        '{"type":"active_speaker","participant":"PA0123456789abcdef0123456789abcdef"}'
    )
    assert parse_server_message(msg.to_json()) == msg
    assert parse_server_message(msg.to_json().encode()) == msg


def test_network_quality_answer_round_trip() -> None:
    levels = MediaLevels(send=4, recv=5)
    msg = NetworkQualityMessage(
        local=NetworkQualityLevels(level=4, audio=levels, video=levels),
        remotes=[RemoteNetworkQuality(sid="PB", level=2), RemoteNetworkQuality(sid="PC", level=0)],
    )
    wire = msg.to_json()
    assert json.loads(wire) == {
        "type": "network_quality",
        "local": {"level": 4, "audio": {"send": 4, "recv": 5}, "video": {"send": 4, "recv": 5}},
        "remotes": [{"sid": "PB", "level": 2}, {"sid": "PC", "level": 0}],
    }
    assert parse_server_message(wire) == msg
    bare = NetworkQualityMessage(local=3)
    assert bare.to_json() == '{"type":"network_quality","local":3}'
    assert parse_server_message(bare.to_json()) == bare


def test_outbound_models_validate_what_we_build() -> None:
    with pytest.raises(ValueError):
        NetworkQualityMessage(local=6)
    with pytest.raises(ValueError):
        ActiveSpeakerMessage(participant="")
    with pytest.raises(ValueError):
        MediaLevels(send=-1, recv=5)


HOSTILE_CLIENT: list[object] = [
    b"\xff\xfe\x00",
    "",
    "not json",
    "{",
    "[]",
    "1",
    "null",
    '"ready"',
    "{}",
    '{"type": 5}',
    '{"type": null}',
    '{"type": "nope"}',
    '{"type": "active_speaker", "participant": "PA1"}',  # a server message, not a client one
    '{"type": "network_quality", "reportLevel": "1"}',
    '{"type": "network_quality", "reportLevel": true}',
    '{"type": "network_quality", "reportLevel": 1.0}',
    '{"type": "network_quality", "reportLevel": 7}',
    '{"type": "network_quality", "remoteReportLevel": -1}',
    '{"type": "network_quality", "ice": {"rtt": "fast"}}',
    '{"type": "network_quality", "ice": [1, 2]}',
    '{"type": "network_quality", "ice": {"rtt": NaN}}',
    '{"type": "network_quality", "ice": {"rtt": Infinity}}',
    '{"type": "network_quality", "ice": {"rtt": -Infinity}}',
    '{"type": "network_quality", "ice": {"rtt": 1e999}}',
    '{"type": "network_quality", "video": {"recv": {"jitter": {"a": 1}}}}',
    '{"type": "network_quality", "reportLevel": ' + "9" * 5000 + "}",
    "[" * 30_000 + "]" * 30_000,
    '{"type": "ready", "x": ' + "[" * 30_000 + "]" * 30_000 + "}",
    '{"type": "network_quality", "ice": ' + '{"a":' * 10_000 + "1" + "}" * 10_001,
    '{"type": "ready", "pad": "' + "x" * MAX_MESSAGE_BYTES + '"}',
    b'{"type": "ready", "pad": "' + b"x" * MAX_MESSAGE_BYTES + b'"}',
    None,
    42,
    {"type": "ready"},  # already-decoded objects are not accepted either
]


@pytest.mark.parametrize("data", HOSTILE_CLIENT, ids=lambda d: repr(d)[:40])
def test_hostile_client_messages_are_rejected_with_msp_error(data: object) -> None:
    with pytest.raises(MspError):
        parse_client_message(data)  # type: ignore[arg-type]


HOSTILE_SERVER = [
    '{"type": "active_speaker"}',
    '{"type": "active_speaker", "participant": ""}',
    '{"type": "active_speaker", "participant": 5}',
    '{"type": "active_speaker", "participant": "PA", "extra": 1}',
    '{"type": "network_quality", "local": 6}',
    '{"type": "network_quality", "local": true}',
    '{"type": "network_quality", "local": "5"}',
    '{"type": "network_quality", "local": {"level": 3, "audio": {"send": 3}}}',
    '{"type": "network_quality", "remotes": {"sid": "PB", "level": 1}}',
    '{"type": "network_quality", "remotes": [{"level": 1}]}',
    '{"type": "ready"}',
]


@pytest.mark.parametrize("data", HOSTILE_SERVER)
def test_malformed_server_messages_are_rejected_with_msp_error(data: str) -> None:
    with pytest.raises(MspError):
        parse_server_message(data)


def test_msp_error_is_a_value_error_with_a_useful_message() -> None:
    with pytest.raises(MspError, match="reportLevel"):
        parse_client_message('{"type": "network_quality", "reportLevel": 9}')
    with pytest.raises(ValueError, match="unknown MSP message type"):
        parse_client_message('{"type": "track_priority"}')


def test_fuzzed_messages_never_raise_anything_but_msp_error() -> None:
    rng = random.Random(20240610)
    seeds = [
        CHROMIUM_REQUEST.encode(),
        b'{"type":"ready"}',
        NetworkQualityMessage(local=3, remotes=[RemoteNetworkQuality(sid="PB", level=1)])
        .to_json()
        .encode(),
        ActiveSpeakerMessage(participant="PA1").to_json().encode(),
    ]
    alphabet = b'{}[]":,0123456789.eE+-truefalsnNaIfiy \\\x00\xff'
    accepted = rejected = 0
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randrange(len(data) + 1)
            if op < 0.4 and data:
                data[min(pos, len(data) - 1)] = rng.choice(alphabet)
            elif op < 0.7:
                data[pos:pos] = bytes([rng.choice(alphabet)])
            elif data:
                del data[min(pos, len(data) - 1)]
        for parse in (parse_client_message, parse_server_message):
            try:
                parse(bytes(data))
                accepted += 1
            except MspError:
                rejected += 1
    # Both outcomes happen: the fuzzer really produces valid and invalid messages.
    assert accepted > 100
    assert rejected > 1000
