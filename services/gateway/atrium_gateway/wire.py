"""Twilio's wire format: parsing form values and rendering resources and list pages.

Twilio sends booleans as lowercase strings, integers as decimal strings, lists as repeated keys
and rules as JSON inside one form field. Each malformed value becomes a 400 with the code Twilio
uses for that parameter, never a 5xx.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel

from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.models import Page, ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.timefmt import parse_filter_date, to_json_date
from atrium_shared.track_api import SubscribedTrackInfo

# The code a malformed value of each parameter is reported with; others get 20001.
PARAMETER_ERROR_CODES = {
    "MaxParticipants": errors.MAX_PARTICIPANTS_OUT_OF_RANGE,
    "EmptyRoomTimeout": errors.TIMEOUT_OUT_OF_RANGE,
    "UnusedRoomTimeout": errors.TIMEOUT_OUT_OF_RANGE,
    "MaxParticipantDuration": errors.TIMEOUT_OUT_OF_RANGE,
    "RecordingRules": errors.RECORDING_RULES_INVALID,
    "Type": errors.ROOM_TYPE_INVALID,
    "StatusCallbackMethod": errors.STATUS_CALLBACK_METHOD_INVALID,
    "StatusCallback": errors.STATUS_CALLBACK_INVALID,
    "Status": errors.STATUS_INVALID,
}


def invalid(parameter: str, detail: str | None = None) -> AtriumError:
    code = PARAMETER_ERROR_CODES.get(parameter, errors.INVALID_PARAMETER)
    return AtriumError(code, detail or f"Invalid {parameter}", 400)


def parse_bool(parameter: str, value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise invalid(parameter, f"{parameter} must be true or false")


def parse_int(parameter: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise invalid(parameter, f"{parameter} must be an integer") from None


def parse_json(parameter: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise invalid(parameter, f"{parameter} must be valid JSON") from None


def parse_date(parameter: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_filter_date(value)
    except ValueError:
        raise invalid(parameter, f"{parameter} must be an ISO 8601 date") from None


class RoomLinks(BaseModel):
    participants: str
    recordings: str
    recording_rules: str
    transcriptions: str


class RoomResource(BaseModel):
    """A Room exactly as Twilio's REST API shows it."""

    sid: str
    status: str
    date_created: str | None
    date_updated: str | None
    account_sid: str
    enable_turn: bool
    unique_name: str
    status_callback: str | None
    status_callback_method: str
    end_time: str | None
    duration: int | None
    type: str
    max_participants: int
    max_participant_duration: int
    max_concurrent_published_tracks: int | None
    record_participants_on_connect: bool
    video_codecs: list[str]
    media_region: str
    audio_only: bool
    empty_room_timeout: int
    unused_room_timeout: int
    large_room: bool
    url: str
    links: RoomLinks


def render_room(room: RoomInfo, base_url: str) -> RoomResource:
    url = f"{base_url}/v1/Rooms/{room.sid}"
    return RoomResource(
        sid=room.sid,
        status=room.status,
        date_created=to_json_date(room.date_created),
        date_updated=to_json_date(room.date_updated),
        account_sid=room.account_sid,
        enable_turn=True,
        unique_name=room.unique_name,
        status_callback=room.status_callback,
        status_callback_method=room.status_callback_method,
        end_time=to_json_date(room.end_time),
        duration=room.duration,
        type=room.type,
        max_participants=room.max_participants,
        max_participant_duration=room.max_participant_duration,
        max_concurrent_published_tracks=room.max_concurrent_published_tracks,
        record_participants_on_connect=room.record_participants_on_connect,
        video_codecs=list(room.video_codecs),
        media_region=room.media_region,
        audio_only=room.audio_only,
        empty_room_timeout=room.empty_room_timeout,
        unused_room_timeout=room.unused_room_timeout,
        large_room=room.large_room,
        url=url,
        links=RoomLinks(
            participants=f"{url}/Participants",
            recordings=f"{url}/Recordings",
            recording_rules=f"{url}/RecordingRules",
            transcriptions=f"{url}/Transcriptions",
        ),
    )


class PageMeta(BaseModel):
    page: int
    page_size: int
    first_page_url: str
    previous_page_url: str | None
    url: str
    next_page_url: str | None
    key: str


def page_meta(
    *,
    list_url: str,
    key: str,
    filters: list[tuple[str, str]],
    page: int,
    page_size: int,
    page_token: str | None,
    next_token: str | None,
    previous_token: str | None,
) -> PageMeta:
    """Twilio's ``meta``: absolute URLs, filters first, then PageSize, Page and PageToken."""

    def link(page_number: int, token: str | None) -> str:
        params = [*filters, ("PageSize", str(page_size)), ("Page", str(page_number))]
        if token:
            params.append(("PageToken", token))
        return f"{list_url}?{urlencode(params, quote_via=quote)}"

    return PageMeta(
        page=page,
        page_size=page_size,
        first_page_url=link(0, None),
        previous_page_url=link(max(page - 1, 0), previous_token) if previous_token else None,
        url=link(page, page_token),
        next_page_url=link(page + 1, next_token) if next_token else None,
        key=key,
    )


