"""REST v1 Rooms: thin handlers that parse Twilio's wire format and call the room service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atrium_gateway import wire
from atrium_gateway.common import Auth, base_url, filters_in_order, json_response, rpc
from atrium_shared import errors, subjects
from atrium_shared.errors import AtriumError
from atrium_shared.models import RoomInfo
from atrium_shared.room_api import (
    CreateRoomRequest,
    FetchRoomRequest,
    ListRoomsRequest,
    RoomPage,
    UpdateRoomRequest,
)

router = APIRouter(prefix="/v1")
ROOM_STATUSES = ("in-progress", "completed", "failed")


class CreateRoomForm(BaseModel):
    """Twilio's CreateRoom form parameters, kept as sent; parsing happens in :mod:`wire`."""

    EnableTurn: str | None = None
    Type: str | None = None
    UniqueName: str | None = None
    StatusCallback: str | None = None
    StatusCallbackMethod: str | None = None
    MaxParticipants: str | None = None
    RecordParticipantsOnConnect: str | None = None
    TranscribeParticipantsOnConnect: str | None = None
    VideoCodecs: list[str] | None = None
    MediaRegion: str | None = None
    RecordingRules: str | None = None
    TranscriptionsConfiguration: str | None = None
    AudioOnly: str | None = None
    MaxParticipantDuration: str | None = None
    EmptyRoomTimeout: str | None = None
    UnusedRoomTimeout: str | None = None
    LargeRoom: str | None = None


class UpdateRoomForm(BaseModel):
    Status: str | None = None


class RoomList(BaseModel):
    rooms: list[wire.RoomResource]
    meta: wire.PageMeta


async def _room_call(request: Request, subject: str, body: BaseModel) -> RoomInfo:
    return await rpc(request, subject, body, RoomInfo)


@router.post("/Rooms", status_code=201, response_model=wire.RoomResource)
async def create_room(
    request: Request, account: Auth, form: Annotated[CreateRoomForm, Form()]
) -> JSONResponse:
    command = CreateRoomRequest(
        account_sid=account.sid,
        type=form.Type,
        unique_name=form.UniqueName,
        status_callback=form.StatusCallback,
        status_callback_method=form.StatusCallbackMethod,
        max_participants=wire.parse_int("MaxParticipants", form.MaxParticipants),
        record_participants_on_connect=wire.parse_bool(
            "RecordParticipantsOnConnect", form.RecordParticipantsOnConnect
        ),
        transcribe_participants_on_connect=wire.parse_bool(
            "TranscribeParticipantsOnConnect", form.TranscribeParticipantsOnConnect
        ),
        transcriptions_configuration=_json_object(
            "TranscriptionsConfiguration", form.TranscriptionsConfiguration
        ),
        video_codecs=form.VideoCodecs,
        media_region=form.MediaRegion,
        recording_rules=wire.parse_json("RecordingRules", form.RecordingRules),
        audio_only=wire.parse_bool("AudioOnly", form.AudioOnly),
        max_participant_duration=wire.parse_int(
            "MaxParticipantDuration", form.MaxParticipantDuration
        ),
        empty_room_timeout=wire.parse_int("EmptyRoomTimeout", form.EmptyRoomTimeout),
        unused_room_timeout=wire.parse_int("UnusedRoomTimeout", form.UnusedRoomTimeout),
        large_room=wire.parse_bool("LargeRoom", form.LargeRoom),
        enable_turn=wire.parse_bool("EnableTurn", form.EnableTurn),
    )
    room = await _room_call(request, subjects.ROOM_CREATE, command)
    return json_response(wire.render_room(room, base_url(request)), 201)


def _json_object(parameter: str, value: str | None) -> dict[str, object] | None:
    parsed = wire.parse_json(parameter, value)
    if parsed is not None and not isinstance(parsed, dict):
        raise wire.invalid(parameter, f"{parameter} must be a JSON object")
    return parsed


@router.get("/Rooms", response_model=RoomList)
async def list_rooms(
    request: Request,
    account: Auth,
    status: Annotated[str | None, Query(alias="Status")] = None,
    unique_name: Annotated[str | None, Query(alias="UniqueName")] = None,
    created_after: Annotated[str | None, Query(alias="DateCreatedAfter")] = None,
    created_before: Annotated[str | None, Query(alias="DateCreatedBefore")] = None,
    page_size: Annotated[str | None, Query(alias="PageSize")] = None,
    page: Annotated[str | None, Query(alias="Page")] = None,
    page_token: Annotated[str | None, Query(alias="PageToken")] = None,
) -> JSONResponse:
    if status is not None and status not in ROOM_STATUSES:
        raise AtriumError(errors.INVALID_PARAMETER, "Status is invalid", 400)
    paging = wire.parse_list_query(page_size, page, page_token, created_after, created_before)
    query = ListRoomsRequest(
        account_sid=account.sid,
        status=status or "in-progress",
        unique_name=unique_name,
        created_on_or_after=paging.created_on_or_after,
        created_before=paging.created_before,
        page_size=paging.page_size,
        cursor=paging.page_token,
    )
    result = await rpc(request, subjects.ROOM_LIST, query, RoomPage)
    base = base_url(request)
    filters = filters_in_order(
        ("Status", status),
        ("UniqueName", unique_name),
        ("DateCreatedAfter", created_after),
        ("DateCreatedBefore", created_before),
    )
    meta = wire.list_meta(f"{base}/v1/Rooms", "rooms", paging, result, filters=filters)
    body = RoomList(rooms=[wire.render_room(room, base) for room in result.items], meta=meta)
    return json_response(body, 200)


@router.get("/Rooms/{sid_or_name}", response_model=wire.RoomResource)
async def fetch_room(request: Request, account: Auth, sid_or_name: str) -> JSONResponse:
    room = await _room_call(
        request,
        subjects.ROOM_FETCH,
        FetchRoomRequest(account_sid=account.sid, sid_or_name=sid_or_name),
    )
    return json_response(wire.render_room(room, base_url(request)), 200)


@router.post("/Rooms/{sid_or_name}", response_model=wire.RoomResource)
async def update_room(
    request: Request,
    account: Auth,
    sid_or_name: str,
    form: Annotated[UpdateRoomForm, Form()],
) -> JSONResponse:
    room = await _room_call(
        request,
        subjects.ROOM_UPDATE,
        UpdateRoomRequest(account_sid=account.sid, sid_or_name=sid_or_name, status=form.Status),
    )
    return json_response(wire.render_room(room, base_url(request)), 200)
