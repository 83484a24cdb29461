"""The participant use cases on in-memory fakes: every branch, the races a fake can express, and
the order of what they commit and ask of the track service."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from atrium_participant.usecases import ParticipantUseCases
from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.events import ParticipantConnected, ParticipantDisconnected
from atrium_shared.models import ParticipantInfo
from atrium_shared.participant_api import (
    AdmitParticipantRequest,
    AdmitParticipantResult,
    AnonymizeParticipantRequest,
    DisconnectParticipantRequest,
    DisconnectRoomRequest,
    FetchParticipantRequest,
    ListParticipantsRequest,
    UpdateParticipantRequest,
)
from atrium_shared.settings import Settings
from tests.support.fakes.participant import ParticipantFakes
from tests.support.replies import failure

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
ROOM = "RM" + "1" * 32
OTHER_ROOM = "RM" + "2" * 32
MAX_DURATION = 600
SETTINGS = Settings()


class Participants(ParticipantFakes):
    def replica(self) -> ParticipantUseCases:
        return self.service(SETTINGS).participants

    def seats(self, room_sid: str = ROOM) -> dict[str, str]:
        return dict(self.store.view.seats.get(room_sid, {}))

    def stored(self, sid: str) -> ParticipantInfo:
        return self.store.view.participants[sid]

    def disconnections(self) -> list[ParticipantDisconnected]:
        return [e for e in self.store.uow.committed if isinstance(e, ParticipantDisconnected)]


@pytest.fixture
def fakes() -> Participants:
    return Participants()


@pytest.fixture
def service(fakes: Participants) -> ParticipantUseCases:
    return fakes.replica()


async def admit(
    service: ParticipantUseCases, identity: str, *, room: str = ROOM, capacity: int = 50
) -> AdmitParticipantResult:
    return await service.admit(
        AdmitParticipantRequest(
            account_sid=ACCOUNT,
            room_sid=room,
            identity=identity,
            max_participants=capacity,
            max_participant_duration=MAX_DURATION,
        )
    )


async def seat(service: ParticipantUseCases, identity: str) -> ParticipantInfo:
    return (await admit(service, identity)).participant


def fetch(sid_or_identity: str, *, account: str = ACCOUNT, room: str = ROOM) -> Any:
    return FetchParticipantRequest(
        account_sid=account, room_sid=room, sid_or_identity=sid_or_identity
    )


# admit -------------------------------------------------------------------------------------------
async def test_admit_seats_the_identity_and_starts_its_max_duration(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    result = await admit(service, "alice")

    alice = result.participant
    assert result.evicted is None
    assert (alice.identity, alice.room_sid, alice.status) == ("alice", ROOM, "connected")
    assert alice.start_time == fakes.clock.now()
    assert fakes.stored(alice.sid) == alice
    assert fakes.seats() == {"alice": alice.sid}
    assert fakes.store.view.timers == {alice.sid: fakes.clock.timestamp() + MAX_DURATION}
    [event] = fakes.store.uow.committed
    assert isinstance(event, ParticipantConnected) and event.participant == alice
    assert fakes.tracks.calls == []


@pytest.mark.parametrize(
    ("identity", "code"),
    [
        ("", errors.IDENTITY_INVALID),
        ("   ", errors.IDENTITY_INVALID),
        ("x" * 129, errors.IDENTITY_TOO_LONG),
    ],
)
async def test_an_invalid_identity_is_its_code_and_commits_nothing(
    fakes: Participants, service: ParticipantUseCases, identity: str, code: int
) -> None:
    error = await failure(admit(service, identity))
    assert (error.code, error.status) == (code, 400)
    assert fakes.store.uow.commits == 0


async def test_a_full_room_is_53105_and_commits_nothing(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    await admit(service, "alice", capacity=2)
    await admit(service, "bob", capacity=2)

    error = await failure(admit(service, "carol", capacity=2))

    assert (error.code, error.status) == (errors.ROOM_FULL, 400)
    assert set(fakes.seats()) == {"alice", "bob"}
    assert fakes.committed_types == ["participant-connected"] * 2


async def test_a_duplicate_identity_takes_over_the_seat_even_in_a_full_room(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    first = await seat(service, "alice")
    await admit(service, "bob", capacity=2)
    committed_when_tracks_left: list[list[str]] = []
    fakes.tracks.on_call = lambda sid: committed_when_tracks_left.append(fakes.committed_types)
    fakes.clock.advance(42)

    result = await admit(service, "alice", capacity=2)

    second, evicted = result.participant, result.evicted
    assert evicted is not None and evicted.sid == first.sid
    assert (evicted.status, evicted.duration) == ("disconnected", 42)
    assert fakes.stored(first.sid) == evicted
    assert fakes.seats() == {"alice": second.sid, "bob": fakes.seats()["bob"]}
    assert first.sid not in fakes.store.view.timers and second.sid in fakes.store.view.timers
    # Its tracks were removed before anything of this admission was committed.
    assert fakes.tracks.calls == [first.sid]
    assert committed_when_tracks_left == [["participant-connected"] * 2]
    # The old connection leaves before the new one arrives, in one commit.
    left, joined = fakes.store.uow.committed[-2:]
    assert isinstance(left, ParticipantDisconnected) and left.reason == "duplicate-identity"
    assert left.participant.sid == first.sid
    assert isinstance(joined, ParticipantConnected) and joined.participant == second


async def test_a_seat_held_by_a_participant_already_gone_is_taken_over_quietly(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    first = await seat(service, "alice")
    fakes.store.view.participants[first.sid] = first.model_copy(update={"status": "disconnected"})

    result = await admit(service, "alice", capacity=1)

    assert result.evicted is None
    assert fakes.seats() == {"alice": result.participant.sid}
    assert fakes.committed_types == ["participant-connected"] * 2
    assert fakes.tracks.calls == []


async def test_a_seat_whose_record_is_missing_still_counts_against_capacity(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    fakes.store.view.seats[ROOM] = {"ghost": "PA" + "0" * 32}
    error = await failure(admit(service, "ghost", capacity=1))
    assert error.code == errors.ROOM_FULL


async def test_racing_admissions_for_the_last_seat_let_exactly_one_in(
    fakes: Participants,
) -> None:
    replicas = [fakes.replica() for _ in range(6)]
    outcomes = await asyncio.gather(
        *(admit(r, f"user-{i}", capacity=1) for i, r in enumerate(replicas)),
        return_exceptions=True,
    )

    admitted = [o for o in outcomes if isinstance(o, AdmitParticipantResult)]
    refused = [o for o in outcomes if isinstance(o, AtriumError)]
    assert len(admitted) == 1 and len(refused) == 5
    assert {e.code for e in refused} == {errors.ROOM_FULL}
    assert list(fakes.seats().values()) == [admitted[0].participant.sid]


async def test_racing_connections_of_one_identity_leave_exactly_one_connected(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    await seat(service, "alice")
    replicas = [fakes.replica() for _ in range(3)]

    results = await asyncio.gather(*(admit(r, "alice") for r in replicas))

    connected = [p for p in fakes.store.view.participants.values() if p.status == "connected"]
    assert [p.sid for p in connected] == [fakes.seats()["alice"]]
    assert connected[0].sid == results[-1].participant.sid
    assert fakes.committed_types.count("participant-disconnected") == 3


# disconnect --------------------------------------------------------------------------------------
async def test_disconnect_removes_tracks_first_then_frees_the_seat(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")
    committed_when_tracks_left: list[list[str]] = []
    fakes.tracks.on_call = lambda sid: committed_when_tracks_left.append(fakes.committed_types)
    fakes.clock.advance(61)

    ended = await service.disconnect(
        DisconnectParticipantRequest(
            account_sid=ACCOUNT, room_sid=ROOM, participant_sid=alice.sid, reason="connection-lost"
        )
    )

    assert (ended.status, ended.duration, ended.end_time) == ("disconnected", 61, fakes.clock.now())
    assert fakes.tracks.calls == [alice.sid]
    assert committed_when_tracks_left == [["participant-connected"]]
    event = fakes.store.uow.committed[-1]
    assert isinstance(event, ParticipantDisconnected) and event.reason == "connection-lost"
    assert fakes.seats() == {} and fakes.store.view.timers == {}


@pytest.mark.parametrize("account", [ACCOUNT, OTHER_ACCOUNT])
async def test_disconnecting_an_unknown_or_foreign_participant_is_20404(
    service: ParticipantUseCases, account: str
) -> None:
    alice = await seat(service, "alice")
    target = alice.sid if account == OTHER_ACCOUNT else "PA" + "f" * 32
    error = await failure(
        service.disconnect(
            DisconnectParticipantRequest(account_sid=account, room_sid=ROOM, participant_sid=target)
        )
    )
    assert (error.code, error.status) == (errors.NOT_FOUND, 404)


async def test_disconnecting_twice_changes_nothing_the_second_time(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")
    request = DisconnectParticipantRequest(
        account_sid=ACCOUNT, room_sid=ROOM, participant_sid=alice.sid
    )
    first = await service.disconnect(request)
    fakes.clock.advance(10)

    second = await service.disconnect(request)

    assert second == first
    assert fakes.committed_types == ["participant-connected", "participant-disconnected"]
    assert fakes.tracks.calls == [alice.sid]


async def test_a_seat_held_by_a_newer_connection_is_kept(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    old = await seat(service, "alice")
    newer = await seat(service, "alice")
    # A stale connection of the identity that is still connected (it lost a race).
    fakes.store.view.participants[old.sid] = old

    await service.disconnect(
        DisconnectParticipantRequest(account_sid=ACCOUNT, room_sid=ROOM, participant_sid=old.sid)
    )

    assert fakes.seats() == {"alice": newer.sid}
    assert fakes.stored(newer.sid).status == "connected"


async def test_disconnect_room_disconnects_everyone_in_one_commit(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    seated = [await seat(service, name) for name in ("alice", "bob", "carol")]
    other = (await admit(service, "dave", room=OTHER_ROOM)).participant
    commits = fakes.store.uow.commits

    result = await service.disconnect_room(
        DisconnectRoomRequest(account_sid=ACCOUNT, room_sid=ROOM)
    )

    assert sorted(p.sid for p in result.disconnected) == sorted(p.sid for p in seated)
    assert {p.status for p in result.disconnected} == {"disconnected"}
    assert fakes.store.uow.commits == commits + 1
    assert {e.reason for e in fakes.disconnections()} == {"room-ended"}
    assert sorted(fakes.tracks.calls) == sorted(p.sid for p in seated)
    assert fakes.seats() == {} and fakes.stored(other.sid).status == "connected"


async def test_a_seat_without_a_record_is_skipped_when_the_room_ends(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")
    fakes.store.view.seats[ROOM]["ghost"] = "PA" + "0" * 32

    result = await service.disconnect_room(
        DisconnectRoomRequest(account_sid=ACCOUNT, room_sid=ROOM)
    )

    assert [p.sid for p in result.disconnected] == [alice.sid]


async def test_disconnecting_an_empty_room_commits_nothing(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    result = await service.disconnect_room(
        DisconnectRoomRequest(account_sid=ACCOUNT, room_sid=ROOM)
    )
    assert result.disconnected == [] and fakes.store.uow.commits == 0


# fetch / resolve ---------------------------------------------------------------------------------
async def test_fetch_by_sid_or_by_the_identity_connected_now(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    old = await seat(service, "alice")
    fakes.clock.advance(1)
    current = await seat(service, "alice")  # replaces the old connection

    assert await service.fetch(fetch(old.sid)) == fakes.stored(old.sid)
    assert await service.fetch(fetch("alice")) == current


async def test_an_identity_that_left_resolves_to_its_newest_connection(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    await seat(service, "alice")
    fakes.clock.advance(1)
    newest = await seat(service, "alice")
    await service.update(
        UpdateParticipantRequest(
            account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity="alice", status="disconnected"
        )
    )

    fetched = await service.fetch(fetch("alice"))

    assert fetched.sid == newest.sid and fetched.status == "disconnected"


@pytest.mark.parametrize(
    ("sid_or_identity", "account", "room"),
    [
        ("nobody", ACCOUNT, ROOM),
        ("PA" + "f" * 32, ACCOUNT, ROOM),
        ("alice", OTHER_ACCOUNT, ROOM),
        ("alice", ACCOUNT, OTHER_ROOM),
    ],
)
async def test_an_unknown_or_foreign_participant_is_20404(
    service: ParticipantUseCases, sid_or_identity: str, account: str, room: str
) -> None:
    alice = await seat(service, "alice")
    for target in {sid_or_identity, alice.sid if sid_or_identity == "alice" else sid_or_identity}:
        error = await failure(service.fetch(fetch(target, account=account, room=room)))
        assert (error.code, error.status) == (errors.NOT_FOUND, 404)
        assert target in error.message


# update (kick) -----------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [None, "connected", "reconnecting"])
async def test_the_only_update_is_status_disconnected(
    fakes: Participants, service: ParticipantUseCases, status: str | None
) -> None:
    await seat(service, "alice")
    error = await failure(
        service.update(
            UpdateParticipantRequest(
                account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity="alice", status=status
            )
        )
    )
    assert (error.code, error.status) == (errors.INVALID_PARAMETER, 400)
    assert fakes.committed_types == ["participant-connected"]


async def test_a_kick_disconnects_with_reason_kicked_and_a_second_kick_changes_nothing(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")
    kick = UpdateParticipantRequest(
        account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity=alice.sid, status="disconnected"
    )

    kicked = await service.update(kick)
    again = await service.update(kick)

    assert kicked.status == "disconnected" and again == kicked
    [event] = fakes.disconnections()
    assert event.reason == "kicked"


# list --------------------------------------------------------------------------------------------
async def test_list_pages_newest_first_and_filters(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    seated = []
    for name in ("alice", "bob", "carol"):
        seated.append(await seat(service, name))
        fakes.clock.advance(1)
    await service.disconnect(
        DisconnectParticipantRequest(
            account_sid=ACCOUNT, room_sid=ROOM, participant_sid=seated[1].sid
        )
    )

    first = await service.list(
        ListParticipantsRequest(account_sid=ACCOUNT, room_sid=ROOM, page_size=1)
    )
    second = await service.list(
        ListParticipantsRequest(
            account_sid=ACCOUNT, room_sid=ROOM, page_size=1, cursor=first.next_cursor
        )
    )
    gone = await service.list(
        ListParticipantsRequest(account_sid=ACCOUNT, room_sid=ROOM, status="disconnected")
    )
    named = await service.list(
        ListParticipantsRequest(account_sid=ACCOUNT, room_sid=ROOM, identity="alice")
    )

    assert [p.identity for p in first.items + second.items] == ["carol", "alice"]
    assert first.next_cursor is not None and second.next_cursor is None
    assert [p.identity for p in gone.items] == ["bob"]
    assert [p.sid for p in named.items] == [seated[0].sid]


async def test_list_shows_nothing_of_another_account(service: ParticipantUseCases) -> None:
    await seat(service, "alice")
    page = await service.list(ListParticipantsRequest(account_sid=OTHER_ACCOUNT, room_sid=ROOM))
    assert page.items == []


async def test_a_page_token_we_did_not_issue_is_20001(service: ParticipantUseCases) -> None:
    error = await failure(
        service.list(ListParticipantsRequest(account_sid=ACCOUNT, room_sid=ROOM, cursor="bogus"))
    )
    assert (error.code, error.status) == (errors.INVALID_PARAMETER, 400)


# MaxParticipantDuration --------------------------------------------------------------------------
async def test_a_participant_is_disconnected_at_its_max_duration_and_not_before(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")

    fakes.clock.advance(MAX_DURATION - 1)
    assert await service.fire_due_timers() == 0
    assert fakes.stored(alice.sid).status == "connected"

    fakes.clock.advance(1)
    assert await service.fire_due_timers() == 1
    ended = fakes.stored(alice.sid)
    assert (ended.status, ended.duration) == ("disconnected", MAX_DURATION)
    [event] = fakes.disconnections()
    assert event.reason == "max-duration"
    assert fakes.tracks.calls == [alice.sid]
    assert fakes.store.view.timers == {} and fakes.seats() == {}


async def test_two_replicas_disconnect_a_participant_at_its_deadline_exactly_once(
    fakes: Participants,
) -> None:
    replicas = [fakes.replica() for _ in range(3)]
    seated = [await seat(replicas[0], name) for name in ("alice", "bob")]
    fakes.clock.advance(MAX_DURATION)

    fired = await asyncio.gather(*(r.fire_due_timers() for r in replicas))

    assert sum(fired) == len(seated)
    disconnected = fakes.disconnections()
    assert sorted(e.participant.sid for e in disconnected) == sorted(p.sid for p in seated)
    assert fakes.store.view.timers == {}


async def test_a_deadline_of_an_unknown_or_departed_participant_is_dropped(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")
    await service.disconnect(
        DisconnectParticipantRequest(account_sid=ACCOUNT, room_sid=ROOM, participant_sid=alice.sid)
    )
    ghost = "PA" + "0" * 32
    fakes.store.view.timers.update({alice.sid: 0.0, ghost: 0.0})

    assert await service.fire_due_timers() == 0

    assert sorted(fakes.store.timers.dropped) == sorted([alice.sid, ghost])
    assert fakes.store.view.timers == {}
    assert fakes.committed_types == ["participant-connected", "participant-disconnected"]


async def test_a_deadline_waits_while_the_track_service_is_down(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")
    fakes.clock.advance(MAX_DURATION)
    fakes.tracks.fail = AtriumError(errors.SERVICE_UNAVAILABLE, "down", 503)

    error = await failure(service.fire_due_timers())

    assert error.status == 503
    assert fakes.stored(alice.sid).status == "connected"
    assert alice.sid in fakes.store.view.timers
    fakes.tracks.fail = None
    assert await service.fire_due_timers() == 1


# Anonymize -------------------------------------------------------------------------------------
async def test_anonymize_replaces_the_identity_with_the_sid_once(
    fakes: Participants, service: ParticipantUseCases
) -> None:
    alice = await seat(service, "alice")
    request = AnonymizeParticipantRequest(
        account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity="alice"
    )
    # Still connected: its identity is in use (seat, tracks, the worker's session).
    error = await failure(service.anonymize(request))
    assert (error.code, error.status) == (errors.INVALID_PARAMETER, 400)

    await service.update(
        UpdateParticipantRequest(
            account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity=alice.sid, status="disconnected"
        )
    )
    anonymous = await service.anonymize(request)  # found by identity one last time
    assert anonymous.identity == alice.sid and anonymous.status == "disconnected"
    assert fakes.committed_types[-1] == "participant-anonymized"
    # The identity no longer finds it; the SID does, and a second call changes nothing.
    missing = await failure(service.fetch(fetch("alice")))
    assert missing.code == errors.NOT_FOUND
    assert (await service.fetch(fetch(alice.sid))).identity == alice.sid
    again = AnonymizeParticipantRequest(
        account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity=alice.sid
    )
    assert await service.anonymize(again) == anonymous
    assert fakes.committed_types.count("participant-anonymized") == 1
    other = AnonymizeParticipantRequest(
        account_sid="AC" + "f" * 32, room_sid=ROOM, sid_or_identity=alice.sid
    )
    assert (await failure(service.anonymize(other))).code == errors.NOT_FOUND
