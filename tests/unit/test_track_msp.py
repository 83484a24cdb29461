"""MSP messages of track_priority, track_switch_off, render_hints and publisher_hints, and the
RSP bandwidth_profile.

The client messages below were captured from twilio-video 2.36.0's own signaling classes
(``lib/signaling/v2/*signaling.js`` driven under node with a fake data transport: exactly what
their ``transport.publish`` serialises). The server messages were fed to the same classes, which
emitted what the comments say (``updated`` with the track lists, the hints and id).
"""

from __future__ import annotations

import json

import pytest

from atrium_media.extensions.msp import MspError, MspReady
from atrium_media.extensions.track_msp import (
    BandwidthProfileError,
    ClientResetRequest,
    LayerEncoding,
    PublisherHint,
    PublisherHints,
    PublisherHintsMessage,
    PublisherHintsResponse,
    RenderHintResult,
    RenderHintResults,
    RenderHintsReply,
    RenderHintsRequest,
    TrackPriorityRequest,
    TrackSwitchOffMessage,
    parse_bandwidth_profile,
    parse_track_client_message,
    parse_track_server_message,
)

T1 = "MT11111111111111111111111111111111"
T2 = "MT22222222222222222222222222222222"
T3 = "MT33333333333333333333333333333333"

# -- captured from twilio-video 2.36.0 --------------------------------------------------------
PRIORITY_HIGH = f'{{"type":"track_priority","track":"{T1}","subscribe":"high"}}'
PRIORITY_CLEARED = f'{{"type":"track_priority","track":"{T2}","subscribe":null}}'
RENDER_HINTS_BOTH = (
    '{"type":"render_hints","subscriber":{"id":1,"hints":[{"track":"' + T1 + '","enabled":true,'
    '"render_dimensions":{"width":160,"height":90}}]}}'
)
RENDER_HINTS_OFF = (
    '{"type":"render_hints","subscriber":{"id":2,"hints":[{"track":"' + T2 + '","enabled":false}]}}'
)
RENDER_HINTS_SIZE = (
    '{"type":"render_hints","subscriber":{"id":3,"hints":[{"track":"' + T1 + '",'
    '"render_dimensions":{"width":1280,"height":720}}]}}'
)
PUBLISHER_HINTS_ANSWER = '{"type":"publisher_hints","id":1,"hints":[{"track":"MT3","result":"OK"}]}'
CLIENT_RESET = f'{{"type":"client_reset","track":"{T3}","id":1}}'


def test_track_priority() -> None:
    message = parse_track_client_message(PRIORITY_HIGH)
    assert message == TrackPriorityRequest(type="track_priority", track=T1, subscribe="high")
    cleared = parse_track_client_message(PRIORITY_CLEARED)
    assert isinstance(cleared, TrackPriorityRequest) and cleared.subscribe is None
    assert json.loads(message.model_dump_json()) == json.loads(PRIORITY_HIGH)


def test_render_hints_requests() -> None:
    both = parse_track_client_message(RENDER_HINTS_BOTH)
    assert isinstance(both, RenderHintsRequest)
    assert both.subscriber.id == 1
    (hint,) = both.subscriber.hints
    assert (hint.track, hint.enabled) == (T1, True)
    assert hint.render_dimensions is not None
    assert (hint.render_dimensions.width, hint.render_dimensions.height) == (160, 90)
    off = parse_track_client_message(RENDER_HINTS_OFF)
    assert isinstance(off, RenderHintsRequest)
    assert off.subscriber.hints[0].enabled is False
    assert off.subscriber.hints[0].render_dimensions is None
    size = parse_track_client_message(RENDER_HINTS_SIZE)
    assert isinstance(size, RenderHintsRequest)
    assert size.subscriber.hints[0].enabled is None  # unchanged, so not sent
    for text in (RENDER_HINTS_BOTH, RENDER_HINTS_OFF, RENDER_HINTS_SIZE):
        again = parse_track_client_message(text)
        assert json.loads(again.to_json()) == json.loads(text)


def test_publisher_hints_answer_and_client_reset() -> None:
    answer = parse_track_client_message(PUBLISHER_HINTS_ANSWER)
    assert isinstance(answer, PublisherHintsResponse)
    assert answer.id == 1 and [(h.track, h.result) for h in answer.hints] == [("MT3", "OK")]
    reset = parse_track_client_message(CLIENT_RESET)
    assert reset == ClientResetRequest(type="client_reset", track=T3, id=1)


