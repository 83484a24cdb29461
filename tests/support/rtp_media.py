"""Real RTP of synthetic media, made with aiortc's own encoders and payloaders.

A moving picture (a bright bar that moves every frame, on grey) encoded with aiortc's VP8 or
H.264 encoder, and a tone encoded with its Opus encoder; each encoder's ``encode()`` returns the
RTP payloads, which become :class:`RtpPacket` objects with sequence numbers, timestamps and marker
bits as aiortc's sender sets them. Every packet comes with an arrival time (Unix seconds) on a
real-time schedule, so recorders can be fed as from the network.
"""

from __future__ import annotations

import array
import fractions
import math
import random
from dataclasses import dataclass

from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from av import AudioFrame, VideoFrame

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
CODECS = {
    "vp8": RTCRtpCodecParameters(mimeType="video/VP8", clockRate=VIDEO_CLOCK, payloadType=96),
    "h264": RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=VIDEO_CLOCK,
        payloadType=102,
        parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
    ),
    "opus": RTCRtpCodecParameters(
        mimeType="audio/opus", clockRate=AUDIO_CLOCK, channels=2, payloadType=111
    ),
}


@dataclass
class RtpStream:
    mime_type: str
    clock_rate: int
    packets: list[tuple[RtpPacket, float]]  # in sending order, with arrival times
    seconds: float  # real duration of the media
    frames: int


_TEXTURES: dict[tuple[int, int], bytes] = {}


