"""A track's publish priority in the media worker (no media): read from the client's
``participant.tracks[].priority``, told to the track service and to the other clients, kept
across a handover, and fed to the layer allocation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from atrium_media.signaling.bandwidth import SubscriberView, allocate_layers, video_profile_of
from atrium_media.signaling.handover import SessionRecord, restore, snapshot
from atrium_media.signaling.room_host import RoomHost
from atrium_media.signaling.session import ClientTrack, ParticipantSession, signaled_priority
from atrium_shared.errors import NOT_FOUND, AtriumError
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo, TrackPriority
from atrium_shared.track_api import PublishedTrackOutcome, PublishTracksResult, TrackToPublish
from tests.unit.test_media_bandwidth import LARGE, SMALL, FakeForwarder, FakeRouter, state

NOW = datetime(2026, 1, 2, tzinfo=UTC)
ACCOUNT = "AC" + "0" * 32
ROOM = "RM" + "1" * 32
ALICE = "PA" + "a" * 32
BOB = "PA" + "b" * 32
CAROL = "PA" + "c" * 32


def track_info(sid: str, name: str, kind: str, priority: TrackPriority) -> TrackInfo:
    return TrackInfo(
        sid=sid,
        room_sid=ROOM,
        account_sid=ACCOUNT,
        participant_sid=ALICE,
        name=name,
        kind=kind,
        priority=priority,
        date_created=NOW,
        date_updated=NOW,
    )


@dataclass
class TrackService:
    """The track service's side: publishes every track (MT SID from the client id), records
    priority changes (or refuses them, as for a track that just went away)."""

    published: list[TrackToPublish] = field(default_factory=list)
    priorities: list[tuple[str, TrackPriority]] = field(default_factory=list)
    refuse: bool = False

    async def publish(
        self, participant: ParticipantInfo, tracks: list[TrackToPublish], room: Any = None
    ) -> PublishTracksResult:
        self.published += tracks
        return PublishTracksResult(
            tracks=[
                PublishedTrackOutcome(
                    client_id=t.client_id,
                    track=track_info("MT" + t.client_id * 32, t.name, t.kind, t.priority),
                    added=True,
                )
                for t in tracks
            ]
        )

    async def set_priority(self, account_sid: str, track_sid: str, priority: TrackPriority) -> None:
        if self.refuse:
            raise AtriumError(NOT_FOUND, "The requested resource was not found", 404)
        self.priorities.append((track_sid, priority))

    async def subscription(self, subscriber: ParticipantInfo, track_sid: str, on: bool) -> None:
        return None


@dataclass
class Client:
    """What one client was sent (RSP bodies)."""

    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def send(
        self, connection_id: str, subject: str, bodies: list[dict[str, Any]], close: int | None
    ) -> None:
        self.bodies += bodies

    def remote_tracks(self, participant_sid: str) -> list[tuple[int, list[dict[str, Any]]]]:
        """(revision, tracks) of each participant entry about ``participant_sid``."""
        return [
            (entry["revision"], entry["tracks"])
            for body in self.bodies
            for entry in body.get("participants") or []
            if entry["sid"] == participant_sid
        ]


def session(sid: str, client: Client) -> ParticipantSession:
    participant = ParticipantInfo(
        sid=sid,
        room_sid=ROOM,
        account_sid=ACCOUNT,
        identity=sid[-3:],
        status="connected",
        date_created=NOW,
        date_updated=NOW,
        start_time=NOW,
    )
    return ParticipantSession(
        session_id=sid,
        worker_id="w",
        participant=participant,
        connection_id="c-" + sid,
        reply_subject="r",
        send_frame=client.send,
    )


@pytest.fixture
async def room() -> Any:
    service = TrackService()
    info = RoomInfo(
        sid=ROOM, account_sid=ACCOUNT, unique_name="r", date_created=NOW, date_updated=NOW
    )
    host = RoomHost(info, control=service)  # type: ignore[arg-type]
    clients = {sid: Client() for sid in (ALICE, BOB, CAROL)}
    sessions = {sid: session(sid, client) for sid, client in clients.items()}
    host.sessions = dict(sessions)
    allocations: list[int] = []
    host._reallocate = lambda: allocations.append(1)  # type: ignore[method-assign]
    try:
        yield host, service, sessions, clients, allocations
    finally:
        await settle(host)
        for one in sessions.values():
            await one.close()


async def settle(host: RoomHost) -> None:
    """Run what the host spawned (sends to the other clients, reconciles) to the end."""
    while host._tasks:
        await asyncio.gather(*list(host._tasks))


def state_of(revision: int, **priorities: Any) -> dict[str, Any]:
    """Alice's participant state with a video track ``v`` per keyword (its priority)."""
    tracks = []
    for client_id, priority in priorities.items():
        entry = {"id": client_id, "kind": "video", "name": client_id, "enabled": True}
        if priority is not None:
            entry["priority"] = priority
        tracks.append(entry)
    return {"revision": revision, "tracks": tracks}


def test_only_low_standard_and_high_are_publish_priorities() -> None:
    for priority in ("low", "standard", "high"):
        assert signaled_priority(priority) == priority
    for other in (None, "", "urgent", "HIGH", 2, ["high"], {"priority": "high"}):
        assert signaled_priority(other) == "standard"
        assert signaled_priority(other, "low") == "low"