def test_ready_and_unknown_fields() -> None:
    assert parse_track_client_message('{"type":"ready"}') == MspReady(type="ready")
    future = json.loads(PRIORITY_HIGH) | {"publish": "low", "extra": {"x": 1}}
    assert parse_track_client_message(json.dumps(future)) == parse_track_client_message(
        PRIORITY_HIGH
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"type":"track_priority","track":"MT1","subscribe":"urgent"}',
        '{"type":"track_priority","track":"","subscribe":"low"}',
        '{"type":"track_priority","subscribe":"low"}',
        '{"type":"track_priority","track":5,"subscribe":"low"}',
        '{"type":"render_hints","subscriber":{"hints":[]}}',
        '{"type":"render_hints","subscriber":{"id":1,"hints":[{"enabled":true}]}}',
        '{"type":"render_hints","subscriber":{"id":1,"hints":[{"track":"MT1","enabled":"no"}]}}',
        '{"type":"render_hints","subscriber":{"id":1,"hints":[{"track":"MT1",'
        '"render_dimensions":{"width":"wide","height":1}}]}}',
        '{"type":"render_hints","subscriber":{"id":1,"hints":[{"track":"MT1",'
        '"render_dimensions":{"width":1e999,"height":1}}]}}',
        '{"type":"render_hints","subscriber":{"id":-1,"hints":[]}}',
        '{"type":"publisher_hints","id":1,"hints":[{"track":"MT1"}]}',
        '{"type":"client_reset","track":"MT1"}',
        '{"type":"track_switch_off","off":[]}',  # a server message, not a client's
        '{"type":"network_quality"}',  # another channel's
        "[]",
        "not json",
    ],
)
def test_malformed_client_messages_raise_msp_error(text: str) -> None:
    with pytest.raises(MspError):
        parse_track_client_message(text)


def test_track_switch_off_wire_form() -> None:
    both = TrackSwitchOffMessage(off=["MT1", "MT2"], on=["MT3"])
    # twilio-video emitted updated(["MT1", "MT2"], ["MT3"]).
    assert both.to_json() == '{"type":"track_switch_off","off":["MT1","MT2"],"on":["MT3"]}'
    # twilio-video emitted updated([], ["MT1"]): a missing list is an empty one.
    assert TrackSwitchOffMessage(on=["MT1"]).to_json() == '{"type":"track_switch_off","on":["MT1"]}'
    assert parse_track_server_message(both.to_json()) == both


def test_render_hints_reply_wire_form() -> None:
    reply = RenderHintsReply(
        subscriber=RenderHintResults(
            id=42,
            hints=[RenderHintResult(track="foo"), RenderHintResult(track="boo", result="X")],
        )
    )
    assert json.loads(reply.to_json()) == {
        "type": "render_hints",
        "subscriber": {
            "id": 42,
            "hints": [{"track": "foo", "result": "OK"}, {"track": "boo", "result": "X"}],
        },
    }
    assert parse_track_server_message(reply.to_json()) == reply


def test_publisher_hints_wire_form() -> None:
    message = PublisherHintsMessage(
        publisher=PublisherHints(
            id=1,
            hints=[
                PublisherHint(
                    track="MT3",
                    encodings=[
                        LayerEncoding(layer_index=0, enabled=True),
                        LayerEncoding(layer_index=1, enabled=True),
                        LayerEncoding(layer_index=2, enabled=False),
                    ],
                )
            ],
        )
    )
    # twilio-video emitted updated(<these hints>, 1) and answered PUBLISHER_HINTS_ANSWER-shaped.
    assert message.to_json() == (
        '{"type":"publisher_hints","publisher":{"id":1,"hints":[{"track":"MT3","encodings":'
        '[{"layer_index":0,"enabled":true},{"layer_index":1,"enabled":true},'
        '{"layer_index":2,"enabled":false}]}]}}'
    )
    assert parse_track_server_message(message.to_json()) == message


def test_server_models_refuse_what_the_client_would_drop() -> None:
    with pytest.raises(ValueError):
        PublisherHints(id=0, hints=[])  # twilio-video ignores a falsy id
    with pytest.raises(ValueError):
        LayerEncoding(layer_index=-1, enabled=True)
    with pytest.raises(MspError):
        parse_track_server_message('{"type":"track_switch_off","off":["MT1"],"bogus":1}')
    with pytest.raises(MspError):
        parse_track_server_message('{"type":"track_priority","track":"MT1"}')


# -- RSP bandwidth_profile --------------------------------------------------------------------


def test_bandwidth_profile_as_twilio_video_builds_it() -> None:
    # createBandwidthProfilePayload({video: {mode: 'collaboration', dominantSpeakerPriority:
    # 'high', maxSubscriptionBitrate: 2500000, trackSwitchOffMode: 'detected',
    # renderDimensions: {low: {width: 160, height: 90}}}})
    body = parse_bandwidth_profile(
        {
            "video": {
                "active_speaker_priority": "high",
                "max_subscription_bandwidth": 2500000,
                "mode": "collaboration",
                "render_dimensions": {"low": {"height": 90, "width": 160}},
                "track_switch_off": "detected",
            }
        }
    )
    video = body.video
    assert video is not None
    assert (video.mode, video.active_speaker_priority, video.track_switch_off) == (
        "collaboration",
        "high",
        "detected",
    )
    assert video.max_subscription_bandwidth == 2_500_000
    assert video.render_dimensions is not None and video.render_dimensions.low is not None
    assert video.render_dimensions.high is None
    assert parse_bandwidth_profile({}).video is None
    assert parse_bandwidth_profile({"video": {}}).video is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        {"video": {"mode": "theatre"}},
        {"video": {"max_subscription_bandwidth": "lots"}},
        {"video": {"track_switch_off": True}},
        {"video": {"render_dimensions": {"high": {"width": 1}}}},
    ],
)
def test_bad_bandwidth_profiles_raise(value: object) -> None:
    with pytest.raises(BandwidthProfileError):
        parse_bandwidth_profile(value)
