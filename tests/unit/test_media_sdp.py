from __future__ import annotations

from atrium_media.signaling.sdp import (
    announce,
    harmonize_offer,
    is_session_description,
    keep_video_codecs,
    media_sections,
    sending_tracks,
)

OFFER = """v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1 2 3
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=sendrecv
a=msid:- 7c1f-audio
m=video 9 UDP/TLS/RTP/SAVPF 96
a=mid:1
a=sendrecv
a=msid:stream 9d2e-video
m=video 9 UDP/TLS/RTP/SAVPF 96
a=mid:2
a=recvonly
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
a=mid:3
"""


def test_sections_are_read_in_order() -> None:
    sections = media_sections(OFFER)
    assert [(s.index, s.kind, s.mid, s.track_id, s.direction) for s in sections] == [
        (0, "audio", "0", "7c1f-audio", "sendrecv"),
        (1, "video", "1", "9d2e-video", "sendrecv"),
        (2, "video", "2", None, "recvonly"),
        (3, "application", "3", None, "sendrecv"),
    ]


def test_sending_tracks_are_keyed_by_msid_track_id() -> None:
    tracks = sending_tracks(OFFER)
    assert set(tracks) == {"7c1f-audio", "9d2e-video"}
    assert tracks["9d2e-video"].mid == "1"


def test_a_recycled_transceiver_reports_its_new_track() -> None:
    reoffer = OFFER.replace("a=recvonly\n", "a=sendrecv\na=msid:- new-video\n")
    assert sending_tracks(reoffer)["new-video"].mid == "2"


CLIENT = """v=0
a=group:BUNDLE 0 1
m=audio 9 UDP/TLS/RTP/SAVPF 111 0
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:0 PCMU/8000
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103
a=mid:1
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
"""

WORKER_OFFER = """v=0
a=group:BUNDLE 0 1 2
m=audio 9 UDP/TLS/RTP/SAVPF 96 0
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=rtpmap:96 opus/48000/2
a=rtpmap:0 PCMU/8000
m=video 9 UDP/TLS/RTP/SAVPF 97 98 99 100
a=mid:1
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time
a=rtpmap:97 VP8/90000
a=rtcp-fb:97 nack pli
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=97
a=rtpmap:99 H264/90000
a=fmtp:99 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42001f
a=rtpmap:100 rtx/90000
a=fmtp:100 apt=99
m=video 9 UDP/TLS/RTP/SAVPF 97 98 101
a=mid:2
a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid
a=extmap:9 urn:example:new-extension
a=rtpmap:97 VP8/90000
a=rtpmap:98 rtx/90000
a=fmtp:98 apt=97
a=rtpmap:101 H264/90000
a=fmtp:101 packetization-mode=1;profile-level-id=640c1f
"""


def test_harmonized_offer_keeps_the_clients_numbers() -> None:
    result = harmonize_offer(WORKER_OFFER, CLIENT)
    audio, video, _ = result.split("m=")[1:]
    assert audio.startswith("audio 9 UDP/TLS/RTP/SAVPF 111 0")
    assert "a=rtpmap:111 opus/48000/2" in audio
    assert "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid" in audio
    assert "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level" in audio
    assert video.startswith("video 9 UDP/TLS/RTP/SAVPF 96 97 102 103")
    assert "a=rtcp-fb:96 nack pli" in video and "a=fmtp:97 apt=96" in video
    assert "a=fmtp:103 apt=102" in video
    assert "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time" in video


def test_new_codecs_and_extensions_get_unused_numbers() -> None:
    result = harmonize_offer(WORKER_OFFER, CLIENT)
    new_video = result.split("m=")[3]
    fmt = new_video.splitlines()[0].split(" ")[3:]
    assert fmt[:2] == ["96", "97"]
    new_h264 = int(fmt[2])
    assert new_h264 not in (0, 96, 97, 102, 103, 111)
    assert f"a=rtpmap:{new_h264} H264/90000" in new_video
    ext = next(line for line in new_video.splitlines() if "new-extension" in line)
    assert int(ext.split(":")[1].split(" ")[0]) not in (1, 2, 4)


def test_announced_address_replaces_local_candidates_but_not_loopback() -> None:
    sdp = (
        "v=0\r\nm=audio 5000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 10.0.0.5\r\n"
        "a=candidate:1 1 udp 2130706431 10.0.0.5 5000 typ host\r\n"
        "a=candidate:2 1 udp 2130706431 127.0.0.1 5001 typ host\r\n"
    )
    result = announce(sdp, "203.0.113.7")
    assert "c=IN IP4 203.0.113.7" in result
    assert "a=candidate:1 1 udp 2130706431 203.0.113.7 5000 typ host" in result
    assert "a=candidate:2 1 udp 2130706431 127.0.0.1 5001 typ host" in result


def test_text_that_is_not_sdp_is_told_apart() -> None:
    assert is_session_description("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
    assert is_session_description("v=0\ns=-\nm=audio 9 UDP/TLS/RTP/SAVPF 111\n")
    for garbage in ("", "garbage", "v=1\r\n", "v=0\r\nthis is not SDP\r\n", "s=-\r\nv=0\r\n"):
        assert not is_session_description(garbage), garbage


CHROME_VIDEO = """v=0
o=- 1 2 IN IP4 127.0.0.1
s=-
t=0 0
m=audio 9 UDP/TLS/RTP/SAVPF 111
a=mid:0
a=rtpmap:111 opus/48000/2
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 124
a=mid:1
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=rtcp-fb:102 nack pli
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102
a=rtpmap:124 red/90000
"""


def test_a_rooms_video_codecs_are_the_only_ones_offered() -> None:
    only_h264 = keep_video_codecs(CHROME_VIDEO, ["H264"])
    video = only_h264.split("m=video")[1]
    assert video.startswith(" 9 UDP/TLS/RTP/SAVPF 102 103 124\r\n")
    assert "VP8" not in video and "a=fmtp:97" not in video and "a=rtcp-fb:96" not in video
    assert "a=rtpmap:102 H264/90000" in video and "a=fmtp:103 apt=102" in video
    assert "a=rtpmap:111 opus/48000/2" in only_h264  # audio untouched
    # Every codec allowed, or none of them offered: the offer is answered as it is.
    for allowed in (["VP8", "H264"], ["vp8", "h264"], ["VP9"]):
        assert keep_video_codecs(CHROME_VIDEO, allowed).split() == CHROME_VIDEO.split()
