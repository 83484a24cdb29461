"""REST v1 Rooms: create, list, fetch by SID or UniqueName, complete."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import JSONResponse

from atrium_gateway import wire
from atrium_gateway.api.dependencies import (
    Auth,
    BaseUrl,
    Rooms,
    RoomsQuery,
    StatusField,
    json_response,
    rest_router,
)
from atrium_shared.room_api import FetchRoomRequest, ListRoomsRequest, UpdateRoomRequest

router = rest_router("/v1")


@router.post("/Rooms", status_code=201, response_model=wire.RoomResource)
async def create_room(
    request: Request,
    account: Auth,
    rooms: Rooms,
    base: BaseUrl,
    form: Annotated[wire.CreateRoomForm, Form()],
) -> JSONResponse:
    empty = wire.sent_empty((await request.form()).multi_items())
    room = await rooms.create(wire.create_room_request(account.sid, form, empty))
    return json_response(wire.render_room(room, base), 201)


@router.get("/Rooms", response_model=wire.RoomList)
async def list_rooms(account: Auth, query: RoomsQuery, rooms: Rooms, base: BaseUrl) -> JSONResponse:
    fields = query.request_fields(status="in-progress")
    found = await rooms.list_rooms(ListRoomsRequest(account_sid=account.sid, **fields))
    url = f"{base}/v1/Rooms"
    return json_response(wire.render_page(wire.RoomList, wire.render_room, found, query, base, url))


@router.get("/Rooms/{sid_or_name}", response_model=wire.RoomResource)
async def fetch_room(account: Auth, rooms: Rooms, base: BaseUrl, sid_or_name: str) -> JSONResponse:
    room = await rooms.fetch(FetchRoomRequest(account_sid=account.sid, sid_or_name=sid_or_name))
    return json_response(wire.render_room(room, base))


# Twilio's spec answers an update with 202 (the helper libraries accept any 2xx).
@router.post("/Rooms/{sid_or_name}", status_code=202, response_model=wire.RoomResource)
async def update_room(
    account: Auth, rooms: Rooms, base: BaseUrl, sid_or_name: str, form: StatusField
) -> JSONResponse:
    update = UpdateRoomRequest(account_sid=account.sid, sid_or_name=sid_or_name, status=form.Status)
    return json_response(wire.render_room(await rooms.update(update), base), 202)
