"""What the REST handlers are given (FastAPI dependencies): the ports, the authenticated account,
the base URL, parsed list queries and the resources a path names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atrium_gateway import wire
from atrium_gateway.media_links import MediaUrlSigner
from atrium_gateway.ports import (
    AccountsPort,
    ParticipantsPort,
    ReadinessProbe,
    RecordingsPort,
    RoomsPort,
    TracksPort,
)
from atrium_shared import sids
from atrium_shared.accounts import Account
from atrium_shared.models import ParticipantInfo, RoomInfo
from atrium_shared.participant_api import FetchParticipantRequest
from atrium_shared.room_api import FetchRoomRequest
from atrium_shared.settings import Settings


@dataclass(frozen=True)
class GatewayPorts:
    """Everything the REST API talks to; ``app.state.ports``."""

    accounts: AccountsPort
    rooms: RoomsPort
    participants: ParticipantsPort
    tracks: TracksPort
    recordings: RecordingsPort
    # Checked in order by /readyz; every one must be ready.
    readiness: Sequence[ReadinessProbe]


def ports_of(request: Request) -> GatewayPorts:
    ports: GatewayPorts = request.app.state.ports
    return ports


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def media_signer_of(request: Request) -> MediaUrlSigner:
    signer: MediaUrlSigner = request.app.state.media_signer
    return signer


Ports = Annotated[GatewayPorts, Depends(ports_of)]
AppSettings = Annotated[Settings, Depends(settings_of)]
MediaSigner = Annotated[MediaUrlSigner, Depends(media_signer_of)]


def _accounts(ports: Ports) -> AccountsPort:
    return ports.accounts


def _rooms(ports: Ports) -> RoomsPort:
    return ports.rooms


def _participants(ports: Ports) -> ParticipantsPort:
    return ports.participants


def _tracks(ports: Ports) -> TracksPort:
    return ports.tracks


def _recordings(ports: Ports) -> RecordingsPort:
    return ports.recordings


Accounts = Annotated[AccountsPort, Depends(_accounts)]
Rooms = Annotated[RoomsPort, Depends(_rooms)]
Participants = Annotated[ParticipantsPort, Depends(_participants)]
Tracks = Annotated[TracksPort, Depends(_tracks)]
Recordings = Annotated[RecordingsPort, Depends(_recordings)]


async def authenticated_account(request: Request, accounts: Accounts) -> Account:
    """The account the request's Basic credentials belong to, or a 20003 (401).

    Every REST router depends on it, so it runs before any parameter is parsed: a request without
    credentials is a 401 whatever else is wrong with it.
    """
    username, password = wire.parse_basic_credentials(request.headers.get("authorization", ""))
    account = await accounts.authenticate(username, password)
    if account is None:
        raise wire.AuthenticationFailed()
    return account


Auth = Annotated[Account, Depends(authenticated_account)]


# The state key CheckFormEncoding (api.application) leaves a malformed form's error under.
FORM_ERROR_STATE = "atrium_form_error"


def well_encoded_input(request: Request) -> None:
    """The query string and form body as UTF-8 with valid escapes, or a 20001 (400)."""
    wire.check_urlencoded("query", request.scope.get("query_string", b""))
    error = request.scope.get("state", {}).get(FORM_ERROR_STATE)
    if error is not None:
        raise error


def rest_router(prefix: str) -> APIRouter:
    """A router of REST v1 resources: each of its routes authenticates first, then refuses
    malformed encodings (before any parameter is parsed)."""
    return APIRouter(
        prefix=prefix,
        dependencies=[Depends(authenticated_account), Depends(well_encoded_input)],
    )


def base_url(request: Request, settings: AppSettings) -> str:
    """ATRIUM_PUBLIC_URL when set, otherwise the scheme and Host the client used."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


BaseUrl = Annotated[str, Depends(base_url)]


# List queries ---------------------------------------------------------------------------------
# Dependencies, so that a malformed query is reported before the path's resources are looked up.
def _rooms_query(parameters: Annotated[wire.RoomListParameters, Query()]) -> wire.ListQuery:
    return wire.parse_list_query(parameters)


def _participants_query(
    parameters: Annotated[wire.ParticipantListParameters, Query()],
) -> wire.ListQuery:
    return wire.parse_list_query(parameters)


def _tracks_query(parameters: Annotated[wire.PageParameters, Query()]) -> wire.ListQuery:
    return wire.parse_list_query(parameters)


def _room_recordings_query(
    parameters: Annotated[wire.RoomRecordingListParameters, Query()],
) -> wire.ListQuery:
    return wire.parse_list_query(parameters)


def _recordings_query(
    parameters: Annotated[wire.RecordingListParameters, Query()],
) -> wire.ListQuery:
    return wire.parse_list_query(parameters)


RoomsQuery = Annotated[wire.ListQuery, Depends(_rooms_query)]
ParticipantsQuery = Annotated[wire.ListQuery, Depends(_participants_query)]
TracksQuery = Annotated[wire.ListQuery, Depends(_tracks_query)]
RoomRecordingsQuery = Annotated[wire.ListQuery, Depends(_room_recordings_query)]
RecordingsQuery = Annotated[wire.ListQuery, Depends(_recordings_query)]


# An update's form. A model, not a lone Form field: a POST without a body must reach the service
# (which answers 53112), not fail FastAPI's validation.
StatusField = Annotated[wire.StatusForm, Form()]


# Resources a path names -----------------------------------------------------------------------
async def room_in_path(account: Auth, rooms: Rooms, room: str) -> RoomInfo:
    """``{room}``: a room of the account, by SID or UniqueName."""
    return await rooms.fetch(FetchRoomRequest(account_sid=account.sid, sid_or_name=room))


PathRoom = Annotated[RoomInfo, Depends(room_in_path)]


async def participant_of(
    participants: ParticipantsPort, room: RoomInfo, participant: str
) -> ParticipantInfo:
    """A participant of ``room`` by SID or identity."""
    return await participants.fetch(
        FetchParticipantRequest(
            account_sid=room.account_sid, room_sid=room.sid, sid_or_identity=participant
        )
    )


async def participant_in_path(
    room: PathRoom, participants: Participants, participant: str
) -> ParticipantInfo:
    """``{room}/Participants/{participant}``."""
    return await participant_of(participants, room, participant)


PathParticipant = Annotated[ParticipantInfo, Depends(participant_in_path)]


async def recordings_room_in_path(account: Auth, rooms: Rooms, room: str) -> str:
    """``{room}`` of ``/Rooms/{room}/Recordings``: the SID as given, without asking the room
    service (recordings outlive the room's record, and the recording service keeps them per
    account, so another account's room has none); a UniqueName names the in-progress room."""
    if sids.is_sid(room, sids.ROOM):
        return room
    return (await rooms.fetch(FetchRoomRequest(account_sid=account.sid, sid_or_name=room))).sid


RecordingsRoom = Annotated[str, Depends(recordings_room_in_path)]


# Replies --------------------------------------------------------------------------------------
def json_response(resource: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(resource.model_dump(mode="json"), status_code=status)