def _texture(width: int, height: int, block: int = 4) -> bytes:
    """A fixed pseudo-random luma texture of ``block``-pixel squares: detail, so frames take
    several RTP packets, at a camera-like bitrate (~1 Mbit/s at 640x480 with aiortc's VP8)."""
    texture = _TEXTURES.get((width, height))
    if texture is None:
        rng = random.Random(width * height)
        rows = []
        for _ in range(0, height, block):
            coarse = rng.randbytes(-(-width // block))
            row = bytes(value for value in coarse for _ in range(block))[:width]
            rows.extend([row] * block)
        texture = b"".join(rows[:height])
        _TEXTURES[width, height] = texture
    return texture


def moving_picture(index: int, width: int, height: int) -> VideoFrame:
    """A textured picture that scrolls 6 pixels a frame, with a bright bar that moves."""
    frame = VideoFrame(width=width, height=height, format="yuv420p")
    luma = frame.planes[0]
    texture = _texture(width, height)
    shift = (index * 6) % width
    bar = max(8, width // 10)
    x = (index * 6) % (width - bar)
    rows = []
    for y in range(height):
        row = bytearray(texture[y * width + shift : (y + 1) * width])
        row += texture[y * width : y * width + shift]
        row[x : x + bar] = b"\xeb" * bar
        row += bytes(luma.line_size - width)
        rows.append(bytes(row))
    luma.update(b"".join(rows))
    for plane in frame.planes[1:]:
        plane.update(b"\x80" * plane.buffer_size)
    frame.pts = index * 3000
    frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    return frame


def tone(index: int, frequency: float = 440.0, amplitude: float = 0.3) -> AudioFrame:
    samples = 960
    level = 32767 * amplitude
    start = index * samples
    pcm = array.array(
        "h",
        (
            int(level * math.sin(2 * math.pi * frequency * (start + i) / AUDIO_CLOCK))
            for i in range(samples)
        ),
    )
    frame = AudioFrame(format="s16", layout="mono", samples=samples)
    frame.planes[0].update(pcm.tobytes())
    frame.sample_rate = AUDIO_CLOCK
    frame.pts = start
    frame.time_base = fractions.Fraction(1, AUDIO_CLOCK)
    return frame


def _packets(
    payload_groups: list[tuple[list[bytes], int]],
    payload_type: int,
    clock_rate: int,
    start_time: float,
    *,
    ssrc: int,
    first_seq: int,
    first_ts: int,
    jitter: float,
    rng: random.Random,
) -> list[tuple[RtpPacket, float]]:
    out: list[tuple[RtpPacket, float]] = []
    seq = first_seq
    for payloads, timestamp in payload_groups:
        send_time = start_time + timestamp / clock_rate
        for i, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=payload_type,
                marker=1 if i == len(payloads) - 1 else 0,
                sequence_number=seq % 65536,
                timestamp=(first_ts + timestamp) % (1 << 32),
                ssrc=ssrc,
                payload=payload,
            )
            out.append((packet, send_time + rng.uniform(0, jitter)))
            seq += 1
    return out


def video_stream(
    codec: str = "vp8",
    seconds: float = 4.0,
    *,
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    keyframe_every: int = 30,
    start_time: float = 1_700_000_000.0,
    ssrc: int = 0x1234,
    first_seq: int = 65000,
    first_ts: int = (1 << 32) - 90000,
    jitter: float = 0.002,
    seed: int = 1,
) -> RtpStream:
    """``seconds`` of a moving picture at ``fps`` as RTP (sequence numbers and timestamps wrap
    early by default)."""
    encoder = get_encoder(CODECS[codec])
    groups: list[tuple[list[bytes], int]] = []
    count = round(seconds * fps)
    step = VIDEO_CLOCK // fps
    for index in range(count):
        frame = moving_picture(index, width, height)
        frame.pts = index * step
        payloads, timestamp = encoder.encode(frame, force_keyframe=index % keyframe_every == 0)
        if payloads:
            groups.append((payloads, timestamp))
    packets = _packets(
        groups,
        CODECS[codec].payloadType or 96,
        VIDEO_CLOCK,
        start_time,
        ssrc=ssrc,
        first_seq=first_seq,
        first_ts=first_ts,
        jitter=jitter,
        rng=random.Random(seed),
    )
    return RtpStream(CODECS[codec].mimeType, VIDEO_CLOCK, packets, count / fps, len(groups))


def audio_stream(
    seconds: float = 4.0,
    *,
    start_time: float = 1_700_000_000.0,
    ssrc: int = 0x5678,
    first_seq: int = 65500,
    first_ts: int = (1 << 32) - 48000,
    jitter: float = 0.002,
    seed: int = 2,
) -> RtpStream:
    """``seconds`` of a 440 Hz tone as Opus RTP, 20 ms a packet."""
    encoder = get_encoder(CODECS["opus"])
    groups: list[tuple[list[bytes], int]] = []
    count = round(seconds * 50)
    for index in range(count):
        payloads, timestamp = encoder.encode(tone(index))
        for i, payload in enumerate(payloads):
            groups.append(([payload], timestamp + i * 960))
    packets = _packets(
        groups,
        CODECS["opus"].payloadType or 111,
        AUDIO_CLOCK,
        start_time,
        ssrc=ssrc,
        first_seq=first_seq,
        first_ts=first_ts,
        jitter=jitter,
        rng=random.Random(seed),
    )
    for packet, _ in packets:
        packet.marker = 0
    return RtpStream("audio/opus", AUDIO_CLOCK, packets, count / 50, len(groups))


def shuffled(
    packets: list[tuple[RtpPacket, float]],
    *,
    every: int = 7,
    max_delay: float = 0.06,
    seed: int = 3,
) -> list[tuple[RtpPacket, float]]:
    """Out-of-order delivery: about one packet in ``every`` is held up to ``max_delay`` seconds
    on the way, so packets sent after it arrive first. Returned in arrival order."""
    rng = random.Random(seed)
    delayed = [
        (packet, arrival + (rng.uniform(0.005, max_delay) if rng.randrange(every) == 0 else 0.0))
        for packet, arrival in packets
    ]
    return sorted(delayed, key=lambda item: item[1])


def dropped(
    packets: list[tuple[RtpPacket, float]], *, every: int = 97, seed: int = 4
) -> tuple[list[tuple[RtpPacket, float]], int]:
    """Lose about one packet in ``every``; returns the survivors and how many were lost."""
    rng = random.Random(seed)
    kept = [item for item in packets if rng.randrange(every) != 0]
    return kept, len(packets) - len(kept)


@dataclass
class Decoded:
    """What PyAV makes of a recording: it decodes every frame (errors raise)."""

    codec: str
    kind: str
    frames: int
    duration: float  # first frame's start to the last frame's end, seconds
    width: int = 0
    height: int = 0
    distinct_pictures: int = 0  # video: frames whose luma differs
    rms: float = 0.0  # audio: root mean square of the samples, full scale 1.0


def decode_file(path: str) -> Decoded:
    import hashlib

    import av

    with av.open(path) as container:
        stream = container.streams[0]
        context = stream.codec_context
        # Fail on any decoding error rather than conceal it.
        context.options = {"err_detect": "explode"} if stream.type == "video" else {}
        time_base = stream.time_base
        assert time_base is not None
        first: float | None = None
        end = 0.0
        frames = 0
        digests: set[str] = set()
        squares = 0.0
        samples = 0
        for frame in container.decode(stream):
            frames += 1
            assert frame.pts is not None
            start = float(frame.pts * time_base)
            first = start if first is None else min(first, start)
            if isinstance(frame, VideoFrame):
                digests.add(hashlib.sha1(bytes(frame.planes[0])).hexdigest())
                end = max(end, start)
            else:
                assert isinstance(frame, AudioFrame)
                end = max(end, start + frame.samples / frame.sample_rate)
                assert frame.format.name == "fltp", frame.format.name  # Opus decodes to float
                plane = array.array("f", bytes(frame.planes[0])[: frame.samples * 4])
                squares += sum(x * x for x in plane)
                samples += len(plane)
        if stream.type == "video" and frames > 1:
            end += (end - (first or 0.0)) / (frames - 1)  # the last frame lasts one interval
        return Decoded(
            codec=context.name,
            kind=stream.type,
            frames=frames,
            duration=end - (first or 0.0),
            width=getattr(context, "width", 0) or 0,
            height=getattr(context, "height", 0) or 0,
            distinct_pictures=len(digests),
            rms=math.sqrt(squares / samples) if samples else 0.0,
        )


def decoded_pictures(path: str, first_sample_time: float) -> dict[int, str]:
    """Each decoded picture's luma digest by its wall-clock time (ms), to compare recordings."""
    import hashlib

    import av

    pictures: dict[int, str] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        assert time_base is not None
        for frame in container.decode(stream):
            assert frame.pts is not None
            at = round(first_sample_time * 1000 + float(frame.pts * time_base) * 1000)
            pictures[at] = hashlib.sha1(bytes(frame.planes[0])).hexdigest()
    return pictures
