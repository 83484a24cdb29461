"""Twilio's wire format: parsing credentials and form values, rendering resources and list pages.

Twilio sends booleans as lowercase strings, integers as decimal strings, lists as repeated keys
and rules as JSON inside one form field. Each malformed value becomes a 400 with the code Twilio
uses for that parameter, never a 5xx. Pure functions and models: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field

from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.models import Page, ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.recording_api import (
    ListRecordingsRequest,
    RecordingInfo,
    RecordingRules,
    RecordingSettings,
    SetRecordingSettingsRequest,
)
from atrium_shared.room_api import CreateRoomRequest
from atrium_shared.timefmt import parse_filter_date, to_json_date
from atrium_shared.track_api import SubscribedTrackInfo, SubscribeRules

ResourceT = TypeVar("ResourceT", bound=BaseModel)
ListT = TypeVar("ListT", bound=BaseModel)
InfoT = TypeVar("InfoT")

# Parameters -----------------------------------------------------------------------------------
# The code a malformed value of each parameter is reported with; others get 20001.
PARAMETER_ERROR_CODES = {
    "MaxParticipants": errors.MAX_PARTICIPANTS_OUT_OF_RANGE,
    "EmptyRoomTimeout": errors.TIMEOUT_OUT_OF_RANGE,
    "UnusedRoomTimeout": errors.TIMEOUT_OUT_OF_RANGE,
    "MaxParticipantDuration": errors.MAX_PARTICIPANT_DURATION_OUT_OF_RANGE,
    "RecordingRules": errors.RECORDING_RULES_INVALID,
    "Type": errors.ROOM_TYPE_INVALID,
    "StatusCallbackMethod": errors.STATUS_CALLBACK_METHOD_INVALID,
    "StatusCallback": errors.STATUS_CALLBACK_INVALID,
    "Status": errors.STATUS_INVALID,
}
ROOM_STATUSES = ("in-progress", "completed", "failed")
PARTICIPANT_STATUSES = ("connected", "disconnected", "reconnecting")
RECORDING_STATUSES = ("processing", "completed", "deleted", "failed")
RECORDING_MEDIA_TYPES = ("audio", "video", "data")
# Any 34-character SID (the spec's pattern for SourceSid and GroupingSid).
_ANY_SID = re.compile(r"^[a-zA-Z]{2}[0-9a-fA-F]{32}$")


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


# How deep a JSON parameter may nest: rules and configurations need 3 or 4 levels. Deeper
# values are refused here, before they meet a recursive parser or serializer downstream.
MAX_JSON_DEPTH = 32


def json_depth(value: Any) -> int:
    """How many arrays and objects deep ``value`` nests (0 for a scalar), without recursing."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            pending.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(parameter: str, value: str | None) -> Any:
    """``value`` decoded, or the parameter's 400: not JSON, or nested deeper than
    :data:`MAX_JSON_DEPTH` (json.loads raises RecursionError for very deep text)."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        raise invalid(parameter, f"{parameter} must be valid JSON") from None
    if json_depth(parsed) > MAX_JSON_DEPTH:
        raise invalid(parameter, f"{parameter} nests deeper than {MAX_JSON_DEPTH} levels")
    return parsed


def parse_json_object(parameter: str, value: str | None) -> dict[str, Any] | None:
    parsed = parse_json(parameter, value)
    if parsed is not None and not isinstance(parsed, dict):
        raise invalid(parameter, f"{parameter} must be a JSON object")
    return parsed


def parse_date(parameter: str, value: str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_filter_date(value)
    except ValueError:
        raise invalid(parameter, f"{parameter} must be an ISO 8601 date") from None


# Credentials ----------------------------------------------------------------------------------
class AuthenticationFailed(AtriumError):
    def __init__(self, message: str = "Authenticate") -> None:
        super().__init__(errors.AUTHENTICATE, message, 401)


def parse_basic_credentials(authorization: str) -> tuple[str, str]:
    """The username and password of an ``Authorization: Basic ...`` header, or a 20003."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthenticationFailed("Authentication Error - No credentials provided")
    try:
        username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationFailed() from None
    if not sep:
        raise AuthenticationFailed()
    return username, password


