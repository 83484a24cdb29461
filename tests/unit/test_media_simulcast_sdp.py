"""Reading a publisher's simulcast layers (SSRCs, RTX) from its offer."""

from __future__ import annotations

import pytest

from atrium_media.signaling.simulcast_sdp import (
    LayerSsrcs,
    SimulcastSdpError,
    published_video_layers,
)

SESSION = """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 6e1d9a0b-stream
a=ice-ufrag:Zm9v
a=ice-pwd:YmFyYmF6cXV4cXV1eHF1dXhxdXV4
a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2
"""

AUDIO = """m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=setup:actpass
a=mid:0
a=sendrecv
a=msid:6e1d9a0b-stream 0f3c5c1e-audio
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=ssrc:3735928559 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:3735928559 msid:6e1d9a0b-stream 0f3c5c1e-audio
"""

VIDEO_HEAD = """m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103
c=IN IP4 0.0.0.0
a=setup:actpass
a=mid:1
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a={direction}
a=msid:6e1d9a0b-stream 5b2f3a9c-video
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
"""

# What twilio-video 2.36.0's own lib/util/sdp/simulcast.js (setSimulcast, run under node on a
# Chrome-shaped offer) adds to a video m-line that had SSRC 1001 with RTX 1002, in its order.
TWILIO_SIMULCAST_SSRCS = """a=ssrc-group:FID 1001 1002
a=ssrc:1001 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:1001 msid:6e1d9a0b-stream 5b2f3a9c-video
a=ssrc:1002 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:1002 msid:6e1d9a0b-stream 5b2f3a9c-video
a=ssrc-group:FID 2159618968 1610595932
a=ssrc-group:FID 4058047981 2522334831
a=ssrc:2159618968 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:2159618968 msid:6e1d9a0b-stream 5b2f3a9c-video
a=ssrc:1610595932 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:1610595932 msid:6e1d9a0b-stream 5b2f3a9c-video
a=ssrc:4058047981 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:4058047981 msid:6e1d9a0b-stream 5b2f3a9c-video
a=ssrc:2522334831 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:2522334831 msid:6e1d9a0b-stream 5b2f3a9c-video
a=ssrc-group:SIM 1001 2159618968 4058047981
a=x-google-flag:conference
"""

SINGLE_WITH_RTX = """a=ssrc-group:FID 1001 1002
a=ssrc:1001 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:1001 msid:6e1d9a0b-stream 5b2f3a9c-video
a=ssrc:1002 cname:hvQ2ZSZ0yy1r5c3l
a=ssrc:1002 msid:6e1d9a0b-stream 5b2f3a9c-video
"""


def offer(ssrc_lines: str, direction: str = "sendrecv") -> str:
    text = SESSION + AUDIO + VIDEO_HEAD.format(direction=direction) + ssrc_lines
    return text.replace("\n", "\r\n")


def test_twilio_video_simulcast_offer() -> None:
    (video,) = published_video_layers(offer(TWILIO_SIMULCAST_SSRCS))
    assert (video.mid, video.track_id, video.simulcast) == ("1", "5b2f3a9c-video", True)
    assert video.layers == (
        LayerSsrcs(index=0, ssrc=1001, rtx_ssrc=1002),
        LayerSsrcs(index=1, ssrc=2159618968, rtx_ssrc=1610595932),
        LayerSsrcs(index=2, ssrc=4058047981, rtx_ssrc=2522334831),
    )
    assert video.ssrcs == (1001, 2159618968, 4058047981)
    layer = video.layer_of(2522334831)
    assert layer is not None and layer.index == 2
    assert video.layer_of(1001) == video.layers[0]
    assert video.layer_of(3735928559) is None  # the audio SSRC


def test_simulcast_without_rtx() -> None:
    lines = (
        "".join(f"a=ssrc:{ssrc} cname:c\na=ssrc:{ssrc} msid:s t\n" for ssrc in (11, 22, 33))
        + "a=ssrc-group:SIM 11 22 33\n"
    )
    (video,) = published_video_layers(offer(lines))
    assert [(layer.ssrc, layer.rtx_ssrc) for layer in video.layers] == [
        (11, None),
        (22, None),
        (33, None),
    ]


def test_single_stream_with_rtx_is_one_layer() -> None:
    (video,) = published_video_layers(offer(SINGLE_WITH_RTX))
    assert not video.simulcast
    assert video.layers == (LayerSsrcs(index=0, ssrc=1001, rtx_ssrc=1002),)


def test_single_stream_without_rtx_and_flexfec_are_one_layer() -> None:
    (video,) = published_video_layers(offer("a=ssrc:7 cname:c\n"))
    assert video.layers == (LayerSsrcs(0, 7, None),)
    flexfec = "a=ssrc-group:FEC-FR 7 8\na=ssrc:7 cname:c\na=ssrc:8 cname:c\n"
    (video,) = published_video_layers(offer(flexfec))
    assert video.layers == (LayerSsrcs(0, 7, None),)


def test_track_id_from_ssrc_msid_when_the_m_line_has_none() -> None:
    text = offer(SINGLE_WITH_RTX).replace("a=msid:6e1d9a0b-stream 5b2f3a9c-video\r\n", "")
    (video,) = published_video_layers(text)
    assert video.track_id == "5b2f3a9c-video"


def test_m_lines_that_do_not_send_or_have_no_ssrc_are_left_out() -> None:
    assert published_video_layers(offer(SINGLE_WITH_RTX, direction="recvonly")) == []
    assert published_video_layers(offer(SINGLE_WITH_RTX, direction="inactive")) == []
    assert published_video_layers(offer("")) == []
    (video,) = published_video_layers(offer(SINGLE_WITH_RTX, direction="sendonly"))
    assert video.ssrcs == (1001,)


@pytest.mark.parametrize(
    "lines",
    [
        "a=ssrc-group:SIM 1 2\na=ssrc-group:SIM 3 4\n",  # two SIM groups
        "a=ssrc-group:SIM 1 2 1\n",  # a layer twice
        "a=ssrc-group:FID 1 2\na=ssrc-group:SIM 1 2\n",  # a layer is an RTX stream
        "a=ssrc-group:FID 1 2 3\na=ssrc-group:SIM 1\n",  # FID of three
        "a=ssrc-group:FID 1 2\na=ssrc-group:FID 1 3\n",  # two RTX for one
        "a=ssrc-group:FID 1 1\n",
        "a=ssrc:1 cname:c\na=ssrc:2 cname:c\n",  # two streams, no SIM to order them
        "a=ssrc-group:SIM one two\n",  # not numbers
    ],
)
def test_contradictory_groups_are_refused(lines: str) -> None:
    with pytest.raises(SimulcastSdpError):
        published_video_layers(offer(lines))


def test_text_that_is_not_sdp_is_refused() -> None:
    with pytest.raises(SimulcastSdpError):
        published_video_layers("v=0\r\nm=video nonsense\r\n")
