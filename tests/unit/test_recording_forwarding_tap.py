"""Forwarding's recording hook: packet taps on a TrackForwarder and MediaRouter.record.

Real aiortc receivers (of a peer connection that never connects) are driven by calling their
``_handle_rtp_packet`` as the DTLS transport does; the router's hooks see what aiortc hands them.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket, wrap_rtx

from atrium_media.forwarding import MediaRouter, PacketRecorder, UnknownTrack
from atrium_media.recording import RecorderPool, TrackRecorder
from tests.support.rtp_media import decode_file, video_stream
from tests.support.waiting import eventually

NTP_TO_UNIX = 2208988800
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


@dataclass
class FakeRecorder:
    packets: list[tuple[int, int, int, float]] = field(default_factory=list)
    requester: Callable[[], None] | None = None

    def feed(self, packet: RtpPacket, arrival_time: float) -> None:
        self.packets.append(
            (packet.sequence_number, packet.payload_type, packet.ssrc, arrival_time)
        )

    def set_keyframe_requester(self, request: Callable[[], None] | None) -> None:
        self.requester = request


@dataclass
class Room:
    router: MediaRouter
    pc: RTCPeerConnection
    video: RTCRtpTransceiver
    audio: RTCRtpTransceiver


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    pc = RTCPeerConnection()
    video = pc.addTransceiver("video", direction="recvonly")
    audio = pc.addTransceiver("audio", direction="recvonly")
    video._codecs = [VP8, RTX]
    audio._codecs = [OPUS]
    router = MediaRouter("RM-rec")
    router.add_published_track("PA-1", "MT-video", video)
    router.add_published_track("PA-1", "MT-audio", audio)
    try:
        yield Room(router, pc, video, audio)
    finally:
        router.close()
        await pc.close()


def vp8_packet(seq: int, ssrc: int = 1111) -> RtpPacket:
    return RtpPacket(
        payload_type=96, sequence_number=seq, timestamp=9000, ssrc=ssrc, payload=b"\x10k"
    )


async def deliver(transceiver: RTCRtpTransceiver, packet: RtpPacket, unix_time: float) -> None:
    await transceiver.receiver._handle_rtp_packet(packet, round((unix_time + NTP_TO_UNIX) * 1000))


async def test_a_recorder_sees_every_media_packet_and_repaired_ones_unwrapped(room: Room) -> None:
    recorder = FakeRecorder()
    room.router.record("MT-video", recorder)
    room.router.set_enabled("MT-video", False)  # what is published is recorded, legs or not
    original = vp8_packet(5)
    await deliver(room.video, original, 1_700_000_000.25)
    await deliver(room.video, vp8_packet(6), 1_700_000_000.5)
    retransmission = wrap_rtx(original, payload_type=97, sequence_number=77, ssrc=2222)
    await deliver(room.video, retransmission, 1_700_000_000.75)
    assert [packet[:3] for packet in recorder.packets] == [
        (5, 96, 1111),
        (6, 96, 1111),
        (5, 96, 1111),  # the RTX packet, as the packet it repairs
    ]
    arrivals = [packet[3] for packet in recorder.packets]
    assert arrivals == pytest.approx([1_700_000_000.25, 1_700_000_000.5, 1_700_000_000.75])

    assert room.router.stop_recording("MT-video") is recorder
    assert recorder.requester is None
    await deliver(room.video, vp8_packet(7), 1_700_000_001.0)
    assert len(recorder.packets) == 3
    assert room.router.stop_recording("MT-video") is None


async def test_record_refuses_unknown_and_already_recorded_tracks(room: Room) -> None:
    with pytest.raises(UnknownTrack):
        room.router.record("MT-nope", FakeRecorder())
    room.router.record("MT-audio", FakeRecorder())
    with pytest.raises(ValueError, match="already recorded"):
        room.router.record("MT-audio", FakeRecorder())
    assert room.router.recorded_tracks() == ["MT-audio"]


async def test_a_failing_tap_does_not_break_the_receive_path(room: Room) -> None:
    forwarder = room.router.published_track("MT-video")
    seen: list[int] = []

    def broken(packet: RtpPacket, arrival: float) -> None:
        raise RuntimeError("boom")

    forwarder.add_tap(broken)
    forwarder.add_tap(lambda packet, arrival: seen.append(packet.sequence_number))
    await deliver(room.video, vp8_packet(1), 1.0)
    assert seen == [1]
    forwarder.remove_tap(broken)
    assert len(forwarder.taps) == 1


async def test_recorders_are_handed_back_when_their_track_goes_away(room: Room) -> None:
    stopped: list[tuple[str, PacketRecorder]] = []
    room.router.on_recording_stopped(lambda track_id, r: stopped.append((track_id, r)))
    video, audio = FakeRecorder(), FakeRecorder()
    room.router.record("MT-video", video)
    room.router.record("MT-audio", audio)
    room.router.remove_published_track("MT-video")
    assert stopped == [("MT-video", video)]
    room.router.remove_participant("PA-1")
    assert stopped == [("MT-video", video), ("MT-audio", audio)]
    assert room.router.recorded_tracks() == []


async def test_keyframe_requests_from_the_recorder_thread_reach_the_publisher(room: Room) -> None:
    forwarder = room.router.published_track("MT-video")
    requested: list[str] = []

    def spy() -> None:
        requested.append(threading.current_thread().name)

    forwarder.request_keyframe = spy  # type: ignore[method-assign]
    recorder = FakeRecorder()
    room.router.record("MT-video", recorder)
    assert requested == ["MainThread"]  # asked once at once
    assert recorder.requester is not None
    thread = threading.Thread(target=recorder.requester, name="recorder-x")
    thread.start()
    thread.join()
    await eventually(lambda: len(requested) == 2, timeout=2, message="request on the loop")
    assert requested == ["MainThread", "MainThread"]  # run on the loop, not the calling thread
    audio = FakeRecorder()
    room.router.record("MT-audio", audio)
    assert audio.requester is None  # audio needs no keyframes


async def test_a_track_recorder_behind_the_router_writes_the_track(
    room: Room, tmp_path: Path
) -> None:
    stream = video_stream("vp8", 2.0, width=320, height=240, start_time=1_700_000_000.0)
    pool = RecorderPool(threads=1, interval=0.01)
    recorder = TrackRecorder(tmp_path / "RT1.mkv", "video/VP8", 90000, pool=pool)
    room.router.record("MT-video", recorder)
    try:
        for packet, arrival in stream.packets:
            await deliver(room.video, packet, arrival)
        assert room.router.stop_recording("MT-video") is recorder
        result = await recorder.stop()
    finally:
        pool.close(timeout=5)
    assert result.frames == stream.frames
    assert result.first_sample_time == pytest.approx(1_700_000_000.0, abs=0.01)
    decoded = decode_file(str(tmp_path / "RT1.mkv"))
    assert decoded.frames == stream.frames
    assert decoded.duration == pytest.approx(2.0, abs=0.1)
