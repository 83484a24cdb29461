"""REST v1 PublishedTracks and SubscribedTracks of a participant: list and fetch.

Both are served alike (:func:`serve`): paging only, the participant from the path, the track by
SID (PublishedTracks also by name); :data:`COLLECTIONS` says what differs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atrium_gateway import wire
from atrium_gateway.api.dependencies import (
    BaseUrl,
    PathParticipant,
    Tracks,
    TracksQuery,
    json_response,
    rest_router,
)
from atrium_gateway.ports import TracksPort
from atrium_shared.models import Page, ParticipantInfo
from atrium_shared.track_api import (
    FetchPublishedTrackRequest,
    FetchSubscribedTrackRequest,
    ListPublishedTracksRequest,
    ListSubscribedTracksRequest,
)

InfoT = TypeVar("InfoT")

router = rest_router("/v1/Rooms/{room}/Participants/{participant}")


def _of(participant: ParticipantInfo) -> dict[str, str]:
    """What names a participant's tracks in every track request: publisher or subscriber."""
    return {
        "account_sid": participant.account_sid,
        "room_sid": participant.room_sid,
        "participant_sid": participant.sid,
    }


@dataclass(frozen=True)
class TrackCollection(Generic[InfoT]):
    """One of a participant's lists of tracks: its path, wire types and track service calls."""

    name: str
    list_type: type[BaseModel]
    resource_type: type[BaseModel]
    render: Callable[[InfoT, str], BaseModel]
    list_page: Callable[[TracksPort, ParticipantInfo, wire.ListQuery], Awaitable[Page[InfoT]]]
    fetch: Callable[[TracksPort, ParticipantInfo, str], Awaitable[InfoT]]


COLLECTIONS: tuple[TrackCollection[Any], ...] = (
    TrackCollection(
        "PublishedTracks",
        wire.PublishedTrackList,
        wire.PublishedTrackResource,
        wire.render_published_track,
        lambda tracks, owner, query: tracks.list_published(
            ListPublishedTracksRequest(**_of(owner), **query.request_fields())
        ),
        lambda tracks, owner, track: tracks.fetch_published(
            FetchPublishedTrackRequest(**_of(owner), sid_or_name=track)
        ),
    ),
    TrackCollection(
        "SubscribedTracks",
        wire.SubscribedTrackList,
        wire.SubscribedTrackResource,
        wire.render_subscribed_track,
        lambda tracks, owner, query: tracks.list_subscribed(
            ListSubscribedTracksRequest(**_of(owner), **query.request_fields())
        ),
        lambda tracks, owner, track: tracks.fetch_subscribed(
            FetchSubscribedTrackRequest(**_of(owner), sid=track)
        ),
    ),
)


def serve(collection: TrackCollection[Any]) -> None:
    """``GET .../{name}`` (a page of the list) and ``GET .../{name}/{track}`` (one track)."""

    async def list_tracks(
        query: TracksQuery, owner: PathParticipant, tracks: Tracks, base: BaseUrl
    ) -> JSONResponse:
        found = await collection.list_page(tracks, owner, query)
        url = f"{wire.participant_url(base, owner.room_sid, owner.sid)}/{collection.name}"
        listed = wire.render_page(collection.list_type, collection.render, found, query, base, url)
        return json_response(listed)

    async def fetch_track(
        owner: PathParticipant, tracks: Tracks, base: BaseUrl, track: str
    ) -> JSONResponse:
        return json_response(collection.render(await collection.fetch(tracks, owner, track), base))

    # Named like handlers written out by hand: list_published_tracks, fetch_published_track.
    plural = wire.snake_case(collection.name)
    router.add_api_route(
        f"/{collection.name}",
        list_tracks,
        methods=["GET"],
        response_model=collection.list_type,
        name=f"list_{plural}",
    )
    router.add_api_route(
        f"/{collection.name}/{{track}}",
        fetch_track,
        methods=["GET"],
        response_model=collection.resource_type,
        name=f"fetch_{plural.removesuffix('s')}",
    )


for _collection in COLLECTIONS:
    serve(_collection)
