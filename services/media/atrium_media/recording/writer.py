"""Encoded frames -> a Matroska file with PyAV, without decoding or re-encoding.

Opus goes into Matroska audio (``.mka``), VP8 and H.264 into Matroska video (``.mkv``), as Twilio
stores track recordings. Timestamps are milliseconds (Matroska's default TimecodeScale) from the
first frame written; the wall-clock time of that frame is :attr:`MatroskaWriter.first_wall_time`,
the recording's offset base.

**A cut file plays.** The file is written progressively: FFmpeg's Matroska muxer keeps only the
current cluster in memory, clusters are closed every ``cluster_ms`` (or ``cluster_bytes``), and
``flush_packets`` hands each finished cluster to the OS at once. The segment and cluster sizes of a
file that is never closed stay "unknown", which demuxers accept, so if the process dies the file
decodes up to the last finished cluster (at most ``cluster_ms`` is lost). A file that is closed
gets its sizes, duration and cues written as usual.

Stream parameters come from the media itself: the video size from the first keyframe (the VP8
frame header or the H.264 SPS; a later resolution change is carried in-band, which decoders
follow), the H.264 ``avcC`` from the first keyframe's SPS/PPS (PyAV extracts it; the muxer then
stores length-prefixed NAL units), and Opus' ``OpusHead`` from a libopus context opened only to
write it, with the channel count of the first packet and libopus' standard 312-sample pre-skip
(what browsers' libopus encoders use).
"""

from __future__ import annotations

import fractions
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av

from atrium_media.recording.depacketize import (
    H264,
    OPUS,
    VP8,
    MediaFrame,
    frame_size_reader,
    opus_channels,
)

Codec = Literal["OPUS", "VP8", "H264"]
Container = Literal["mka", "mkv"]

MILLISECONDS = fractions.Fraction(1, 1000)
DEFAULT_CLUSTER_MS = 1000
DEFAULT_CLUSTER_BYTES = 512 * 1024

_CODECS: dict[str, tuple[Codec, Container, str]] = {
    OPUS: ("OPUS", "mka", "opus"),
    VP8: ("VP8", "mkv", "vp8"),
    H264: ("H264", "mkv", "h264"),
}


def recording_format(mime_type: str) -> tuple[Codec, Container]:
    """Twilio's codec name and the container for a codec (ValueError: it cannot be recorded)."""
    entry = _CODECS.get(mime_type.lower())
    if entry is None:
        raise ValueError(f"cannot record {mime_type}")
    return entry[0], entry[1]


@dataclass(frozen=True)
class WriterResult:
    codec: Codec
    container: Container
    path: Path
    duration: float  # seconds, first frame to the end of the last
    size: int  # bytes on disk (0: nothing was written, no file)
    frames: int
    first_wall_time: float | None  # Unix time of the first frame written


class MatroskaWriter:
    """Muxes the frames of one track into one Matroska file. Not thread-safe (one writer
    thread); the file is created when the first frame (for video, a keyframe) arrives."""

    def __init__(
        self,
        path: Path,
        mime_type: str,
        clock_rate: int,
        *,
        cluster_ms: int = DEFAULT_CLUSTER_MS,
        cluster_bytes: int = DEFAULT_CLUSTER_BYTES,
    ) -> None:
        mime = mime_type.lower()
        codec, container = recording_format(mime)
        self.path = Path(path)
        self.mime_type = mime
        self.codec: Codec = codec
        self.container: Container = container
        self.clock_rate = clock_rate
        self.cluster_ms = cluster_ms
        self.cluster_bytes = cluster_bytes
        self.frames = 0
        self.first_wall_time: float | None = None
        self._is_video = mime != OPUS
        self._output: Any = None
        self._stream: Any = None
        self._last_pts = -1
        self._end_ms = 0
        self._held: tuple[MediaFrame, int] | None = None  # video: written once the next is known
        self._closed = False

    @property
    def opened(self) -> bool:
        return self._output is not None

    def _open(self, frame: MediaFrame) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        output: Any = av.open(
            str(self.path),
            mode="w",
            format="matroska",
            container_options={
                "cluster_time_limit": str(self.cluster_ms),
                "cluster_size_limit": str(self.cluster_bytes),
                "flush_packets": "1",
            },
        )
        try:
            if self._is_video:
                size = frame_size_reader(self.mime_type)(frame.data)
                if size is None:
                    raise ValueError(
                        f"cannot read the picture size of the first {self.codec} frame"
                    )
                stream = output.add_mux_stream(
                    _CODECS[self.mime_type][2], width=size.width, height=size.height
                )
            else:
                stream = output.add_stream("libopus", rate=48000)
                context = stream.codec_context
                context.layout = "stereo" if opus_channels(frame.data) == 2 else "mono"
                context.format = "s16"
                context.time_base = fractions.Fraction(1, 48000)
            stream.time_base = MILLISECONDS
        except Exception:
            output.close()
            self.path.unlink(missing_ok=True)
            raise
        self._output = output
        self._stream = stream
        self.first_wall_time = frame.wall_time

    def write(self, frame: MediaFrame) -> None:
        """Add one frame (in timestamp order; the first video frame must be a keyframe)."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        if self._output is None:
            if self._is_video and not frame.keyframe:
                return
            self._open(frame)
        first = self.first_wall_time
        assert first is not None
        pts = round((frame.wall_time - first) * 1000)
        if pts <= self._last_pts:
            pts = self._last_pts + 1  # keep timestamps strictly increasing
        self._last_pts = pts
        if self._is_video:
            # Hold one frame back so each block gets its real duration (up to the next frame).
            held = self._held
            self._held = (frame, pts)
            if held is not None:
                self._mux(held[0], held[1], pts - held[1])
            return
        duration = 0
        if frame.duration is not None:
            duration = round(frame.duration * 1000 / self.clock_rate)
        self._mux(frame, pts, duration)

    def _mux(self, frame: MediaFrame, pts: int, duration: int) -> None:
        packet = av.Packet(frame.data)
        packet.pts = pts
        packet.dts = pts
        packet.time_base = MILLISECONDS
        if duration > 0:
            packet.duration = duration
        packet.is_keyframe = frame.keyframe
        packet.stream = self._stream
        self._output.mux(packet)
        self.frames += 1
        self._end_ms = max(self._end_ms, pts + duration)

    def close(self) -> WriterResult:
        """Write what is held, finish the file and report it."""
        if not self._closed:
            self._closed = True
            if self._output is not None:
                try:
                    held = self._held
                    if held is not None:
                        self._held = None
                        frames = self.frames + 1
                        # The last frame lasts an average frame interval.
                        average = round(held[1] / (frames - 1)) if frames > 1 else 0
                        self._mux(held[0], held[1], average)
                finally:
                    self._output.close()
        return self.result()

    def abort(self) -> None:
        """Close without writing what is held (the file stays as far as it was written)."""
        self._held = None
        self._closed = True
        if self._output is not None:
            try:
                self._output.close()
            except Exception:  # best effort on a failing file
                pass

    def result(self) -> WriterResult:
        size = 0
        if self._output is not None:
            try:
                size = os.path.getsize(self.path)
            except OSError:
                size = 0
        return WriterResult(
            codec=self.codec,
            container=self.container,
            path=self.path,
            duration=self._end_ms / 1000,
            size=size,
            frames=self.frames,
            first_wall_time=self.first_wall_time,
        )