# Forms ----------------------------------------------------------------------------------------
# A ``%`` that does not start an escape of two hex digits.
_BAD_PERCENT_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def check_urlencoded(parameter: str, raw: bytes) -> None:
    """A form body or query string as the client sent it: ASCII, every ``%`` an escape, UTF-8
    once percent-decoded. Else a 20001 (400): the form parser decodes raw bytes as Latin-1 (raw
    UTF-8 too) and invalid escapes as U+FFFD, acting on values the client never sent; the
    helper libraries percent-encode every non-ASCII character."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise invalid(parameter, f"{parameter} must be percent-encoded ASCII") from None
    if _BAD_PERCENT_ESCAPE.search(raw):
        raise invalid(parameter, f"{parameter} has an invalid percent escape")
    try:
        parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise invalid(parameter, f"{parameter} is not valid UTF-8 once percent-decoded") from None


class CreateRoomForm(BaseModel):
    """Twilio's CreateRoom form parameters, kept as sent; :func:`create_room_request` parses."""

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


# CreateRoom parameters that take one of a few values. Sent empty (``Type=``) they are a value
# the service refuses with the parameter's 400, as Twilio does, never the default: FastAPI reads
# an empty form field as a missing one, so the route tells which ones came empty.
CREATE_ROOM_CHOICES = ("Type", "StatusCallbackMethod", "MediaRegion", "VideoCodecs")


def sent_empty(form_items: list[tuple[str, Any]]) -> set[str]:
    """The names of the form fields sent with an empty value."""
    return {name for name, value in form_items if value == ""}


class StatusForm(BaseModel):
    """The form of an update: ``Status`` (``completed`` ends a room, ``disconnected`` removes a
    participant)."""

    Status: str | None = None


def create_room_request(
    account_sid: str, form: CreateRoomForm, empty: set[str] | None = None
) -> CreateRoomRequest:
    """The room service's command from the form, each value parsed as Twilio parses it.
    ``empty`` names the fields sent empty: one of :data:`CREATE_ROOM_CHOICES` reaches the
    service as ``""``, which it refuses."""
    empty = empty or set()

    def choice(name: str, value: str | None) -> str | None:
        return "" if value is None and name in empty else value

    codecs = form.VideoCodecs
    if "VideoCodecs" in empty and "" not in (codecs or []):
        codecs = [*(codecs or []), ""]
    return CreateRoomRequest(
        account_sid=account_sid,
        type=choice("Type", form.Type),
        unique_name=form.UniqueName,
        status_callback=form.StatusCallback,
        status_callback_method=choice("StatusCallbackMethod", form.StatusCallbackMethod),
        max_participants=parse_int("MaxParticipants", form.MaxParticipants),
        record_participants_on_connect=parse_bool(
            "RecordParticipantsOnConnect", form.RecordParticipantsOnConnect
        ),
        transcribe_participants_on_connect=parse_bool(
            "TranscribeParticipantsOnConnect", form.TranscribeParticipantsOnConnect
        ),
        transcriptions_configuration=parse_json_object(
            "TranscriptionsConfiguration", form.TranscriptionsConfiguration
        ),
        video_codecs=codecs,
        media_region=choice("MediaRegion", form.MediaRegion),
        recording_rules=parse_json("RecordingRules", form.RecordingRules),
        audio_only=parse_bool("AudioOnly", form.AudioOnly),
        max_participant_duration=parse_int("MaxParticipantDuration", form.MaxParticipantDuration),
        empty_room_timeout=parse_int("EmptyRoomTimeout", form.EmptyRoomTimeout),
        unused_room_timeout=parse_int("UnusedRoomTimeout", form.UnusedRoomTimeout),
        large_room=parse_bool("LargeRoom", form.LargeRoom),
        enable_turn=parse_bool("EnableTurn", form.EnableTurn),
    )


# Resources ------------------------------------------------------------------------------------
def room_url(base_url: str, room_sid: str) -> str:
    return f"{base_url}/v1/Rooms/{room_sid}"


def participant_url(base_url: str, room_sid: str, participant_sid: str) -> str:
    return f"{room_url(base_url, room_sid)}/Participants/{participant_sid}"


def _json_value(value: object) -> object:
    return to_json_date(value) if isinstance(value, datetime) else value


def _resource(resource_type: type[ResourceT], info: BaseModel, **fields: Any) -> ResourceT:
    """``resource_type`` filled from the fields of ``info`` it shares a name with (dates as
    Twilio writes them in JSON), then from ``fields``."""
    shared = {
        name: _json_value(getattr(info, name))
        for name in resource_type.model_fields
        if name in type(info).model_fields
    }
    return resource_type.model_validate({**shared, **fields})


