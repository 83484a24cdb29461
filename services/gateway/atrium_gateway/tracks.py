"""REST v1 PublishedTracks and SubscribedTracks of a participant: list and fetch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atrium_gateway import wire
from atrium_gateway.common import Auth, base_url, json_response, rpc
from atrium_gateway.participants import participant_of
from atrium_shared import subjects
from atrium_shared.models import TrackInfo
from atrium_shared.track_api import (
    FetchPublishedTrackRequest,
    FetchSubscribedTrackRequest,
    ListPublishedTracksRequest,
    ListSubscribedTracksRequest,
    PublishedTrackPage,
    SubscribedTrackInfo,
    SubscribedTrackPage,
)

router = APIRouter(prefix="/v1/Rooms/{room}/Participants/{participant}")


class PublishedTrackList(BaseModel):
    published_tracks: list[wire.PublishedTrackResource]
    meta: wire.PageMeta


class SubscribedTrackList(BaseModel):
    subscribed_tracks: list[wire.SubscribedTrackResource]
    meta: wire.PageMeta


@router.get("/PublishedTracks", response_model=PublishedTrackList)
async def list_published_tracks(
    request: Request,
    account: Auth,
    room: str,
    participant: str,
    page_size: Annotated[str | None, Query(alias="PageSize")] = None,
    page: Annotated[str | None, Query(alias="Page")] = None,
    page_token: Annotated[str | None, Query(alias="PageToken")] = None,
) -> JSONResponse:
    paging = wire.parse_list_query(page_size, page, page_token, None, None)
    owner = await participant_of(request, account.sid, room, participant)
    result = await rpc(
        request,
        subjects.TRACK_PUBLISHED_LIST,
        ListPublishedTracksRequest(
            account_sid=account.sid,
            room_sid=owner.room_sid,
            participant_sid=owner.sid,
            page_size=paging.page_size,
            cursor=paging.page_token,
        ),
        PublishedTrackPage,
    )
    base = base_url(request)
    meta = wire.list_meta(
        f"{base}/v1/Rooms/{owner.room_sid}/Participants/{owner.sid}/PublishedTracks",
        "published_tracks",
        paging,
        result,
    )
    body = PublishedTrackList(
        published_tracks=[wire.render_published_track(t, base) for t in result.items], meta=meta
    )
    return json_response(body, 200)


@router.get("/PublishedTracks/{track}", response_model=wire.PublishedTrackResource)
async def fetch_published_track(
    request: Request, account: Auth, room: str, participant: str, track: str
) -> JSONResponse:
    owner = await participant_of(request, account.sid, room, participant)
    result = await rpc(
        request,
        subjects.TRACK_PUBLISHED_FETCH,
        FetchPublishedTrackRequest(
            account_sid=account.sid,
            room_sid=owner.room_sid,
            participant_sid=owner.sid,
            sid_or_name=track,
        ),
        TrackInfo,
    )
    return json_response(wire.render_published_track(result, base_url(request)), 200)


@router.get("/SubscribedTracks", response_model=SubscribedTrackList)
async def list_subscribed_tracks(
    request: Request,
    account: Auth,
    room: str,
    participant: str,
    page_size: Annotated[str | None, Query(alias="PageSize")] = None,
    page: Annotated[str | None, Query(alias="Page")] = None,
    page_token: Annotated[str | None, Query(alias="PageToken")] = None,
) -> JSONResponse:
    paging = wire.parse_list_query(page_size, page, page_token, None, None)
    subscriber = await participant_of(request, account.sid, room, participant)
    result = await rpc(
        request,
        subjects.TRACK_SUBSCRIBED_LIST,
        ListSubscribedTracksRequest(
            account_sid=account.sid,
            room_sid=subscriber.room_sid,
            participant_sid=subscriber.sid,
            page_size=paging.page_size,
            cursor=paging.page_token,
        ),
        SubscribedTrackPage,
    )
    base = base_url(request)
    meta = wire.list_meta(
        (f"{base}/v1/Rooms/{subscriber.room_sid}/Participants/{subscriber.sid}/SubscribedTracks"),
        "subscribed_tracks",
        paging,
        result,
    )
    body = SubscribedTrackList(
        subscribed_tracks=[wire.render_subscribed_track(t, base) for t in result.items],
        meta=meta,
    )
    return json_response(body, 200)


@router.get("/SubscribedTracks/{track}", response_model=wire.SubscribedTrackResource)
async def fetch_subscribed_track(
    request: Request, account: Auth, room: str, participant: str, track: str
) -> JSONResponse:
    subscriber = await participant_of(request, account.sid, room, participant)
    result = await rpc(
        request,
        subjects.TRACK_SUBSCRIBED_FETCH,
        FetchSubscribedTrackRequest(
            account_sid=account.sid,
            room_sid=subscriber.room_sid,
            participant_sid=subscriber.sid,
            sid=track,
        ),
        SubscribedTrackInfo,
    )
    return json_response(wire.render_subscribed_track(result, base_url(request)), 200)
