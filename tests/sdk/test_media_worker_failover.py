"""Media worker failover: kill -9 (or drain) of the worker hosting rooms moves them, sessions
included, to the other worker; every SDK participant's media resumes there without the
application doing anything, with the same participant and track SIDs.

Two media workers run as subprocesses beside the in-process control plane, so one can be killed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from atrium_video import RemoteVideoTrack, Room
from tests.support.processes import ServiceProcess
from tests.support.sdk import Recorder, full_tracks, join, remote, sees
from tests.support.stack import WITH_CALLBACKS, Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually
from tests.support.webhook import Webhook

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.stack(WITH_CALLBACKS)]


@pytest.fixture
def workers(stacks: StackFactory) -> dict[str, ServiceProcess]:
    """Two media workers as subprocesses, by worker id; stopped with the stack."""
    return {wid: stacks.spawn("media", media_worker_id=wid) for wid in ("wa", "wb")}


async def placement(redis: Redis, room_sid: str) -> str | None:
    value = await redis.get(f"atrium:room:{room_sid}:worker")
    return str(value) if value is not None else None


def video_from(room: Room, identity: str) -> RemoteVideoTrack:
    track = remote(room, identity, "video")
    assert isinstance(track, RemoteVideoTrack)
    return track


def frames_at_least(track: RemoteVideoTrack, count: int) -> Callable[[], bool]:
    return lambda: track.frames_received >= count


def is_connected(room: Room) -> Callable[[], bool]:
    return lambda: room.state == "connected"


async def media_resumes(track: RemoteVideoTrack, since: float, frames: int = 15) -> float:
    """Seconds from ``since`` until ``frames`` new frames arrived on ``track``."""
    start = track.frames_received
    await eventually(
        lambda: track.frames_received >= start + frames,
        timeout=30,
        interval=0.02,
        message=f"new frames on {track.sid}",
    )
    return time.monotonic() - since


async def pairs_in_rooms(
    stack: Stack, tenant: Tenant, webhook: Webhook, names: list[str]
) -> list[tuple[Room, Recorder, Room, Recorder]]:
    rooms = []
    for name in names:
        await asyncio.to_thread(
            stack.rest(tenant).video.v1.rooms.create,
            unique_name=name,
            status_callback=webhook.url("/events"),
        )
        first, first_seen = await join(stack, tenant, f"{name}-a", name, tracks=full_tracks())
        second, second_seen = await join(stack, tenant, f"{name}-b", name, tracks=full_tracks())
        rooms.append((first, first_seen, second, second_seen))
    for first, _, second, _ in rooms:
        await eventually(sees(first, second.local_participant.identity, 3), timeout=20)
        await eventually(sees(second, first.local_participant.identity, 3), timeout=20)
    return rooms


async def test_kill9_of_a_media_worker_moves_its_rooms_and_media_resumes(
    stack: Stack,
    tenant: Tenant,
    webhook: Webhook,
    redis: Redis,
    workers: dict[str, ServiceProcess],
) -> None:
    rooms = await pairs_in_rooms(stack, tenant, webhook, ["fo-one", "fo-two", "fo-three"])
    try:
        where = {r[0].sid: await placement(redis, r[0].sid) for r in rooms}
        victim = where[rooms[0][0].sid]
        assert victim in workers
        survivor = next(w for w in workers if w != victim)
        moving = [r for r in rooms if where[r[0].sid] == victim]
        staying = [r for r in rooms if where[r[0].sid] == survivor]
        before = {
            room.local_participant.identity: (room.sid, room.local_participant.sid)
            for r in rooms
            for room in (r[0], r[2])
        }
        tracks = {
            room.local_participant.identity: video_from(room, other.local_participant.identity)
            for first, _, second, _ in rooms
            for room, other in ((first, second), (second, first))
        }

        for track in tracks.values():  # media flows everywhere before the kill
            await eventually(frames_at_least(track, 10), timeout=20, message="media before")
        workers[victim].kill9()
        killed_at = time.monotonic()
        resumed = await asyncio.gather(
            *(
                media_resumes(tracks[room.local_participant.identity], killed_at)
                for r in moving
                for room in (r[0], r[2])
            )
        )
        print(f"\nkill -9 -> media again, per participant (s): {[round(t, 2) for t in resumed]}")
        # The design's target is 5 s; the bound leaves room for a loaded CI machine.
        assert max(resumed) < 15

        for first, first_seen, second, second_seen in moving:
            assert await placement(redis, first.sid) == survivor
            for room, seen in ((first, first_seen), (second, second_seen)):
                await eventually(is_connected(room), timeout=10, message="reconnected")
                assert [e for e, _ in seen.events if e in ("reconnecting", "reconnected")] == [
                    "reconnecting",
                    "reconnected",
                ]
                # Same track objects, no resubscription, nobody left or came.
                assert seen.count("track_unsubscribed") == 0
                assert seen.count("participant_disconnected") == 0
                assert seen.count("disconnected") == 0
        for room_tuple in staying:
            for seen in (room_tuple[1], room_tuple[3]):
                assert seen.count("reconnecting") == 0
        for identity, track in tracks.items():
            room = next(
                rm
                for r in rooms
                for rm in (r[0], r[2])
                if rm.local_participant.identity == identity
            )
            assert (room.sid, room.local_participant.sid) == before[identity]
            assert remote(room, track_owner(rooms, identity), "video") is track

        # Media flows both ways in the moved rooms, and data too.
        first, first_seen, second, _ = moving[0]
        data = next(iter(second.local_participant.data_tracks.values())).track
        data.send("after the failover")  # type: ignore[union-attr]
        await eventually(
            lambda: "after the failover" in first_seen.messages,
            timeout=15,
            message="data after the failover",
        )

        # REST agrees: the same participants, connected, with their published tracks.
        client = stack.rest(tenant)
        for first, _, second, _ in moving:
            listed = await asyncio.to_thread(
                client.video.v1.rooms(first.sid).participants.list, status="connected"
            )
            assert sorted(p.sid for p in listed) == sorted(
                [first.local_participant.sid, second.local_participant.sid]
            )
            for room in (first, second):
                published = await asyncio.to_thread(
                    client.video.v1.rooms(first.sid)
                    .participants(room.local_participant.sid)
                    .published_tracks.list
                )
                assert len(published) == 3
    finally:
        for first, _, second, _ in rooms:
            await first.disconnect()
            await second.disconnect()

    # Callbacks: one participant-connected per participant, nothing removed by the failover.
    def events(room_sid: str, name: str) -> list[dict[str, Any]]:
        return [
            r.params
            for r in webhook.for_room(room_sid)
            if r.params.get("StatusCallbackEvent") == name
        ]

    def both_left(room_sid: str) -> Callable[[], bool]:
        return lambda: len(events(room_sid, "participant-disconnected")) == 2

    for first, _, second, _ in moving:
        await eventually(both_left(first.sid), timeout=20, message="both leave at the end")
        connected = events(first.sid, "participant-connected")
        assert sorted(p["ParticipantSid"] for p in connected) == sorted(
            [first.local_participant.sid, second.local_participant.sid]
        )
        removed = events(first.sid, "track-removed")
        added = events(first.sid, "track-added")
        assert len(added) == 6 and len(removed) == 6  # each once: at publication and at leaving


def track_owner(rooms: list[tuple[Room, Recorder, Room, Recorder]], identity: str) -> str:
    for first, _, second, _ in rooms:
        if first.local_participant.identity == identity:
            return second.local_participant.identity
        if second.local_participant.identity == identity:
            return first.local_participant.identity
    raise KeyError(identity)


async def test_a_drained_worker_hands_its_rooms_over_before_exiting(
    stack: Stack,
    tenant: Tenant,
    webhook: Webhook,
    redis: Redis,
    workers: dict[str, ServiceProcess],
) -> None:
    ((first, first_seen, second, second_seen),) = await pairs_in_rooms(
        stack, tenant, webhook, ["drained"]
    )
    try:
        victim = await placement(redis, first.sid)
        assert victim in workers
        tracks = [video_from(first, "drained-b"), video_from(second, "drained-a")]
        for track in tracks:
            await eventually(frames_at_least(track, 10), timeout=20, message="media before")

        stopped_at = time.monotonic()
        # SIGTERM, as a rolling upgrade does; the worker exits cleanly once it handed over.
        assert await asyncio.to_thread(workers[victim].stop) == 0
        resumed = await asyncio.gather(*(media_resumes(t, stopped_at) for t in tracks))
        print(f"\ndrain -> media again, per participant (s): {[round(t, 2) for t in resumed]}")

        assert await placement(redis, first.sid) == next(w for w in workers if w != victim)
        for room, seen in ((first, first_seen), (second, second_seen)):
            await eventually(is_connected(room), timeout=10, message="reconnected")
            assert seen.count("disconnected") == 0 and seen.count("participant_disconnected") == 0
            assert seen.count("track_unsubscribed") == 0
        assert [video_from(first, "drained-b"), video_from(second, "drained-a")] == tracks
    finally:
        await first.disconnect()
        await second.disconnect()