def _links(links_type: type[ResourceT], url: str) -> ResourceT:
    """A resource's ``links``: each is the resource URL and the subresource's name, which is the
    link's name in CamelCase (``recording_rules`` -> ``.../RecordingRules``)."""
    return links_type.model_validate(
        {
            name: f"{url}/{''.join(part.capitalize() for part in name.split('_'))}"
            for name in links_type.model_fields
        }
    )


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
    url = room_url(base_url, room.sid)
    # Atrium always offers TURN (ICE servers from settings); Twilio shows the flag as true, and
    # an in-progress room's duration as 0 (its examples), the seconds it lasted once ended.
    return _resource(
        RoomResource,
        room,
        enable_turn=True,
        duration=room.duration if room.duration is not None else 0,
        url=url,
        links=_links(RoomLinks, url),
    )


class ParticipantLinks(BaseModel):
    published_tracks: str
    subscribed_tracks: str
    subscribe_rules: str
    anonymize: str


class AnonymizeResource(BaseModel):
    """What ``POST .../Participants/{Sid}/Anonymize`` answers: the participant without
    ``links``, ``identity`` now its SID, ``url`` the Anonymize URL (Twilio's spec)."""

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


class ParticipantResource(AnonymizeResource):
    """A Participant exactly as Twilio's REST API shows it (its fields, then its links)."""

    links: ParticipantLinks


def render_participant(participant: ParticipantInfo, base_url: str) -> ParticipantResource:
    url = participant_url(base_url, participant.room_sid, participant.sid)
    return _resource(ParticipantResource, participant, url=url, links=_links(ParticipantLinks, url))


def render_anonymized(participant: ParticipantInfo, base_url: str) -> AnonymizeResource:
    url = f"{participant_url(base_url, participant.room_sid, participant.sid)}/Anonymize"
    return _resource(AnonymizeResource, participant, url=url)


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


def _track_url(track: TrackInfo | SubscribedTrackInfo, base_url: str, collection: str) -> str:
    """``collection`` names the participant's list the track is in."""
    owner = participant_url(base_url, track.room_sid, track.participant_sid)
    return f"{owner}/{collection}/{track.sid}"


def render_published_track(track: TrackInfo, base_url: str) -> PublishedTrackResource:
    url = _track_url(track, base_url, "PublishedTracks")
    return _resource(PublishedTrackResource, track, url=url)


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
    url = _track_url(track, base_url, "SubscribedTracks")
    return _resource(SubscribedTrackResource, track, url=url)


class SubscribeRuleResource(BaseModel):
    """One rule with every key present, null when unused (as Twilio's fixture shows it)."""

    type: str
    all: bool | None
    publisher: str | None
    track: str | None
    kind: str | None
    priority: str | None


class SubscribeRulesResource(BaseModel):
    participant_sid: str
    room_sid: str
    date_created: str | None
    date_updated: str | None
    rules: list[SubscribeRuleResource]


def render_subscribe_rules(rules: SubscribeRules) -> SubscribeRulesResource:
    return _resource(
        SubscribeRulesResource, rules, rules=[rule.model_dump() for rule in rules.rules]
    )


# Recordings -----------------------------------------------------------------------------------
def recording_url(base_url: str, recording_sid: str) -> str:
    return f"{base_url}/v1/Recordings/{recording_sid}"


def room_recording_url(base_url: str, room_sid: str, recording_sid: str) -> str:
    return f"{room_url(base_url, room_sid)}/Recordings/{recording_sid}"


class RecordingLinks(BaseModel):
    media: str


class GroupingSids(BaseModel):
    room_sid: str
    participant_sid: str


class RecordingFields(BaseModel):
    """What a Recording shows under both paths, in Twilio's order."""

    account_sid: str
    status: str
    date_created: str | None
    sid: str
    source_sid: str
    size: int
    url: str
    type: str
    duration: int
    container_format: str
    codec: str | None
    grouping_sids: GroupingSids
    track_name: str
    offset: int
    media_external_location: str | None


class RecordingResource(RecordingFields):
    """A Recording exactly as ``/v1/Recordings`` shows it: with its status callback, no
    ``room_sid``."""

    status_callback: str | None
    status_callback_method: str
    links: RecordingLinks


