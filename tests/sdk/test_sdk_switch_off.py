"""Track switch-off, track priority and the bandwidth profile in the Python SDK against the real
stack: a subscriber's ``switch_off()`` stops the server forwarding a track and ``switch_on()``
brings it back; the server switches tracks off by itself for ``max_tracks``, a subscribe
priority changes which track that is, and a profile replaced with ``set_bandwidth_profile()``
switches them back on.

aiortc encodes one layer: every publisher here sends a single stream, which the worker's
allocation sees as one layer (its measured rate, its size unknown), on or switched off.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest

from atrium_video import RemoteVideoTrack, Room, create_local_video_track
from tests.support.sdk import Events, Recorder, describe, join, subscribed_video
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.stack(REALTIME)]

MANUAL = {
    "video": {
        "mode": "grid",
        "client_track_switch_off_control": "manual",
        "content_preferences_mode": "manual",
    }
}


@asynccontextmanager
async def rooms(*joining: Coroutine[Any, Any, tuple[Room, Recorder]]) -> AsyncIterator[list[Room]]:
    """Join in order; disconnect every room that joined, whatever happens."""
    joined: list[Room] = []
    try:
        for join_one in joining:
            room, _ = await join_one
            joined.append(room)
        yield joined
    finally:
        for pending in joining[len(joined) :]:
            pending.close()  # never awaited: a join before it failed
        for room in joined:
            await room.disconnect()


async def video_of(room: Room, identity: str) -> RemoteVideoTrack:
    """``identity``'s video track as ``room`` receives it, once subscribed."""

    def probe() -> RemoteVideoTrack | None:
        return subscribed_video(room, identity)

    found = await eventually(
        probe, timeout=30, message=f"{room.local_participant.identity} subscribes to {identity}"
    )
    assert found is not None
    return found


def frames(track: RemoteVideoTrack) -> Callable[[], Awaitable[int]]:
    async def read() -> int:
        return track.frames_received

    return read


def packets(room: Room, track: RemoteVideoTrack) -> Callable[[], Awaitable[int]]:
    """RTP packets received on ``track``'s receiver (aiortc's inbound-rtp stats)."""

    async def read() -> int:
        for receiver in room.peer_connection.getReceivers():
            if receiver.track is track.media_stream_track:
                report = await receiver.getStats()
                return sum(
                    int(s.packetsReceived) for s in report.values() if s.type == "inbound-rtp"
                )
        return 0

    return read


def growing(read: Callable[[], Awaitable[int]], by: int = 15) -> Callable[[], Awaitable[bool]]:
    """A probe: the count grew by ``by`` since the first look."""
    start: list[int] = []

    async def probe() -> bool:
        value = await read()
        if not start:
            start.append(value)
        return value >= start[0] + by

    return probe


def stalled(
    read: Callable[[], Awaitable[int]], quiet: float = 1.5
) -> Callable[[], Awaitable[bool]]:
    """A probe: the count has not moved for ``quiet`` seconds (30 frames, some 90 packets, at
    the rate the test pattern is sent)."""
    last: dict[str, Any] = {"value": None, "since": 0.0}

    async def probe() -> bool:
        value, now = await read(), time.monotonic()
        if value != last["value"]:
            last.update(value=value, since=now)
            return False
        return bool(now - last["since"] >= quiet)

    return probe


async def extensions_ready(room: Room) -> None:
    """Every extension ``room`` asked for has its (open) channel: the SCTP association that
    carries them may come up well after the media does on a busy machine."""

    def probe() -> bool:
        signalings = room._media_signalings()
        return bool(signalings) and all(
            s.transport is not None and s.transport.channel.readyState == "open" for s in signalings
        )

    await eventually(probe, timeout=30, message="the extensions' channels are open")


async def flowing(room: Room, track: RemoteVideoTrack, what: str) -> None:
    await eventually(growing(frames(track)), timeout=20, message=f"{what}: frames decoded")
    await eventually(growing(packets(room, track)), timeout=20, message=f"{what}: packets")


async def stopped(room: Room, track: RemoteVideoTrack, what: str) -> None:
    await eventually(stalled(packets(room, track)), timeout=20, message=f"{what}: no packets")
    await eventually(stalled(frames(track)), timeout=20, message=f"{what}: no frames")


