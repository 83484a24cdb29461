"""Local tracks (what this participant publishes) and remote tracks (what it receives).

Local audio and video tracks wrap any aiortc ``MediaStreamTrack``; without one a synthetic source
is used: a 440 Hz tone, or a moving test pattern. Remote audio and video tracks yield decoded
frames (``av.AudioFrame`` / ``av.VideoFrame``): ``await track.recv()`` or ``async for frame in
track``. Remote data tracks emit ``message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from av import AudioFrame, Packet, VideoFrame
from av.frame import Frame as AnyFrame

from atrium_video.bandwidth_profile import PRIORITIES, ClientControl, render_dimensions_of
from atrium_video.errors import TrackEnded
from atrium_video.events import EventEmitter

Frame = AudioFrame | VideoFrame
MessageData = str | bytes

# ------------------------------------------------------------------------------------------------
# Synthetic sources
# ------------------------------------------------------------------------------------------------


class ToneSource(MediaStreamTrack):
    """A sine tone: 48 kHz mono s16, 20 ms frames, paced in real time."""

    kind = "audio"
    RATE = 48000
    SAMPLES = 960

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.25) -> None:
        super().__init__()
        level = int(32767 * max(0.0, min(1.0, amplitude)))
        period = self.RATE / frequency
        # One second of samples, read in 20 ms windows (a whole number of periods per second).
        samples = [int(level * math.sin(2 * math.pi * i / period)) for i in range(self.RATE)]
        self._pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        """The next 20 ms of tone, paced in real time."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._pts / self.RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        offset = (self._pts % self.RATE) * 2
        frame = AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(self._pcm[offset : offset + self.SAMPLES * 2])
        frame.sample_rate = self.RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.RATE)
        self._pts += self.SAMPLES
        return frame


