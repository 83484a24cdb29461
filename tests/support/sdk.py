"""The Python client SDK (atrium_video) in tests: joining, recording events, measuring media."""

from __future__ import annotations

import array
import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from av import AudioFrame, VideoFrame

from atrium_video import (
    LocalDataTrack,
    RemoteAudioTrack,
    RemoteVideoTrack,
    Room,
    TwilioError,
    connect,
    create_local_audio_track,
    create_local_video_track,
)
from tests.support.stack import Stack
from tests.support.tenants import Tenant

# The local participant's SID in an offline Room (tests/unit/conftest.py's make_room).
ME = "PA" + "0" * 32


class Events:
    """What one object emitted, by event name, in order."""

    def __init__(self, emitter: Any, *names: str) -> None:
        self.seen: dict[str, list[tuple[Any, ...]]] = {name: [] for name in names}
        for name in names:
            emitter.on(name, lambda *args, name=name: self.seen[name].append(args))

    def __getitem__(self, name: str) -> list[tuple[Any, ...]]:
        return self.seen[name]


class Recorder:
    """Every room event, in order, as (event, detail) tuples."""

    EVENTS = (
        "participant_connected participant_disconnected track_published track_unpublished"
        " track_subscribed track_unsubscribed track_enabled track_disabled track_message"
        " reconnecting reconnected disconnected"
    ).split()

    def __init__(self, room: Room) -> None:
        self.events: list[tuple[str, Any]] = []
        self.messages: list[str | bytes] = []
        self.errors: list[TwilioError | None] = []
        for name in self.EVENTS:
            room.on(name, self._handler(name))

    def _handler(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            if name == "participant_connected" or name == "participant_disconnected":
                self.events.append((name, args[0].identity))
            elif name in ("track_subscribed", "track_unsubscribed"):
                self.events.append((name, args[1].track_sid))
            elif name == "track_message":
                self.messages.append(args[0])
            elif name == "disconnected":
                self.errors.append(args[1])
                self.events.append((name, args[1].code if args[1] else None))
            elif name in ("reconnecting", "reconnected"):
                self.events.append((name, None))
            else:
                self.events.append((name, args[0].track_sid))

        return record

    def count(self, name: str, detail: Any = None) -> int:
        return sum(1 for e, d in self.events if e == name and (detail is None or d == detail))


async def join(
    stack: Stack, tenant: Tenant, identity: str, room: str, **options: Any
) -> tuple[Room, Recorder]:
    connected = await connect(tenant.token(identity), url=stack.signaling_url, name=room, **options)
    return connected, Recorder(connected)


def full_tracks() -> list[Any]:
    return [
        create_local_audio_track(name="mic"),
        create_local_video_track(name="cam"),
        LocalDataTrack(name="chat"),
    ]


def describe(room: Room) -> str:
    """Room state for assertion messages."""
    return repr(
        {
            "room": repr(room),
            "participants": {
                p.identity: list(p.tracks.values()) for p in room.participants.values()
            },
            "subscribed": room._subscribed,
            "receivers": list(room._receivers),
            "channels": list(room._remote_channels),
            "signaling": room.peer_connection.signalingState,
            "revision": room._revision,
            "pending": room._offer_pending,
            "local_channels": {k: c.readyState for k, c in room._local_channels.items()},
            "sctp": room.peer_connection.sctp and room.peer_connection.sctp.state,
            "conn": room.peer_connection.connectionState,
        }
    )


def sees(room: Room, identity: str, count: int) -> Callable[[], Awaitable[bool]]:
    """A probe: ``identity`` is in the room with ``count`` tracks, all subscribed."""

    async def probe() -> bool:
        other = room.get_participant(identity)
        ok = (
            other is not None
            and len(other.tracks) == count
            and all(p.is_subscribed for p in other.tracks.values())
        )
        assert ok, describe(room)
        return ok

    return probe


def rms(frame: AudioFrame) -> float:
    """Root mean square of an s16 frame, 0..1."""
    assert frame.format.name in ("s16", "s16p"), frame.format.name
    count = frame.samples * (len(frame.layout.channels) if frame.format.name == "s16" else 1)
    values = array.array("h", bytes(frame.planes[0])[: count * 2])
    return math.sqrt(sum(v * v for v in values) / max(1, len(values))) / 32768


async def audio_energy(track: RemoteAudioTrack, frames: int = 50) -> float:
    loudest = 0.0
    for _ in range(frames):
        frame = await asyncio.wait_for(track.recv(), 5)
        assert isinstance(frame, AudioFrame)
        loudest = max(loudest, rms(frame))
    return loudest


async def distinct_video(track: RemoteVideoTrack, frames: int = 15) -> int:
    seen: set[bytes] = set()
    for _ in range(frames):
        frame = await asyncio.wait_for(track.recv(), 5)
        assert isinstance(frame, VideoFrame) and frame.width > 0
        seen.add(bytes(frame.planes[0])[::97])
    return len(seen)


def subscribed_video(room: Room, identity: str) -> RemoteVideoTrack | None:
    """``identity``'s video track as ``room`` receives it, or None until subscribed."""
    other = room.get_participant(identity)
    if other is None:
        return None
    for found in other.video_tracks.values():
        if isinstance(found.track, RemoteVideoTrack):
            return found.track
    return None


def remote(room: Room, identity: str, kind: str) -> Any:
    """The track of ``kind`` that ``identity`` publishes, as ``room`` receives it."""
    return publication(room, identity, kind).track


def publication(room: Room, identity: str, kind: str) -> Any:
    """``identity``'s one publication of ``kind``, as ``room`` sees it."""
    other = room.get_participant(identity)
    assert other is not None
    (found,) = [p for p in other.tracks.values() if p.kind == kind]
    return found
