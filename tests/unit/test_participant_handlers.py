"""The participant service's NATS handlers, wired by bootstrap() on fakes, under FastStream's
TestNatsBroker: request -> reply body, Twilio codes in error replies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from atrium_participant.bootstrap import bootstrap
from atrium_shared import errors, subjects
from atrium_shared.errors import AtriumError
from atrium_shared.models import ParticipantInfo
from atrium_shared.participant_api import (
    AdmitParticipantRequest,
    AdmitParticipantResult,
    DisconnectParticipantRequest,
    DisconnectRoomRequest,
    DisconnectRoomResult,
    FetchParticipantRequest,
    ListParticipantsRequest,
    ParticipantPage,
    UpdateParticipantRequest,
)
from atrium_shared.settings import Settings
from tests.support.fakes.participant import ParticipantFakes
from tests.support.replies import error_of, result_of

ACCOUNT = "AC" + "a" * 32
ROOM = "RM" + "1" * 32
SETTINGS = Settings()


@pytest.fixture
def fakes() -> ParticipantFakes:
    return ParticipantFakes()


@pytest.fixture
async def broker(fakes: ParticipantFakes) -> AsyncIterator[NatsBroker]:
    async with TestNatsBroker(fakes.service(SETTINGS).broker) as broker:
        yield broker


def admission(identity: str, capacity: int = 50) -> AdmitParticipantRequest:
    return AdmitParticipantRequest(
        account_sid=ACCOUNT,
        room_sid=ROOM,
        identity=identity,
        max_participants=capacity,
        max_participant_duration=600,
    )


async def admit(broker: NatsBroker, identity: str) -> AdmitParticipantResult:
    request = admission(identity)
    return await result_of(broker, subjects.PARTICIPANT_ADMIT, request, AdmitParticipantResult)


async def test_admit_replies_with_the_participant_and_whom_it_evicted(
    broker: NatsBroker, fakes: ParticipantFakes
) -> None:
    first = await admit(broker, "alice")
    assert first.evicted is None and first.participant.identity == "alice"
    second = await admit(broker, "alice")
    assert second.evicted is not None and second.evicted.sid == first.participant.sid
    assert fakes.store.view.seats[ROOM] == {"alice": second.participant.sid}


async def test_admit_failures_reply_with_twilio_codes(broker: NatsBroker) -> None:
    await admit(broker, "alice")
    full = await error_of(broker, subjects.PARTICIPANT_ADMIT, admission("bob", capacity=1))
    assert (full.code, full.status) == (errors.ROOM_FULL, 400)
    nameless = await error_of(broker, subjects.PARTICIPANT_ADMIT, admission(" "))
    assert (nameless.code, nameless.status) == (errors.IDENTITY_INVALID, 400)


async def test_disconnect_replies_with_the_participant_or_20404(broker: NatsBroker) -> None:
    alice = (await admit(broker, "alice")).participant
    request = DisconnectParticipantRequest(
        account_sid=ACCOUNT, room_sid=ROOM, participant_sid=alice.sid
    )
    ended = await result_of(broker, subjects.PARTICIPANT_DISCONNECT, request, ParticipantInfo)
    assert ended.status == "disconnected"
    missing = await error_of(
        broker,
        subjects.PARTICIPANT_DISCONNECT,
        request.model_copy(update={"participant_sid": "PA" + "f" * 32}),
    )
    assert (missing.code, missing.status) == (errors.NOT_FOUND, 404)


async def test_disconnect_room_replies_with_everyone_disconnected(broker: NatsBroker) -> None:
    seated = {(await admit(broker, name)).participant.sid for name in ("alice", "bob")}
    request = DisconnectRoomRequest(account_sid=ACCOUNT, room_sid=ROOM)
    reply = await result_of(
        broker, subjects.PARTICIPANT_DISCONNECT_ROOM, request, DisconnectRoomResult
    )
    assert {p.sid for p in reply.disconnected} == seated


async def test_fetch_and_list_reply_with_participants_or_twilio_codes(
    broker: NatsBroker,
) -> None:
    alice = (await admit(broker, "alice")).participant
    fetch = FetchParticipantRequest(account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity="alice")
    assert await result_of(broker, subjects.PARTICIPANT_FETCH, fetch, ParticipantInfo) == alice
    listing = ListParticipantsRequest(account_sid=ACCOUNT, room_sid=ROOM)
    page = await result_of(broker, subjects.PARTICIPANT_LIST, listing, ParticipantPage)
    assert [p.sid for p in page.items] == [alice.sid]
    bad = await error_of(
        broker, subjects.PARTICIPANT_LIST, listing.model_copy(update={"cursor": "bogus"})
    )
    assert (bad.code, bad.status) == (errors.INVALID_PARAMETER, 400)


async def test_update_kicks_or_replies_20001(broker: NatsBroker) -> None:
    await admit(broker, "alice")
    request = UpdateParticipantRequest(
        account_sid=ACCOUNT, room_sid=ROOM, sid_or_identity="alice", status="disconnected"
    )
    kicked = await result_of(broker, subjects.PARTICIPANT_UPDATE, request, ParticipantInfo)
    assert kicked.status == "disconnected"
    refused = await error_of(
        broker, subjects.PARTICIPANT_UPDATE, request.model_copy(update={"status": "connected"})
    )
    assert (refused.code, refused.status) == (errors.INVALID_PARAMETER, 400)


async def test_a_track_service_that_is_down_replies_its_503(
    broker: NatsBroker, fakes: ParticipantFakes
) -> None:
    alice = (await admit(broker, "alice")).participant
    fakes.tracks.fail = AtriumError(errors.SERVICE_UNAVAILABLE, "Service unavailable", 503)
    down = await error_of(
        broker,
        subjects.PARTICIPANT_DISCONNECT,
        DisconnectParticipantRequest(account_sid=ACCOUNT, room_sid=ROOM, participant_sid=alice.sid),
    )
    assert (down.code, down.status) == (errors.SERVICE_UNAVAILABLE, 503)
    assert fakes.store.view.participants[alice.sid].status == "connected"


def test_bootstrap_without_fakes_wires_redis_and_the_outbox_relay() -> None:
    """No connection is opened: clients connect on first use, and nothing is used here."""
    service = bootstrap(SETTINGS)
    assert service.redis is not None
    assert len(service.loops) == len(service.on_drain) == 2  # timer poller + outbox relay


def test_bootstrap_on_fakes_needs_no_redis_and_runs_no_relay(fakes: ParticipantFakes) -> None:
    service = fakes.service(SETTINGS)
    assert service.redis is None
    assert len(service.loops) == 1  # the duration-timer poller only