class ParticipantLinks(BaseModel):
    published_tracks: str
    subscribed_tracks: str
    subscribe_rules: str
    anonymize: str


class ParticipantResource(BaseModel):
    """A Participant exactly as Twilio's REST API shows it."""

    sid: str
    room_sid: str
    account_sid: str
    status: str
    identity: str
    date_created: str | None
    date_updated: str | None
    start_time: str | None
    end_time: str | None
    duration: int | None
    url: str
    links: ParticipantLinks


def render_participant(participant: ParticipantInfo, base_url: str) -> ParticipantResource:
    url = f"{base_url}/v1/Rooms/{participant.room_sid}/Participants/{participant.sid}"
    return ParticipantResource(
        sid=participant.sid,
        room_sid=participant.room_sid,
        account_sid=participant.account_sid,
        status=participant.status,
        identity=participant.identity,
        date_created=to_json_date(participant.date_created),
        date_updated=to_json_date(participant.date_updated),
        start_time=to_json_date(participant.start_time),
        end_time=to_json_date(participant.end_time),
        duration=participant.duration,
        url=url,
        links=ParticipantLinks(
            published_tracks=f"{url}/PublishedTracks",
            subscribed_tracks=f"{url}/SubscribedTracks",
            subscribe_rules=f"{url}/SubscribeRules",
            anonymize=f"{url}/Anonymize",
        ),
    )


MAX_PAGE_SIZE = 1000


class ListQuery(BaseModel):
    """Paging and date filters common to every list endpoint, parsed and checked."""

    page_size: int
    page: int
    page_token: str | None
    created_on_or_after: datetime | None
    created_before: datetime | None


def parse_list_query(
    page_size: str | None,
    page: str | None,
    page_token: str | None,
    created_after: str | None,
    created_before: str | None,
) -> ListQuery:
    parsed_size = parse_int("PageSize", page_size)
    size = 50 if parsed_size is None else parsed_size
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise AtriumError(errors.INVALID_PARAMETER, "PageSize must be between 1 and 1000", 400)
    parsed_page = parse_int("Page", page)
    number = 0 if parsed_page is None else parsed_page
    if number < 0:
        raise AtriumError(errors.INVALID_PARAMETER, "Page must not be negative", 400)
    return ListQuery(
        page_size=size,
        page=number,
        page_token=page_token or None,
        created_on_or_after=parse_date("DateCreatedAfter", created_after),
        created_before=parse_date("DateCreatedBefore", created_before),
    )


class PublishedTrackResource(BaseModel):
    """A PublishedTrack exactly as Twilio's REST API shows it (no links)."""

    sid: str
    participant_sid: str
    room_sid: str
    name: str
    date_created: str | None
    date_updated: str | None
    enabled: bool
    kind: str
    url: str


def _track_fields(
    track: TrackInfo | SubscribedTrackInfo, base_url: str, collection: str
) -> dict[str, object]:
    """The fields both track resources share; ``collection`` names the list the URL is in."""
    return {
        "sid": track.sid,
        "participant_sid": track.participant_sid,
        "room_sid": track.room_sid,
        "name": track.name,
        "date_created": to_json_date(track.date_created),
        "date_updated": to_json_date(track.date_updated),
        "enabled": track.enabled,
        "kind": track.kind,
        "url": (
            f"{base_url}/v1/Rooms/{track.room_sid}/Participants/{track.participant_sid}"
            f"/{collection}/{track.sid}"
        ),
    }


def render_published_track(track: TrackInfo, base_url: str) -> PublishedTrackResource:
    return PublishedTrackResource.model_validate(_track_fields(track, base_url, "PublishedTracks"))


class SubscribedTrackResource(BaseModel):
    """A SubscribedTrack exactly as Twilio's REST API shows it: ``participant_sid`` is the
    subscriber, ``publisher_sid`` the participant that publishes the track."""

    sid: str
    participant_sid: str
    publisher_sid: str
    room_sid: str
    name: str
    date_created: str | None
    date_updated: str | None
    enabled: bool
    kind: str
    url: str


def render_subscribed_track(track: SubscribedTrackInfo, base_url: str) -> SubscribedTrackResource:
    fields = _track_fields(track, base_url, "SubscribedTracks")
    return SubscribedTrackResource.model_validate({**fields, "publisher_sid": track.publisher_sid})


def list_meta(
    list_url: str,
    key: str,
    paging: ListQuery,
    page: Page[Any],
    filters: list[tuple[str, str]] | None = None,
) -> PageMeta:
    """``meta`` for one page of a listing, from the parsed query and the owner's page."""
    return page_meta(
        list_url=list_url,
        key=key,
        filters=filters or [],
        page=paging.page,
        page_size=paging.page_size,
        page_token=paging.page_token,
        next_token=page.next_cursor,
        previous_token=page.previous_cursor,
    )