class TestPatternSource(VideoStreamTrack):
    """Frames at ~30 fps with a bright bar that moves every frame, on a grey background."""

    __test__ = False  # not a pytest class

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width = width - width % 2
        self.height = height - height % 2
        self._count = 0

    async def recv(self) -> VideoFrame:
        """The next 320x240 (by default) yuv420p frame, paced at ~30 fps."""
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        luma = frame.planes[0]
        bar = max(8, self.width // 16)
        x = (self._count * 4) % (self.width - bar)
        row = bytearray(b"\x50" * luma.line_size)
        row[x : x + bar] = b"\xeb" * bar
        luma.update(bytes(row) * self.height)
        for plane in frame.planes[1:]:
            plane.update(b"\x80" * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        self._count += 1
        return frame


def _silence_like(frame: AudioFrame) -> AudioFrame:
    silent = AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=frame.samples)
    for plane in silent.planes:
        plane.update(bytes(plane.buffer_size))
    silent.sample_rate = frame.sample_rate
    silent.pts = frame.pts
    silent.time_base = frame.time_base
    return silent


def _black_like(frame: VideoFrame) -> VideoFrame:
    black = VideoFrame(width=frame.width, height=frame.height, format="yuv420p")
    black.planes[0].update(b"\x10" * black.planes[0].buffer_size)
    for plane in black.planes[1:]:
        plane.update(b"\x80" * plane.buffer_size)
    black.pts = frame.pts
    black.time_base = frame.time_base
    return black


# ------------------------------------------------------------------------------------------------
# Local tracks
# ------------------------------------------------------------------------------------------------


class LocalTrack(EventEmitter):
    """Base of the local tracks. Events: ``enabled``, ``disabled``, ``stopped`` (each with the
    track)."""

    kind: str = ""

    def __init__(self, name: str | None) -> None:
        super().__init__()
        self.id = str(uuid.uuid4())
        self.name = name or self.id
        self.is_enabled = True
        self.is_stopped = False
        self._on_state: list[Callable[[LocalTrack], None]] = []

    def enable(self, enabled: bool = True) -> None:
        """Send media again (or, with ``enabled=False``, the same as :meth:`disable`)."""
        if enabled == self.is_enabled:
            return
        self.is_enabled = enabled
        for callback in list(self._on_state):
            callback(self)
        self.emit("enabled" if enabled else "disabled", self)

    def disable(self) -> None:
        """Send silence (audio) or black frames (video) and signal the track as disabled."""
        self.enable(False)

    def stop(self) -> None:
        """Stop the source. The track stays published until unpublished."""
        self.is_stopped = True
        self.emit("stopped", self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} id={self.id}>"


class _SendingTrack(MediaStreamTrack):
    """What aiortc sends: the source's frames, or silence/black while the track is disabled."""

    def __init__(self, owner: LocalMediaTrack, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = owner.kind
        self._id = owner.id  # the msid track id, and the id signaled in participant.tracks
        self._owner = owner
        self._source = source

    async def recv(self) -> AnyFrame | Packet[Any]:
        frame = await self._source.recv()
        if self._owner.is_enabled:
            return frame
        if isinstance(frame, AudioFrame):
            return _silence_like(frame)
        if isinstance(frame, VideoFrame):
            return _black_like(frame)
        return frame

    def stop(self) -> None:
        # Only this sender's view ends: aiortc stops a sender's track when the sender stops
        # (a replaced peer connection), and the source lives on in the next one.
        super().stop()


class LocalMediaTrack(LocalTrack):
    """A local audio or video track; ``media_stream_track`` is what aiortc sends."""

    def __init__(self, name: str | None, source: MediaStreamTrack) -> None:
        super().__init__(name)
        if source.kind != self.kind:
            raise ValueError(f"a {self.kind} track needs a {self.kind} source, not {source.kind}")
        self.source = source
        self.media_stream_track = _SendingTrack(self, source)

    def stop(self) -> None:
        self.media_stream_track.stop()
        self.source.stop()
        super().stop()

    def _new_sending_track(self) -> None:
        """A fresh sender view of the source, for a new peer connection."""
        self.media_stream_track = _SendingTrack(self, self.source)


class LocalAudioTrack(LocalMediaTrack):
    """A local audio track; build it with :func:`create_local_audio_track`."""

    kind = "audio"


class LocalVideoTrack(LocalMediaTrack):
    """A local video track; build it with :func:`create_local_video_track`."""

    kind = "video"


def create_local_audio_track(
    name: str | None = None, source: MediaStreamTrack | None = None
) -> LocalAudioTrack:
    """A local audio track from ``source`` (any aiortc audio ``MediaStreamTrack``, e.g. a
    ``MediaPlayer(...).audio``), or a 440 Hz tone when omitted."""
    return LocalAudioTrack(name, source if source is not None else ToneSource())


def create_local_video_track(
    name: str | None = None, source: MediaStreamTrack | None = None
) -> LocalVideoTrack:
    """A local video track from ``source`` (any aiortc video ``MediaStreamTrack``), or a moving
    320x240 test pattern when omitted."""
    return LocalVideoTrack(name, source if source is not None else TestPatternSource())


async def create_local_tracks(
    audio: bool = True, video: bool = True
) -> list[LocalAudioTrack | LocalVideoTrack]:
    """Synthetic audio and/or video tracks (twilio-video's ``createLocalTracks``)."""
    tracks: list[LocalAudioTrack | LocalVideoTrack] = []
    if audio:
        tracks.append(create_local_audio_track())
    if video:
        tracks.append(create_local_video_track())
    return tracks


class LocalDataTrack(LocalTrack):
    """Sends strings or bytes to every subscriber. ``ordered``/``max_packet_life_time``/
    ``max_retransmits`` configure reliability as in twilio-video.js (default: reliable)."""

    kind = "data"

    def __init__(
        self,
        name: str | None = None,
        *,
        ordered: bool = True,
        max_packet_life_time: int | None = None,
        max_retransmits: int | None = None,
    ) -> None:
        super().__init__(name)
        self.ordered = ordered
        self.max_packet_life_time = max_packet_life_time
        self.max_retransmits = max_retransmits
        self._channels: list[Any] = []  # RTCDataChannel (one per room it is published in)
        self._backlog: list[MessageData] = []

    def send(self, data: MessageData) -> None:
        """Send a message; messages sent before the channel opens are queued, in order."""
        if not isinstance(data, str | bytes | bytearray | memoryview):
            raise TypeError("data must be str or bytes")
        payload: MessageData = data if isinstance(data, str) else bytes(data)
        open_channels = [c for c in self._channels if c.readyState == "open"]
        if not open_channels:
            self._backlog.append(payload)
            return
        for channel in open_channels:
            channel.send(payload)

    def _attach(self, channel: Any) -> None:
        self._channels.append(channel)

        def flush() -> None:
            backlog, self._backlog = self._backlog, []
            for message in backlog:
                channel.send(message)

        if channel.readyState == "open":
            flush()
        else:
            channel.on("open", flush)

    def _detach(self, channel: Any) -> None:
        if channel in self._channels:
            self._channels.remove(channel)


AnyLocalTrack = LocalAudioTrack | LocalVideoTrack | LocalDataTrack

# ------------------------------------------------------------------------------------------------
# Remote tracks
# ------------------------------------------------------------------------------------------------


class RemoteTrack(EventEmitter):
    """Base of the remote tracks: ``sid``, ``name``, ``kind``, ``is_enabled``. Events ``enabled``
    / ``disabled`` (with the track)."""

    kind: str = ""

    def __init__(self, sid: str, name: str, enabled: bool) -> None:
        super().__init__()
        self.sid = sid
        self.name = name
        self.is_enabled = enabled

    def _set_enabled(self, enabled: bool) -> None:
        if enabled != self.is_enabled:
            self.is_enabled = enabled
            self.emit("enabled" if enabled else "disabled", self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} sid={self.sid}>"


class TrackControls(Protocol):
    """What a remote media track asks of its room: priorities and render hints (MSP)."""

    @property
    def client_track_switch_off_control(self) -> ClientControl: ...

    @property
    def content_preferences_mode(self) -> ClientControl: ...

    def set_priority(self, track_sid: str, priority: str | None) -> None: ...

    def set_render_hint(
        self,
        track_sid: str,
        *,
        enabled: bool | None = None,
        render_dimensions: tuple[float, float] | None = None,
    ) -> None: ...


class RemoteMediaTrack(RemoteTrack):
    """Decoded frames of a subscribed audio or video track.

    Frames are buffered up to ``buffer`` (older ones are dropped), so a slow reader gets recent
    media rather than unbounded memory growth. ``recv()`` raises :class:`TrackEnded` once the
    track is unsubscribed; ``async for`` then simply ends.

    ``is_switched_off`` is True while the server does not forward the track to this client
    (``connect(bandwidth_profile=...)``: track switch-off); ``switched_off`` / ``switched_on``
    (with the track) fire when that changes. No frames arrive while it is switched off.
    ``priority`` is the subscribe priority set with :meth:`set_priority` (None: the
    publisher's priority applies).
    """

    def __init__(
        self,
        sid: str,
        name: str,
        enabled: bool,
        source: MediaStreamTrack,
        buffer: int,
        *,
        controls: TrackControls | None = None,
        switched_off: bool = False,
    ) -> None:
        super().__init__(sid, name, enabled)
        self.media_stream_track = source
        self.frames_received = 0
        self._queue: asyncio.Queue[Frame | None] = asyncio.Queue(maxsize=buffer)
        self._ended = False
        self._suspended = False
        self._controls = controls
        self._is_switched_off = switched_off
        self._priority: str | None = None
        self._pump = asyncio.ensure_future(self._run())

    @property
    def is_switched_off(self) -> bool:
        """True while the server has switched this track off for this client."""
        return self._is_switched_off

    @property
    def priority(self) -> str | None:
        """The subscribe priority (``low``, ``standard``, ``high``), or None (not set)."""
        return self._priority

    def set_priority(self, priority: str | None) -> RemoteMediaTrack:
        """Set (or with None, clear) the subscribe priority of this track, as twilio-video's
        ``setPriority``: the server's bandwidth allocation ranks this client's tracks by it
        (``track_priority``, with ``connect(bandwidth_profile=...)``; kept and sent once the
        extension's channel is ready). ValueError for anything but None, ``"low"``,
        ``"standard"``, ``"high"``."""
        if priority is not None and priority not in PRIORITIES:
            raise ValueError(
                f"priority must be None, 'low', 'standard' or 'high', not {priority!r}"
            )
        if priority != self._priority:
            self._priority = priority
            if self._controls is not None and not self._ended:
                self._controls.set_priority(self.sid, priority)
        return self

    def _set_switched_off(self, switched_off: bool) -> bool:
        """The server switched the track off or on; True (and the event) if that changed."""
        if switched_off == self._is_switched_off:
            return False
        self._is_switched_off = switched_off
        self.emit("switched_off" if switched_off else "switched_on", self)
        return True

    async def _run(self) -> None:
        # The source ending (its peer connection closed, e.g. the media worker went away) does
        # not end the track: the room ends it (unsubscribed, disconnected) or resumes it on a
        # new peer connection's source.
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await self.media_stream_track.recv()
                if isinstance(frame, AudioFrame | VideoFrame):
                    self.frames_received += 1
                    self._offer(frame)

    def _suspend(self) -> None:
        """The room replaces its peer connection: stop reading this source, without ending."""
        self._suspended = True
        if not self._pump.done():
            self._pump.cancel()

    def _resume(self, source: MediaStreamTrack) -> None:
        """Frames come from ``source`` (on the new peer connection) from now on."""
        if self._ended:
            return  # the room ended it
        self.media_stream_track = source
        self._suspended = False
        self._pump = asyncio.ensure_future(self._run())

    @property
    def is_suspended(self) -> bool:
        return self._suspended

    def _offer(self, item: Frame | None) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()

    async def recv(self) -> Frame:
        """The next decoded frame (``av.AudioFrame`` or ``av.VideoFrame``)."""
        if self._ended and self._queue.empty():
            raise TrackEnded(self.sid)
        frame = await self._queue.get()
        if frame is None:
            self._offer(None)  # wake any other reader too
            raise TrackEnded(self.sid)
        return frame

    def __aiter__(self) -> AsyncIterator[Frame]:
        """``async for frame in track``: decoded frames until the track ends."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Frame]:
        while True:
            try:
                yield await self.recv()
            except TrackEnded:
                return

    def _end(self) -> None:
        if not self._pump.done():
            self._pump.cancel()
        self._ended = True
        self._controls = None
        self._offer(None)


class RemoteAudioTrack(RemoteMediaTrack):
    """A subscribed audio track: yields ``av.AudioFrame`` (48 kHz, decoded Opus)."""

    kind = "audio"


class RemoteVideoTrack(RemoteMediaTrack):
    """A subscribed video track: yields ``av.VideoFrame`` (decoded VP8/H.264), of whichever
    simulcast layer the server forwards.

    With ``connect(bandwidth_profile={"video": {"client_track_switch_off_control": "manual"}})``
    :meth:`switch_off` / :meth:`switch_on` ask the server to stop or resume forwarding it, and
    with ``"content_preferences_mode": "manual"`` :meth:`set_content_preferences` tells it the
    size the track is rendered at (render hints). As twilio-video's methods they raise
    (RuntimeError) when the profile does not give the client that control; after the track
    ended (unsubscribed) they do nothing.
    """

    kind = "video"

    def switch_off(self) -> RemoteVideoTrack:
        """Ask the server to stop forwarding this track (render hint ``enabled: false``);
        ``switched_off`` fires when it did."""
        self._hint("switch_off", enabled=False)
        return self

    def switch_on(self) -> RemoteVideoTrack:
        """Ask the server to forward this track again (render hint ``enabled: true``);
        ``switched_on`` fires when it does (unless the server keeps it off for bandwidth)."""
        self._hint("switch_on", enabled=True)
        return self

    def set_content_preferences(
        self, *, render_dimensions: Sequence[float] | Mapping[str, float]
    ) -> RemoteVideoTrack:
        """Tell the server the size this track is rendered at, ``(width, height)`` or
        ``{"width", "height"}`` (render hint ``render_dimensions``): with simulcast it forwards
        the smallest layer that covers it."""
        size = render_dimensions_of(render_dimensions)
        controls = self._controls
        if controls is None:  # ended (or not a room's track)
            return self
        if controls.content_preferences_mode != "manual":
            raise RuntimeError(
                "set_content_preferences() needs connect(bandwidth_profile={'video':"
                " {'content_preferences_mode': 'manual'}})"
            )
        controls.set_render_hint(self.sid, render_dimensions=size)
        return self

    def _hint(self, method: str, *, enabled: bool) -> None:
        controls = self._controls
        if controls is None:  # ended (or not a room's track)
            return
        if controls.client_track_switch_off_control != "manual":
            raise RuntimeError(
                f"{method}() needs connect(bandwidth_profile={{'video':"
                " {'client_track_switch_off_control': 'manual'}})"
            )
        controls.set_render_hint(self.sid, enabled=enabled)


class RemoteDataTrack(RemoteTrack):
    """Emits ``message`` with ``(data, track)`` for each message (``str`` or ``bytes``)."""

    kind = "data"

    def __init__(self, sid: str, name: str, channel: Any) -> None:
        super().__init__(sid, name, True)
        self.channel = channel
        self.ordered: bool = bool(getattr(channel, "ordered", True))
        self.max_packet_life_time: int | None = getattr(channel, "maxPacketLifeTime", None)
        self.max_retransmits: int | None = getattr(channel, "maxRetransmits", None)
        channel.on("message", self._message)

    def _message(self, data: MessageData) -> None:
        self.emit("message", data, self)

    def _rebind(self, channel: Any) -> None:
        """Messages come on ``channel`` (of the room's new peer connection) from now on."""
        with contextlib.suppress(Exception):
            self.channel.remove_listener("message", self._message)
        self.channel = channel
        channel.on("message", self._message)

    def _end(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.remove_listener("message", self._message)


AnyRemoteTrack = RemoteAudioTrack | RemoteVideoTrack | RemoteDataTrack