async def test_a_track_is_published_with_its_priority_and_the_others_see_it(room: Any) -> None:
    host, service, sessions, clients, _ = room
    alice = sessions[ALICE]

    await host._apply_participant_state(alice, state_of(1, a="high", b="urgent", c=None))

    assert [(t.client_id, t.priority) for t in service.published] == [
        ("a", "high"),
        ("b", "standard"),
        ("c", "standard"),
    ]
    assert [t["priority"] for t in alice.remote_state()["tracks"]] == [
        "high",
        "standard",
        "standard",
    ]
    await settle(host)
    [(_, tracks)] = clients[BOB].remote_tracks(ALICE)
    assert {t["name"]: t["priority"] for t in tracks} == {
        "a": "high",
        "b": "standard",
        "c": "standard",
    }


async def test_a_priority_change_goes_to_the_track_service_and_the_others(room: Any) -> None:
    host, service, sessions, clients, allocations = room
    alice = sessions[ALICE]
    await host._apply_participant_state(alice, state_of(1, a="standard"))
    cam = alice.tracks["a"]
    assert cam.sid is not None
    revision = alice.state_revision

    await host._apply_participant_state(alice, state_of(2, a="low"))

    assert service.priorities == [(cam.sid, "low")]
    assert cam.priority == "low" and alice.state_revision == revision + 1
    assert allocations == [1]  # the layers are decided again at once
    await settle(host)
    (_, before), (after_revision, after) = clients[BOB].remote_tracks(ALICE)
    assert (before[0]["priority"], after[0]["priority"]) == ("standard", "low")
    assert after_revision == revision + 1
    assert clients[CAROL].remote_tracks(ALICE)[-1][1][0]["priority"] == "low"


async def test_an_unknown_or_missing_priority_and_an_older_revision_change_nothing(
    room: Any,
) -> None:
    host, service, sessions, _, allocations = room
    alice = sessions[ALICE]
    await host._apply_participant_state(alice, state_of(1, a="high"))
    revision = alice.state_revision

    await host._apply_participant_state(alice, state_of(2, a="urgent"))
    await host._apply_participant_state(alice, state_of(3, a=None))
    await host._apply_participant_state(alice, state_of(3, a="low"))  # not a newer revision

    assert alice.tracks["a"].priority == "high" and alice.state_revision == revision
    assert service.priorities == [] and allocations == []


async def test_a_refused_priority_change_is_kept_here_and_the_update_goes_on(room: Any) -> None:
    host, service, sessions, clients, allocations = room
    alice = sessions[ALICE]
    await host._apply_participant_state(alice, state_of(1, a="standard"))
    service.refuse = True

    await host._apply_participant_state(alice, state_of(2, a="high"))

    assert alice.tracks["a"].priority == "high" and allocations == [1]
    await settle(host)
    assert clients[BOB].remote_tracks(ALICE)[-1][1][0]["priority"] == "high"


async def test_the_allocation_gets_each_video_tracks_publish_priority(room: Any) -> None:
    host, _, sessions, _, _ = room
    alice = sessions[ALICE]
    await host._apply_participant_state(alice, state_of(1, a="high", b="low"))
    alice.tracks["m"] = ClientTrack("m", "audio", "mic", True, sid="MTmic", priority="high")
    alice.tracks["x"] = ClientTrack("x", "video", "failed", True, priority="high")  # no SID

    assert host._publish_priorities(list(sessions.values())) == {
        alice.tracks["a"].sid: "high",
        alice.tracks["b"].sid: "low",
    }


def test_allocate_layers_sizes_a_track_by_its_publish_priority() -> None:
    # Render dimensions per priority: a high-priority track is rendered large, others small.
    profile = video_profile_of(
        {
            "bandwidth_profile": {
                "video": {
                    "render_dimensions": {
                        "high": {"width": LARGE[0], "height": LARGE[1]},
                        "standard": {"width": SMALL[0], "height": SMALL[1]},
                        "low": {"width": SMALL[0], "height": SMALL[1]},
                    }
                }
            }
        }
    )
    assert profile is not None
    cam = FakeForwarder("MTcam", (state(0, SMALL), state(1, LARGE)))
    router = FakeRouter({"MTcam": cam})

    standard = allocate_layers(router, BOB, ["MTcam"], SubscriberView(profile), None)
    assert standard.wanted == {"MTcam": 0} and cam.legs[BOB] == 0
    high = allocate_layers(
        router, BOB, ["MTcam"], SubscriberView(profile), None, publish_priorities={"MTcam": "high"}
    )
    assert high.wanted == {"MTcam": 1} and cam.legs[BOB] == 1
    # The subscriber's own priority for the track (track_priority MSP) comes first.
    view = SubscriberView(profile, priorities={"MTcam": "low"})
    allocate_layers(router, BOB, ["MTcam"], view, None, publish_priorities={"MTcam": "high"})
    assert cam.legs[BOB] == 0


async def test_a_handover_keeps_each_tracks_priority() -> None:
    client = Client()
    before = session(ALICE, client)
    before.tracks["a"] = ClientTrack("a", "video", "cam", True, sid="MTcam", priority="high")
    before.tracks["b"] = ClientTrack("b", "audio", "mic", True, sid="MTmic")
    record = snapshot(before)
    assert [t.priority for t in record.tracks] == ["high", "standard"]
    # A record written before priorities were kept reads as standard.
    written = record.model_dump()
    for track in written["tracks"]:
        del track["priority"]
    assert {t.priority for t in SessionRecord.model_validate(written).tracks} == {"standard"}
    after = session(ALICE, client)
    restore(record, after)
    assert {t.client_id: t.priority for t in after.tracks.values()} == {
        "a": "high",
        "b": "standard",
    }
    assert after.remote_state()["tracks"][0]["priority"] == "high"
    await before.close()
    await after.close()
