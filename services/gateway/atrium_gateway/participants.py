"""REST v1 Participants of a room: list, fetch by SID or identity, kick."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atrium_gateway import wire
from atrium_gateway.common import Auth, base_url, filters_in_order, json_response, rpc
from atrium_shared import errors, subjects
from atrium_shared.errors import AtriumError
from atrium_shared.models import ParticipantInfo, RoomInfo
from atrium_shared.participant_api import (
    FetchParticipantRequest,
    ListParticipantsRequest,
    ParticipantPage,
    UpdateParticipantRequest,
)
from atrium_shared.room_api import FetchRoomRequest

router = APIRouter(prefix="/v1/Rooms/{room}")
PARTICIPANT_STATUSES = ("connected", "disconnected", "reconnecting")


class UpdateParticipantForm(BaseModel):
    Status: str | None = None


class ParticipantList(BaseModel):
    participants: list[wire.ParticipantResource]
    meta: wire.PageMeta


async def room_of(request: Request, account_sid: str, room: str) -> RoomInfo:
    return await rpc(
        request,
        subjects.ROOM_FETCH,
        FetchRoomRequest(account_sid=account_sid, sid_or_name=room),
        RoomInfo,
    )


async def participant_of(
    request: Request, account_sid: str, room: str | RoomInfo, participant: str
) -> ParticipantInfo:
    """The participant named in the path (room by SID or name, participant by SID or identity)."""
    found = room if isinstance(room, RoomInfo) else await room_of(request, account_sid, room)
    return await rpc(
        request,
        subjects.PARTICIPANT_FETCH,
        FetchParticipantRequest(
            account_sid=account_sid, room_sid=found.sid, sid_or_identity=participant
        ),
        ParticipantInfo,
    )


@router.get("/Participants", response_model=ParticipantList)
async def list_participants(
    request: Request,
    account: Auth,
    room: str,
    status: Annotated[str | None, Query(alias="Status")] = None,
    identity: Annotated[str | None, Query(alias="Identity")] = None,
    created_after: Annotated[str | None, Query(alias="DateCreatedAfter")] = None,
    created_before: Annotated[str | None, Query(alias="DateCreatedBefore")] = None,
    page_size: Annotated[str | None, Query(alias="PageSize")] = None,
    page: Annotated[str | None, Query(alias="Page")] = None,
    page_token: Annotated[str | None, Query(alias="PageToken")] = None,
) -> JSONResponse:
    if status is not None and status not in PARTICIPANT_STATUSES:
        raise AtriumError(errors.INVALID_PARAMETER, "Status is invalid", 400)
    paging = wire.parse_list_query(page_size, page, page_token, created_after, created_before)
    found = await room_of(request, account.sid, room)
    # Twilio lists connected participants of a live room, and only the disconnected ones of an
    # ended room.
    default_status = "connected" if found.status == "in-progress" else "disconnected"
    result = await rpc(
        request,
        subjects.PARTICIPANT_LIST,
        ListParticipantsRequest(
            account_sid=account.sid,
            room_sid=found.sid,
            status=status or default_status,
            identity=identity,
            created_on_or_after=paging.created_on_or_after,
            created_before=paging.created_before,
            page_size=paging.page_size,
            cursor=paging.page_token,
        ),
        ParticipantPage,
    )
    base = base_url(request)
    meta = wire.list_meta(
        f"{base}/v1/Rooms/{found.sid}/Participants",
        "participants",
        paging,
        result,
        filters=filters_in_order(
            ("Status", status),
            ("Identity", identity),
            ("DateCreatedAfter", created_after),
            ("DateCreatedBefore", created_before),
        ),
    )
    body = ParticipantList(
        participants=[wire.render_participant(p, base) for p in result.items], meta=meta
    )
    return json_response(body, 200)


@router.get("/Participants/{participant}", response_model=wire.ParticipantResource)
async def fetch_participant(
    request: Request, account: Auth, room: str, participant: str
) -> JSONResponse:
    found = await room_of(request, account.sid, room)
    result = await rpc(
        request,
        subjects.PARTICIPANT_FETCH,
        FetchParticipantRequest(
            account_sid=account.sid, room_sid=found.sid, sid_or_identity=participant
        ),
        ParticipantInfo,
    )
    return json_response(wire.render_participant(result, base_url(request)), 200)


@router.post("/Participants/{participant}", response_model=wire.ParticipantResource)
async def update_participant(
    request: Request,
    account: Auth,
    room: str,
    participant: str,
    form: Annotated[UpdateParticipantForm, Form()],
) -> JSONResponse:
    found = await room_of(request, account.sid, room)
    result = await rpc(
        request,
        subjects.PARTICIPANT_UPDATE,
        UpdateParticipantRequest(
            account_sid=account.sid,
            room_sid=found.sid,
            sid_or_identity=participant,
            status=form.Status,
        ),
        ParticipantInfo,
    )
    return json_response(wire.render_participant(result, base_url(request)), 200)
