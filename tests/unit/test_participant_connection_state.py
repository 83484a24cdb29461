"""Reconnecting participants: the media worker's reports move a participant between connected
and reconnecting (REST shows it), and nothing brings a departed participant back."""

from __future__ import annotations

import pytest

from atrium_participant.usecases import ParticipantUseCases
from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.participant_api import (
    AdmitParticipantRequest,
    DisconnectParticipantRequest,
    SetConnectionStateRequest,
)
from atrium_shared.settings import Settings
from tests.support.fakes.participant import ParticipantFakes

ACCOUNT = "AC" + "a" * 32
ROOM = "RM" + "1" * 32


@pytest.fixture
def fakes() -> ParticipantFakes:
    return ParticipantFakes()


@pytest.fixture
def service(fakes: ParticipantFakes) -> ParticipantUseCases:
    return fakes.service(Settings()).participants


async def seated(service: ParticipantUseCases) -> str:
    admitted = await service.admit(
        AdmitParticipantRequest(
            account_sid=ACCOUNT,
            room_sid=ROOM,
            identity="alice",
            max_participants=5,
            max_participant_duration=600,
        )
    )
    return admitted.participant.sid


def state(sid: str, value: str, account: str = ACCOUNT) -> SetConnectionStateRequest:
    return SetConnectionStateRequest(
        account_sid=account, room_sid=ROOM, participant_sid=sid, state=value
    )


async def test_reconnecting_and_back_without_an_event(
    fakes: ParticipantFakes, service: ParticipantUseCases
) -> None:
    sid = await seated(service)
    events_before = len(fakes.store.uow.committed)
    away = await service.set_connection_state(state(sid, "reconnecting"))
    assert away.status == "reconnecting"
    assert fakes.store.view.participants[sid].status == "reconnecting"
    back = await service.set_connection_state(state(sid, "connected"))
    assert back.status == "connected" and back.version == away.version + 1
    assert len(fakes.store.uow.committed) == events_before  # Twilio sends no callback for it


async def test_a_reconnecting_participant_can_be_disconnected_and_stays_so(
    fakes: ParticipantFakes, service: ParticipantUseCases
) -> None:
    sid = await seated(service)
    await service.set_connection_state(state(sid, "reconnecting"))
    gone = await service.disconnect(
        DisconnectParticipantRequest(
            account_sid=ACCOUNT, room_sid=ROOM, participant_sid=sid, reason="connection-lost"
        )
    )
    assert gone.status == "disconnected"
    late = await service.set_connection_state(state(sid, "connected"))
    assert late.status == "disconnected"
    assert fakes.store.view.participants[sid].status == "disconnected"


async def test_another_account_cannot_touch_it(service: ParticipantUseCases) -> None:
    sid = await seated(service)
    with pytest.raises(AtriumError) as caught:
        await service.set_connection_state(state(sid, "reconnecting", "AC" + "b" * 32))
    assert caught.value.code == errors.NOT_FOUND