class RoomRecordingResource(RecordingFields):
    """A Recording exactly as ``/v1/Rooms/{RoomSid}/Recordings`` shows it."""

    room_sid: str
    links: RecordingLinks


def _recording(resource_type: type[ResourceT], recording: RecordingInfo, url: str) -> ResourceT:
    return _resource(
        resource_type,
        recording,
        # Twilio shows 0 until the file is there; a track without a name is named by its SID.
        size=recording.size or 0,
        duration=recording.duration or 0,
        track_name=recording.track_name or recording.source_sid,
        grouping_sids=GroupingSids(
            room_sid=recording.room_sid, participant_sid=recording.participant_sid
        ),
        url=url,
        links=_links(RecordingLinks, url),
    )


def render_recording(recording: RecordingInfo, base_url: str) -> RecordingResource:
    url = recording_url(base_url, recording.sid)
    return _recording(RecordingResource, recording, url)


def render_room_recording(recording: RecordingInfo, base_url: str) -> RoomRecordingResource:
    url = room_recording_url(base_url, recording.room_sid, recording.sid)
    return _recording(RoomRecordingResource, recording, url)


def list_recordings_request(
    account_sid: str, query: ListQuery, room_sid: str | None = None
) -> ListRecordingsRequest:
    """The recording service's list request from either list's query."""
    fields = query.request_fields()
    return ListRecordingsRequest(
        account_sid=account_sid,
        room_sid=room_sid,
        status=fields.get("status"),
        source_sid=fields.get("source_sid"),
        grouping_sids=fields.get("grouping_sid") or [],
        media_type=fields.get("media_type"),
        created_after=fields["created_on_or_after"],
        created_before=fields["created_before"],
        page_size=fields["page_size"],
        cursor=fields["cursor"],
    )


# The file types Twilio's recordings download as.
MEDIA_CONTENT_TYPES = {"mka": "audio/x-matroska", "mkv": "video/x-matroska"}


class RecordingRulesResource(BaseModel):
    """A room's RecordingRules: no ``url``, no ``links``; each rule shows only its set keys."""

    room_sid: str
    date_created: str | None
    date_updated: str | None
    rules: list[dict[str, str | bool]]


def render_recording_rules(rules: RecordingRules) -> RecordingRulesResource:
    return _resource(
        RecordingRulesResource,
        rules,
        rules=[rule.model_dump(exclude_none=True) for rule in rules.rules],
    )


class RecordingSettingsForm(BaseModel):
    """Twilio's CreateRecordingSettings form, kept as sent."""

    FriendlyName: str | None = None
    AwsCredentialsSid: str | None = None
    EncryptionKeySid: str | None = None
    AwsS3Url: str | None = None
    AwsStorageEnabled: str | None = None
    EncryptionEnabled: str | None = None


def set_recording_settings_request(
    account_sid: str, form: RecordingSettingsForm
) -> SetRecordingSettingsRequest:
    """The recording service validates the rest (FriendlyName required, the URL, CR SIDs)."""
    return SetRecordingSettingsRequest(
        account_sid=account_sid,
        friendly_name=form.FriendlyName,
        aws_credentials_sid=form.AwsCredentialsSid,
        encryption_key_sid=form.EncryptionKeySid,
        aws_s3_url=form.AwsS3Url,
        aws_storage_enabled=parse_bool("AwsStorageEnabled", form.AwsStorageEnabled),
        encryption_enabled=parse_bool("EncryptionEnabled", form.EncryptionEnabled),
    )


class RecordingSettingsResource(BaseModel):
    """An account's RecordingSettings: SIDs of credentials, never a secret."""

    account_sid: str
    friendly_name: str
    aws_credentials_sid: str | None
    aws_s3_url: str | None
    aws_storage_enabled: bool
    encryption_key_sid: str | None
    encryption_enabled: bool
    url: str


