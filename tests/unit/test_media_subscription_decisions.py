"""How the media worker takes the track service's subscription decisions (no media): a decision
made with an older rules version never undoes a newer one, and each is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from atrium_media.signaling.room_host import RoomHost
from atrium_media.signaling.session import ParticipantSession
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.track_api import PublishedTrackOutcome

NOW = datetime(2026, 1, 2, tzinfo=UTC)
ACCOUNT = "AC" + "0" * 32
ROOM = "RM" + "1" * 32
ALICE = "PA" + "a" * 32
BOB = "PA" + "b" * 32
MIC, CAM, NEW = ("MT" + c * 32 for c in "123")


async def _send(*args: Any) -> None:
    return None


def session(sid: str) -> ParticipantSession:
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
        connection_id=None,
        reply_subject=None,
        send_frame=_send,
    )


def host() -> tuple[RoomHost, ParticipantSession, ParticipantSession]:
    room = RoomInfo(
        sid=ROOM, account_sid=ACCOUNT, unique_name="r", date_created=NOW, date_updated=NOW
    )
    room_host = RoomHost(room, control=None)  # type: ignore[arg-type]
    alice, bob = session(ALICE), session(BOB)
    room_host.sessions = {ALICE: alice, BOB: bob}
    return room_host, alice, bob


def outcome(sid: str, subscribers: list[str], decided: dict[str, int]) -> PublishedTrackOutcome:
    track = TrackInfo(
        sid=sid,
        room_sid=ROOM,
        account_sid=ACCOUNT,
        participant_sid=ALICE,
        name="cam",
        kind="video",
        enabled=True,
        date_created=NOW,
        date_updated=NOW,
    )
    return PublishedTrackOutcome(
        client_id=sid, track=track, added=True, subscribers=subscribers, decided=decided
    )


async def test_decisions_follow_versions_and_leave_unconsidered_tracks_alone() -> None:
    room_host, alice, bob = host()
    assert room_host.apply_decision(bob, 0, [MIC, CAM], [MIC, CAM])
    assert bob.wanted == {MIC, CAM}
    # Version 2 (exclude the camera) arrives before version 1: version 1 is moot.
    assert room_host.apply_decision(bob, 2, [MIC, CAM], [MIC])
    assert not room_host.apply_decision(bob, 1, [MIC, CAM], [MIC, CAM])
    assert bob.wanted == {MIC} and bob.rules_version == 2
    # The same decision again changes nothing.
    assert room_host.apply_decision(bob, 2, [MIC, CAM], [MIC])
    assert bob.wanted == {MIC}
    # A track the decision did not know of (published after it was made) is left alone.
    bob.wanted.add(NEW)
    assert room_host.apply_decision(bob, 2, [MIC, CAM], [MIC, CAM])
    assert bob.wanted == {MIC, CAM, NEW}
    await alice.close()
    await bob.close()


async def test_publish_decisions_yield_to_newer_rules() -> None:
    room_host, alice, bob = host()
    room_host.apply_decision(bob, 3, [], [])
    # Decided with Bob's version 2: a newer rules change (which considered this track) wins.
    room_host._decide_track(alice, outcome(NEW, [BOB], {BOB: 2}))
    assert NEW not in bob.wanted
    room_host._decide_track(alice, outcome(NEW, [BOB], {BOB: 3}))
    assert NEW in bob.wanted
    room_host._decide_track(alice, outcome(NEW, [], {BOB: 3}))
    assert NEW not in bob.wanted
    # The publisher never wants its own track, whatever it is told.
    room_host._decide_track(alice, outcome(MIC, [ALICE], {ALICE: 0}))
    assert MIC not in alice.wanted
    await alice.close()
    await bob.close()