# The subscriber switches a track off and on ------------------------------------------------------
async def test_switch_off_stops_the_forwarding_and_switch_on_brings_it_back(
    stack: Stack, tenant: Tenant
) -> None:
    joining = [
        join(stack, tenant, "ann", "switch-off", tracks=[create_local_video_track(name="cam")]),
        join(stack, tenant, "ben", "switch-off", bandwidth_profile=MANUAL),
    ]
    async with rooms(*joining) as (ann, ben):
        track = await video_of(ben, "ann")
        await extensions_ready(ben)
        await flowing(ben, track, "before switch_off")
        assert not track.is_switched_off
        ann_remote = ben.get_participant("ann")
        assert ann_remote is not None
        publication = ann_remote.tracks[track.sid]
        on_track = Events(track, "switched_off", "switched_on")
        on_publication = Events(publication, "track_switched_off", "track_switched_on")
        on_participant = Events(ann_remote, "track_switched_off", "track_switched_on")
        on_room = Events(ben, "track_switched_off", "track_switched_on")

        track.switch_off()
        await eventually(lambda: track.is_switched_off, timeout=20, message="switched off")
        await stopped(ben, track, "after switch_off")
        assert on_track["switched_off"] == [(track,)]
        assert on_publication["track_switched_off"] == [(track,)]
        assert on_participant["track_switched_off"] == [(track, publication)]
        assert on_room["track_switched_off"] == [(track, publication, ann_remote)]
        hints = ben._render_hints_signaling
        assert hints is not None and hints.results.get(track.sid) == "OK", describe(ben)

        track.switch_on()
        await eventually(lambda: not track.is_switched_off, timeout=20, message="switched on")
        await flowing(ben, track, "after switch_on")
        assert on_track["switched_on"] == [(track,)]
        assert on_room["track_switched_on"] == [(track, publication, ann_remote)]
        # A content preference for a single stream: answered, and the video keeps coming.
        sent = hints.messages_sent
        track.set_content_preferences(render_dimensions=(160, 120))
        await eventually(
            lambda: hints.messages_sent > sent and hints._in_flight is None,
            timeout=20,
            message="the render size hint is answered",
        )
        await flowing(ben, track, "after set_content_preferences")
        assert on_track["switched_off"] == [(track,)]  # nothing else switched it
        assert ann.state == "connected"


# The server switches tracks off ------------------------------------------------------------------
async def join_publishing(stack: Stack, tenant: Tenant, identity: str, room: str) -> Room:
    """Join and publish a camera (one layer: aiortc does not encode simulcast)."""
    joined, _ = await join(stack, tenant, identity, room)
    await joined.local_participant.publish_track(create_local_video_track(name="cam"))
    return joined


def states(tracks: list[RemoteVideoTrack]) -> list[bool]:
    return [t.is_switched_off for t in tracks]


async def test_max_tracks_switches_off_the_lower_ranked_track_and_priority_and_the_profile_move_it(
    stack: Stack, tenant: Tenant
) -> None:
    ann = await join_publishing(stack, tenant, "ann", "max-tracks")
    cat: Room | None = None
    ben: Room | None = None
    try:
        cat = await join_publishing(stack, tenant, "cat", "max-tracks")
        ben, _ = await join(
            stack, tenant, "ben", "max-tracks", bandwidth_profile={"video": {"max_tracks": 1}}
        )
        tracks = [await video_of(ben, "ann"), await video_of(ben, "cat")]
        await extensions_ready(ben)
        # Once the worker measured each stream's rate, only max_tracks (1) of them stay on.
        await eventually(
            lambda: sorted(states(tracks)) == [False, True],
            timeout=20,
            message="one of the two tracks is switched off",
        )
        on, off = (tracks[0], tracks[1]) if tracks[1].is_switched_off else (tracks[1], tracks[0])
        await flowing(ben, on, "the track kept on")
        await stopped(ben, off, "the track beyond max_tracks")
        off_events = Events(off, "switched_off", "switched_on")
        on_events = Events(on, "switched_off", "switched_on")
        room_events = Events(ben, "track_switched_off", "track_switched_on")

        # A subscribe priority ranks the switched-off track first: the two change places.
        off.set_priority("high")
        await eventually(
            lambda: not off.is_switched_off and on.is_switched_off,
            timeout=20,
            message="the high priority track is on, the other off",
        )
        await flowing(ben, off, "the track raised to high")
        await stopped(ben, on, "the track now beyond max_tracks")
        assert off_events["switched_on"] == [(off,)] and on_events["switched_off"] == [(on,)]
        assert [args[0] for args in room_events["track_switched_off"]] == [on]
        assert [args[0] for args in room_events["track_switched_on"]] == [off]

        # A profile whose max_tracks covers both (an RSP update) switches the other back on.
        await ben.set_bandwidth_profile({"video": {"max_tracks": 2}})
        await eventually(
            lambda: states(tracks) == [False, False], timeout=20, message="both tracks on"
        )
        await flowing(ben, on, "the track switched back on")
        await flowing(ben, off, "the track left on")
    finally:
        for room in (ann, cat, ben):
            if room is not None:
                await room.disconnect()