def _without_credentials(url: str | None) -> str | None:
    """A bucket URL without userinfo, query or fragment: whatever secret someone put there is
    not shown (the recording service refuses such URLs; this holds if one got through)."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def render_recording_settings(
    settings: RecordingSettings, base_url: str
) -> RecordingSettingsResource:
    return _resource(
        RecordingSettingsResource,
        settings,
        aws_s3_url=_without_credentials(settings.aws_s3_url),
        url=f"{base_url}/v1/RecordingSettings/Default",
    )


# Lists ----------------------------------------------------------------------------------------
DEFAULT_PAGE_SIZE = 50


class PageMeta(BaseModel):
    page: int
    page_size: int
    first_page_url: str
    previous_page_url: str | None
    url: str
    next_page_url: str | None
    key: str


def page_meta(list_url: str, key: str, query: ListQuery, page: Page[Any]) -> PageMeta:
    """Twilio's ``meta``: absolute URLs, filters first, then PageSize, Page and PageToken."""

    def link(page_number: int, token: str | None) -> str:
        params = [
            *query.echoed_filters(),
            ("PageSize", str(query.page_size)),
            ("Page", str(page_number)),
        ]
        if token:
            params.append(("PageToken", token))
        return f"{list_url}?{urlencode(params, quote_via=quote)}"

    previous, following = page.previous_cursor, page.next_cursor
    return PageMeta(
        page=query.page,
        page_size=query.page_size,
        first_page_url=link(0, None),
        previous_page_url=link(max(query.page - 1, 0), previous) if previous else None,
        url=link(query.page, query.page_token),
        next_page_url=link(query.page + 1, following) if following else None,
        key=key,
    )


def filters_in_order(*pairs: tuple[str, str | None]) -> list[tuple[str, str]]:
    """List filters as Twilio echoes them in ``meta`` URLs: in its order, unset ones left out."""
    return [(name, value) for name, value in pairs if value is not None]


class PageParameters(BaseModel):
    """The query parameters of a list, kept as sent; :func:`parse_list_query` parses them.

    These are every list's paging; subclasses add a list's filters. A list of tracks takes these
    only.
    """

    # The values a list's ``Status`` filter takes, where it has one.
    STATUSES: ClassVar[tuple[str, ...]] = ()
    # Other filters that take one of a few values, and filters whose values must be SIDs.
    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    SID_FILTERS: ClassVar[tuple[str, ...]] = ()
    MAX_PAGE_SIZE: ClassVar[int] = 1000

    PageSize: str | None = None
    Page: str | None = None
    PageToken: str | None = None


class DatedListParameters(PageParameters):
    """Paging and the creation date filters; a subclass's own fields are the list's filters."""

    DateCreatedAfter: str | None = None
    DateCreatedBefore: str | None = None


class RoomListParameters(DatedListParameters):
    STATUSES = ROOM_STATUSES
    Status: str | None = None
    UniqueName: str | None = None


class ParticipantListParameters(DatedListParameters):
    STATUSES = PARTICIPANT_STATUSES
    Status: str | None = None
    Identity: str | None = None


class RoomRecordingListParameters(DatedListParameters):
    """``/Rooms/{RoomSid}/Recordings``."""

    STATUSES = RECORDING_STATUSES
    SID_FILTERS = ("SourceSid",)
    Status: str | None = None
    SourceSid: str | None = None


class RecordingListParameters(DatedListParameters):
    """``/Recordings``: ``GroupingSid`` repeats (room and participant SIDs); pages of 100 at
    most."""

    STATUSES = RECORDING_STATUSES
    CHOICES = {"MediaType": RECORDING_MEDIA_TYPES}
    SID_FILTERS = ("SourceSid", "GroupingSid")
    MAX_PAGE_SIZE = 100
    Status: str | None = None
    SourceSid: str | None = None
    GroupingSid: list[str] | None = None
    MediaType: str | None = None


def snake_case(parameter: str) -> str:
    """``UniqueName`` -> ``unique_name``: a Twilio parameter's name in a service request."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in parameter).lstrip("_")


FilterValue = str | list[str] | None


class ListQuery(BaseModel):
    """A list's query, parsed and checked: paging, creation dates and the list's own filters."""

    page_size: int
    page: int
    page_token: str | None
    created_on_or_after: datetime | None
    created_before: datetime | None
    # The list's own filters as sent (Status, UniqueName, Identity, a repeated GroupingSid as a
    # list), then the date filters as sent, in Twilio's order: what ``meta`` URLs echo (unset
    # ones left out, a list as repeated keys).
    own_filters: dict[str, FilterValue] = Field(default_factory=dict)
    date_filters: list[tuple[str, str]] = Field(default_factory=list)

    def echoed_filters(self) -> list[tuple[str, str]]:
        own = [
            (name, item)
            for name, value in self.own_filters.items()
            for item in (value if isinstance(value, list) else [value])
        ]
        return [*filters_in_order(*own), *self.date_filters]

    def request_fields(self, **defaults: str) -> dict[str, Any]:
        """The fields of the service's list request: each own filter under its snake_case name
        (``defaults`` for unset ones, e.g. ``status``), the creation dates and the paging."""
        filters = {snake_case(name): value for name, value in self.own_filters.items()}
        return {
            **filters,
            **{name: value for name, value in defaults.items() if not filters.get(name)},
            "created_on_or_after": self.created_on_or_after,
            "created_before": self.created_before,
            "page_size": self.page_size,
            "cursor": self.page_token,
        }


def _check_filters(parameters: PageParameters, own: dict[str, FilterValue]) -> None:
    """Status (and the list's other enumerated filters) among their values, SIDs shaped as
    SIDs; the message names the parameter, never echoes the value."""
    choices = dict(parameters.CHOICES)
    if parameters.STATUSES:
        choices["Status"] = parameters.STATUSES
    for name in (*choices, *parameters.SID_FILTERS):
        value = own.get(name)
        if value is None:
            continue
        allowed = choices.get(name)
        values = value if isinstance(value, list) else [value]
        if not all(
            item in allowed if allowed is not None else _ANY_SID.match(item) for item in values
        ):
            raise AtriumError(errors.INVALID_PARAMETER, f"{name} is invalid", 400)


def parse_list_query(parameters: PageParameters) -> ListQuery:
    """Checked in Twilio's order: Status (and the other filters), PageSize, Page, the dates."""
    own: dict[str, FilterValue] = {
        name: getattr(parameters, name)
        for name in type(parameters).model_fields
        if name not in DatedListParameters.model_fields
    }
    _check_filters(parameters, own)
    parsed_size = parse_int("PageSize", parameters.PageSize)
    size = DEFAULT_PAGE_SIZE if parsed_size is None else parsed_size
    if not 1 <= size <= parameters.MAX_PAGE_SIZE:
        raise AtriumError(
            errors.INVALID_PARAMETER,
            f"PageSize must be between 1 and {parameters.MAX_PAGE_SIZE}",
            400,
        )
    parsed_page = parse_int("Page", parameters.Page)
    number = 0 if parsed_page is None else parsed_page
    if number < 0:
        raise AtriumError(errors.INVALID_PARAMETER, "Page must not be negative", 400)
    dates = parameters if isinstance(parameters, DatedListParameters) else DatedListParameters()
    return ListQuery(
        page_size=size,
        page=number,
        page_token=parameters.PageToken or None,
        created_on_or_after=parse_date("DateCreatedAfter", dates.DateCreatedAfter),
        created_before=parse_date("DateCreatedBefore", dates.DateCreatedBefore),
        own_filters=own,
        date_filters=filters_in_order(
            ("DateCreatedAfter", dates.DateCreatedAfter),
            ("DateCreatedBefore", dates.DateCreatedBefore),
        ),
    )


class RoomList(BaseModel):
    rooms: list[RoomResource]
    meta: PageMeta


class ParticipantList(BaseModel):
    participants: list[ParticipantResource]
    meta: PageMeta


class PublishedTrackList(BaseModel):
    published_tracks: list[PublishedTrackResource]
    meta: PageMeta


class SubscribedTrackList(BaseModel):
    subscribed_tracks: list[SubscribedTrackResource]
    meta: PageMeta


class RoomRecordingList(BaseModel):
    recordings: list[RoomRecordingResource]
    meta: PageMeta


class RecordingList(BaseModel):
    recordings: list[RecordingResource]
    meta: PageMeta


def render_page(
    list_type: type[ListT],
    render: Callable[[InfoT, str], BaseModel],
    page: Page[InfoT],
    query: ListQuery,
    base_url: str,
    list_url: str,
) -> ListT:
    """One page of a list: its items rendered under the list's key (the field of ``list_type``
    beside ``meta``, which ``meta.key`` names too), and ``meta`` echoing the set filters."""
    key = next(name for name in list_type.model_fields if name != "meta")
    meta = page_meta(list_url, key, query, page)
    items = [render(item, base_url) for item in page.items]
    return list_type.model_validate({key: items, "meta": meta})
