"""In-memory fakes of the gateway's ports (atrium_gateway.ports), for the unit tier.

They stand for the services as the gateway sees them: records kept per account (another
account's record is a 20404, as the services answer), lists paged with real cursors
(:mod:`tests.support.fakes.paging`), and every request recorded in ``requests`` so a test can
check what the gateway asked. ``fail_with`` makes the next call raise, for error paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel, SecretStr

from atrium_gateway.bootstrap import GatewayService, bootstrap
from atrium_shared import errors, participant_api, recording_api, room_api, sids, track_api
from atrium_shared.accounts import Account, ApiKey, new_secret, secret_matches
from atrium_shared.errors import AtriumError
from atrium_shared.models import Page, ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.paging import index_member, member_sid
from atrium_shared.settings import Settings
from atrium_shared.signaling_api import ClientFrame
from tests.support.fakes.paging import page_members

PageT = TypeVar("PageT", bound=Page[Any])
RecordT = TypeVar("RecordT", bound=BaseModel)

# Records are created this far apart, newest last, so paging order is deterministic.
EPOCH = datetime.fromisoformat("2024-05-01T12:00:00+00:00")


class FakePort:
    """What every fake service port does: record requests, fail on demand."""

    def __init__(self) -> None:
        self.requests: list[BaseModel] = []
        self.fail_with: AtriumError | None = None
        self._created = 0

    def _received(self, request: BaseModel) -> None:
        self.requests.append(request)
        if self.fail_with is not None:
            failure, self.fail_with = self.fail_with, None
            raise failure

    def _tick(self) -> datetime:
        """A minute after the previous record was made."""
        self._created += 1
        return EPOCH + timedelta(minutes=self._created)

    def _new(self, record_type: type[RecordT], prefix: str, **fields: Any) -> RecordT:
        """A record with a fresh SID, created (and started) at the next tick."""
        created = self._tick()
        dates = {"date_created": created, "date_updated": created, "start_time": created}
        known = {name: value for name, value in dates.items() if name in record_type.model_fields}
        return record_type.model_validate({"sid": sids.new_sid(prefix), **known, **fields})


def _page(
    page_type: type[PageT],
    records: Iterable[Any],
    request: Any,
) -> PageT:
    """``records`` (with ``sid`` and ``date_created``) paged as the services page their indexes."""
    by_sid = {record.sid: record for record in records}
    try:
        members, next_cursor, previous_cursor = page_members(
            (index_member(record.date_created, sid) for sid, record in by_sid.items()),
            # Recordings name the lower bound created_after (it is "on or after" too).
            created_on_or_after=getattr(
                request, "created_on_or_after", getattr(request, "created_after", None)
            ),
            created_before=getattr(request, "created_before", None),
            page_size=request.page_size,
            cursor=request.cursor,
        )
    except ValueError:
        raise AtriumError(errors.INVALID_PARAMETER, "Invalid PageToken", 400) from None
    return page_type(
        items=[by_sid[member_sid(member)] for member in members],
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
    )


class FakeAccounts:
    """AccountsPort: Basic auth by Account SID + Auth Token or API Key SID + Secret."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self.dev: tuple[str, str] | None = None

    def add_account(self, friendly_name: str = "Acme") -> Account:
        account = Account(
            sid=sids.new_sid(sids.ACCOUNT),
            friendly_name=friendly_name,
            auth_token=SecretStr(new_secret()),
        )
        self.accounts[account.sid] = account
        return account

    def add_api_key(self, account_sid: str, friendly_name: str = "key") -> ApiKey:
        key = ApiKey(
            sid=sids.new_sid(sids.API_KEY),
            account_sid=account_sid,
            friendly_name=friendly_name,
            secret=SecretStr(new_secret()),
        )
        self.api_keys[key.sid] = key
        return key

    def close(self, account_sid: str) -> None:
        self.accounts[account_sid] = self.accounts[account_sid].model_copy(
            update={"status": "closed"}
        )

    async def authenticate(self, username: str, password: str) -> Account | None:
        if username in self.accounts:
            account = self.accounts[username]
            expected = account.auth_token.get_secret_value()
        elif username in self.api_keys and self.api_keys[username].status == "active":
            key = self.api_keys[username]
            account, expected = self.accounts[key.account_sid], key.secret.get_secret_value()
        else:
            return None
        if account.status != "active" or not secret_matches(expected, password):
            return None
        return account

    async def get_account(self, sid: str) -> Account | None:
        return self.accounts.get(sid)

    async def list_accounts(self) -> list[Account]:
        return list(self.accounts.values())

    async def get_api_key(self, sid: str) -> ApiKey | None:
        return self.api_keys.get(sid)

    async def list_api_keys(self, account_sid: str) -> list[ApiKey]:
        return [key for key in self.api_keys.values() if key.account_sid == account_sid]

    async def dev_account(self) -> tuple[Account, ApiKey] | None:
        if self.dev is None:
            return None
        account, key = self.accounts[self.dev[0]], self.api_keys[self.dev[1]]
        if account.status != "active" or key.status != "active":
            return None
        return account, key


# What the real room service validates and reshapes; the fake leaves the defaults.
_CHECKED_BY_THE_ROOM_SERVICE = {
    "account_sid",
    "enable_turn",
    "recording_rules",
    "transcriptions_configuration",
}


class FakeRooms(FakePort):
    """RoomsPort: rooms by SID; a UniqueName names the account's in-progress room."""

    def __init__(self) -> None:
        super().__init__()
        self.rooms: dict[str, RoomInfo] = {}
        self.worker_id = "media-1"

    def add(self, account_sid: str, unique_name: str, **fields: Any) -> RoomInfo:
        room = self._new(
            RoomInfo, sids.ROOM, account_sid=account_sid, unique_name=unique_name, **fields
        )
        self.rooms[room.sid] = room
        return room

    def _find(self, account_sid: str, sid_or_name: str) -> RoomInfo:
        for room in self.rooms.values():
            if room.account_sid != account_sid:
                continue
            if room.sid == sid_or_name or (
                room.unique_name == sid_or_name and room.status == "in-progress"
            ):
                return room
        raise errors.not_found(f"/Rooms/{sid_or_name}")

    async def create(self, request: room_api.CreateRoomRequest) -> RoomInfo:
        self._received(request)
        fields = {
            name: value
            for name, value in request.model_dump(exclude=_CHECKED_BY_THE_ROOM_SERVICE).items()
            if value is not None and name in RoomInfo.model_fields
        }
        return self.add(request.account_sid, fields.pop("unique_name", None) or "room", **fields)

    async def fetch(self, request: room_api.FetchRoomRequest) -> RoomInfo:
        self._received(request)
        return self._find(request.account_sid, request.sid_or_name)

    async def update(self, request: room_api.UpdateRoomRequest) -> RoomInfo:
        self._received(request)
        room = self._find(request.account_sid, request.sid_or_name)
        if request.status != "completed":
            raise AtriumError(errors.STATUS_INVALID, "Status is invalid", 400)
        ended = room.model_copy(update={"status": "completed", "end_time": room.date_created})
        self.rooms[room.sid] = ended
        return ended

    async def list_rooms(self, request: room_api.ListRoomsRequest) -> room_api.RoomPage:
        self._received(request)
        matching = [
            room
            for room in self.rooms.values()
            if room.account_sid == request.account_sid
            and room.status == request.status
            and request.unique_name in (None, room.unique_name)
        ]
        return _page(room_api.RoomPage, matching, request)

    async def join(self, request: room_api.JoinRoomRequest) -> room_api.JoinRoomResult:
        self._received(request)
        try:
            room = self._find(request.account_sid, request.room)
        except AtriumError:
            room = self.add(request.account_sid, request.room, created_by="signaling")
        return room_api.JoinRoomResult(room=room, worker_id=self.worker_id)


class FakeParticipants(FakePort):
    """ParticipantsPort: participants of the rooms of a FakeRooms, by SID or identity."""

    def __init__(self) -> None:
        super().__init__()
        self.participants: dict[str, ParticipantInfo] = {}

    def add(self, room: RoomInfo, identity: str, **fields: Any) -> ParticipantInfo:
        participant = self._new(
            ParticipantInfo,
            sids.PARTICIPANT,
            room_sid=room.sid,
            account_sid=room.account_sid,
            identity=identity,
            **fields,
        )
        self.participants[participant.sid] = participant
        return participant

    def _find(self, account_sid: str, room_sid: str, sid_or_identity: str) -> ParticipantInfo:
        for participant in self.participants.values():
            if (participant.account_sid, participant.room_sid) == (account_sid, room_sid) and (
                sid_or_identity in (participant.sid, participant.identity)
            ):
                return participant
        raise errors.not_found(f"/Rooms/{room_sid}/Participants/{sid_or_identity}")

    async def fetch(self, request: participant_api.FetchParticipantRequest) -> ParticipantInfo:
        self._received(request)
        return self._find(request.account_sid, request.room_sid, request.sid_or_identity)

    async def update(self, request: participant_api.UpdateParticipantRequest) -> ParticipantInfo:
        self._received(request)
        found = self._find(request.account_sid, request.room_sid, request.sid_or_identity)
        if request.status != "disconnected":
            raise AtriumError(errors.STATUS_INVALID, "Status is invalid", 400)
        kicked = found.model_copy(update={"status": "disconnected", "end_time": found.start_time})
        self.participants[found.sid] = kicked
        return kicked

    async def anonymize(
        self, request: participant_api.AnonymizeParticipantRequest
    ) -> ParticipantInfo:
        """The participant service decides (only a disconnected one); the fake renames."""
        self._received(request)
        found = self._find(request.account_sid, request.room_sid, request.sid_or_identity)
        anonymous = found.model_copy(update={"identity": found.sid})
        self.participants[found.sid] = anonymous
        return anonymous

    async def list_participants(
        self, request: participant_api.ListParticipantsRequest
    ) -> participant_api.ParticipantPage:
        self._received(request)
        matching = [
            p
            for p in self.participants.values()
            if (p.account_sid, p.room_sid, p.status)
            == (request.account_sid, request.room_sid, request.status)
            and request.identity in (None, p.identity)
        ]
        return _page(participant_api.ParticipantPage, matching, request)


def _of_participant(records: Iterable[RecordT], request: Any) -> list[RecordT]:
    """The records (tracks, subscriptions) of the participant a track request names."""
    named = (request.account_sid, request.room_sid, request.participant_sid)
    return [
        record
        for record in records
        if (record.account_sid, record.room_sid, record.participant_sid) == named  # type: ignore[attr-defined]
    ]


def _only(found: list[RecordT], path: str) -> RecordT:
    if not found:
        raise errors.not_found(path)
    return found[0]


class FakeTracks(FakePort):
    """TracksPort: published tracks, subscriptions and subscribe rules of participants."""

    def __init__(self) -> None:
        super().__init__()
        self.published: dict[str, TrackInfo] = {}
        self.subscribed: list[track_api.SubscribedTrackInfo] = []
        self.rules: dict[str, track_api.SubscribeRules] = {}

    def publish(self, publisher: ParticipantInfo, name: str, kind: str = "audio") -> TrackInfo:
        track = self._new(
            TrackInfo,
            sids.TRACK,
            room_sid=publisher.room_sid,
            account_sid=publisher.account_sid,
            participant_sid=publisher.sid,
            name=name,
            kind=kind,
        )
        self.published[track.sid] = track
        return track

    def subscribe(
        self, subscriber: ParticipantInfo, track: TrackInfo
    ) -> track_api.SubscribedTrackInfo:
        shared = track.model_dump(exclude={"participant_sid", "date_created"})
        subscription = track_api.SubscribedTrackInfo(
            **shared,
            participant_sid=subscriber.sid,
            publisher_sid=track.participant_sid,
            date_created=self._tick(),  # when the subscription started
        )
        self.subscribed.append(subscription)
        return subscription

    async def fetch_published(self, request: track_api.FetchPublishedTrackRequest) -> TrackInfo:
        self._received(request)
        owned = _of_participant(self.published.values(), request)
        found = [track for track in owned if request.sid_or_name in (track.sid, track.name)]
        return _only(found, f"/PublishedTracks/{request.sid_or_name}")

    async def list_published(
        self, request: track_api.ListPublishedTracksRequest
    ) -> track_api.PublishedTrackPage:
        self._received(request)
        owned = _of_participant(self.published.values(), request)
        return _page(track_api.PublishedTrackPage, owned, request)

    async def fetch_subscribed(
        self, request: track_api.FetchSubscribedTrackRequest
    ) -> track_api.SubscribedTrackInfo:
        self._received(request)
        owned = _of_participant(self.subscribed, request)
        found = [subscription for subscription in owned if subscription.sid == request.sid]
        return _only(found, f"/SubscribedTracks/{request.sid}")

    async def list_subscribed(
        self, request: track_api.ListSubscribedTracksRequest
    ) -> track_api.SubscribedTrackPage:
        self._received(request)
        return _page(
            track_api.SubscribedTrackPage, _of_participant(self.subscribed, request), request
        )

    async def fetch_rules(
        self, request: track_api.FetchSubscribeRulesRequest
    ) -> track_api.SubscribeRules:
        self._received(request)
        default = track_api.SubscribeRules(
            account_sid=request.account_sid,
            room_sid=request.room_sid,
            participant_sid=request.participant_sid,
            rules=[track_api.SubscribeRule(type="include", all=True)],
        )
        return self.rules.get(request.participant_sid, default)

    async def set_rules(
        self, request: track_api.SetSubscribeRulesRequest
    ) -> track_api.SetSubscribeRulesResult:
        """Takes ``Rules`` as a JSON array of rules (the track service validates more)."""
        self._received(request)
        try:
            rules = [track_api.SubscribeRule.model_validate(rule) for rule in _json(request.rules)]
        except ValueError:
            raise AtriumError(errors.SUBSCRIBE_RULES_INVALID, "Invalid rules", 400) from None
        stored = track_api.SubscribeRules(
            account_sid=request.account_sid,
            room_sid=request.room_sid,
            participant_sid=request.participant_sid,
            rules=rules,
            version=1,
            date_created=EPOCH,
            date_updated=EPOCH,
        )
        self.rules[request.participant_sid] = stored
        return track_api.SetSubscribeRulesResult(rules=stored, desired=[], considered=[])


def _json(text: str | None) -> list[Any]:
    value = json.loads(text or "null")
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _recording_path(sid: str, room_sid: str | None) -> str:
    return f"/Rooms/{room_sid}/Recordings/{sid}" if room_sid else f"/Recordings/{sid}"


class FakeRecordings(FakePort):
    """RecordingsPort: recordings of the tracks of a FakeTracks, RecordingRules of the rooms of
    a FakeRooms (found by SID or UniqueName, as the recording service finds them) and each
    account's RecordingSettings. A recording in an ``s3`` storage target downloads from a
    presigned-looking URL; a local one from its media key."""

    def __init__(self, rooms: FakeRooms) -> None:
        super().__init__()
        self.room_records = rooms
        self.recordings: dict[str, recording_api.RecordingInfo] = {}
        self.rules: dict[str, recording_api.RecordingRules] = {}
        self.settings: dict[str, recording_api.RecordingSettings] = {}

    def add(
        self, track: TrackInfo, identity: str = "alice", **fields: Any
    ) -> recording_api.RecordingInfo:
        """A completed recording of ``track`` (``fields`` override), kept as
        ``<account>/<RT>.<mka|mkv>``."""
        sid = sids.new_sid(sids.RECORDING)
        container = "mka" if track.kind == "audio" else "mkv"
        recording = self._new(
            recording_api.RecordingInfo,
            sids.RECORDING,
            **{
                "sid": sid,
                "account_sid": track.account_sid,
                "room_sid": track.room_sid,
                "participant_sid": track.participant_sid,
                "participant_identity": identity,
                "source_sid": track.sid,
                "track_name": track.name,
                "type": track.kind,
                "status": "completed",
                "codec": "OPUS" if track.kind == "audio" else "VP8",
                "container_format": container,
                "duration": 7,
                "size": 4096,
                "offset": 1250,
                "media_key": f"{track.account_sid}/{sid}.{container}",
                **fields,
            },
        )
        self.recordings[recording.sid] = recording
        return recording

    def _owned(
        self, account_sid: str, sid: str, room_sid: str | None
    ) -> recording_api.RecordingInfo:
        found = self.recordings.get(sid)
        if (
            found is None
            or found.account_sid != account_sid
            or room_sid not in (None, found.room_sid)
        ):
            raise errors.not_found(_recording_path(sid, room_sid))
        return found

    async def list_recordings(
        self, request: recording_api.ListRecordingsRequest
    ) -> recording_api.RecordingPage:
        self._received(request)
        matching = [
            r
            for r in self.recordings.values()
            if r.account_sid == request.account_sid
            and request.room_sid in (None, r.room_sid)
            and request.status in (None, r.status)
            and request.source_sid in (None, r.source_sid)
            and request.media_type in (None, r.type)
            and all(s in (r.room_sid, r.participant_sid) for s in request.grouping_sids)
        ]
        return _page(recording_api.RecordingPage, matching, request)

    async def fetch(
        self, request: recording_api.FetchRecordingRequest
    ) -> recording_api.RecordingInfo:
        self._received(request)
        return self._owned(request.account_sid, request.recording_sid, request.room_sid)

    async def delete(
        self, request: recording_api.DeleteRecordingRequest
    ) -> recording_api.RecordingInfo:
        self._received(request)
        found = self._owned(request.account_sid, request.recording_sid, request.room_sid)
        deleted = found.model_copy(update={"status": "deleted", "date_deleted": EPOCH})
        self.recordings[found.sid] = deleted
        return deleted

    async def media(
        self, request: recording_api.RecordingMediaRequest
    ) -> recording_api.RecordingMediaLocation:
        self._received(request)
        found = self._owned(request.account_sid, request.recording_sid, request.room_sid)
        if found.status != "completed":
            raise errors.not_found(_recording_path(found.sid, request.room_sid) + "/Media")
        if found.storage.kind == "s3":
            url = (
                f"https://{found.storage.bucket}.s3.amazonaws.com/{found.media_key}"
                f"?X-Amz-Expires={request.expires_in}&X-Amz-Signature=fake"
            )
            return recording_api.RecordingMediaLocation(recording=found, url=url)
        return recording_api.RecordingMediaLocation(recording=found, media_key=found.media_key)

    def _room(self, account_sid: str, room: str) -> RoomInfo:
        try:
            return self.room_records._find(account_sid, room)
        except AtriumError:
            raise errors.not_found(f"/Rooms/{room}/RecordingRules") from None

    async def fetch_rules(
        self, request: recording_api.FetchRecordingRulesRequest
    ) -> recording_api.RecordingRules:
        self._received(request)
        room = self._room(request.account_sid, request.room_sid)
        default = recording_api.RecordingRules(
            account_sid=room.account_sid,
            room_sid=room.sid,
            rules=[recording_api.RecordingRule(type="include", all=True)]
            if room.record_participants_on_connect
            else [],
        )
        return self.rules.get(room.sid, default)

    async def set_rules(
        self, request: recording_api.SetRecordingRulesRequest
    ) -> recording_api.RecordingRules:
        """Takes a JSON array of rules or ``{"rules": [...]}``; the recording service
        validates more."""
        self._received(request)
        invalid = AtriumError(errors.RECORDING_RULES_INVALID, "Invalid Recording Rule(s)", 400)
        try:
            value = json.loads(request.rules or "null")
            if isinstance(value, dict):
                value = value.get("rules")
            if not isinstance(value, list) or not value:
                raise ValueError("not a list of rules")
            rules = [recording_api.RecordingRule.model_validate(rule) for rule in value]
        except ValueError:
            raise invalid from None
        room = self._room(request.account_sid, request.room_sid)
        if room.status != "in-progress":
            raise AtriumError(errors.ROOM_COMPLETED, "Room completed", 400)
        stored = recording_api.RecordingRules(
            account_sid=room.account_sid,
            room_sid=room.sid,
            rules=rules,
            date_created=EPOCH,
            date_updated=EPOCH,
        )
        self.rules[room.sid] = stored
        return stored

    async def fetch_settings(
        self, request: recording_api.FetchRecordingSettingsRequest
    ) -> recording_api.RecordingSettings:
        self._received(request)
        default = recording_api.RecordingSettings(account_sid=request.account_sid)
        return self.settings.get(request.account_sid, default)

    async def set_settings(
        self, request: recording_api.SetRecordingSettingsRequest
    ) -> recording_api.RecordingSettings:
        """Stores what is set, as given (FriendlyName required; no other check)."""
        self._received(request)
        if not request.friendly_name:
            raise AtriumError(
                errors.INVALID_PARAMETER, "Missing required parameter FriendlyName", 400
            )
        current = self.settings.get(
            request.account_sid, recording_api.RecordingSettings(account_sid=request.account_sid)
        )
        changes = {
            name: value
            for name, value in request.model_dump(exclude={"account_sid"}).items()
            if value is not None
        }
        self.settings[request.account_sid] = current.model_copy(update=changes)
        return self.settings[request.account_sid]


class FakeSignalingPublisher:
    """SignalingPublisher: records what the hub relays; ``reachable = False`` makes it raise."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, ClientFrame]] = []
        self.reachable = True

    async def to_worker(self, worker_id: str, frame: ClientFrame) -> None:
        if not self.reachable:
            raise ConnectionError(f"no route to {worker_id}")
        self.frames.append((worker_id, frame))


class FakeReadiness:
    """ReadinessProbe: ``state`` True (ready), False (not ready) or an exception to raise."""

    def __init__(self) -> None:
        self.state: bool | Exception = True

    async def ready(self) -> bool:
        if isinstance(self.state, Exception):
            raise self.state
        return self.state


class FakeSessions:
    """Where sessions moved: ``moved[session_id] = worker_id``."""

    def __init__(self) -> None:
        self.moved: dict[str, str] = {}

    async def worker_of(self, session_id: str) -> str | None:
        return self.moved.get(session_id)


@dataclass
class FakeGateway:
    """The real gateway app (bootstrap()) on these fakes, and a tenant to call it as."""

    service: GatewayService
    accounts: FakeAccounts
    rooms: FakeRooms
    participants: FakeParticipants
    tracks: FakeTracks
    recordings: FakeRecordings
    workers: FakeSignalingPublisher
    readiness: FakeReadiness
    account: Account
    sessions: FakeSessions

    @property
    def app(self) -> FastAPI:
        return self.service.app

    def auth(self, account: Account | None = None) -> tuple[str, str]:
        """Basic credentials of ``account`` (the tenant's by default): SID and Auth Token."""
        account = account or self.account
        return account.sid, account.auth_token.get_secret_value()

    @contextlib.asynccontextmanager
    async def client(
        self, base_url: str = "http://gateway.test", *, anonymous: bool = False
    ) -> AsyncIterator[AsyncClient]:
        """An HTTP client on the app in this event loop, its lifespan running (so /readyz);
        it authenticates as the tenant unless ``anonymous``."""
        auth = None if anonymous else self.auth()
        async with self.app.router.lifespan_context(self.app):
            transport = ASGITransport(app=self.app)
            async with AsyncClient(transport=transport, base_url=base_url, auth=auth) as client:
                yield client


def fake_gateway(settings: Settings | None = None) -> FakeGateway:
    accounts, rooms, participants, tracks = (
        FakeAccounts(),
        FakeRooms(),
        FakeParticipants(),
        FakeTracks(),
    )
    recordings = FakeRecordings(rooms)
    workers, readiness, sessions = FakeSignalingPublisher(), FakeReadiness(), FakeSessions()
    service = bootstrap(
        settings or Settings(),
        accounts=accounts,
        rooms=rooms,
        participants=participants,
        tracks=tracks,
        recordings=recordings,
        signaling=workers,
        sessions=sessions,
        readiness=[readiness],
    )
    account = accounts.add_account()
    return FakeGateway(
        service,
        accounts,
        rooms,
        participants,
        tracks,
        recordings,
        workers,
        readiness,
        account,
        sessions,
    )


class SocketClosed(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class WebSocketClient:
    """A client of one of the app's WebSocket routes, in this event loop: the ASGI protocol
    spoken to the app directly (no server, no thread)."""

    def __init__(self, app: FastAPI, path: str, timeout: float = 5.0) -> None:
        self._app, self._path, self._timeout = app, path, timeout
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> WebSocketClient:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "server": ("gateway.test", 80),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": self._path,
            "raw_path": self._path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"gateway.test")],
            "subprotocols": [],
        }
        self._task = asyncio.create_task(self._app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "websocket.connect"})
        accepted = await self._next()
        assert accepted["type"] == "websocket.accept", accepted
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Disconnect (if the app has not closed the socket) and wait for the app to finish."""
        await self._to_app.put({"type": "websocket.disconnect", "code": 1000})
        assert self._task is not None
        await asyncio.wait_for(self._task, self._timeout)

    async def _next(self) -> MutableMapping[str, Any]:
        return await asyncio.wait_for(self._from_app.get(), self._timeout)

    async def send_text(self, text: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self._to_app.put({"type": "websocket.receive", "bytes": data})

    async def send_json(self, value: object) -> None:
        await self.send_text(json.dumps(value))

    async def receive_json(self) -> dict[str, Any]:
        """The next frame the app sent; SocketClosed if it closed the socket instead."""
        message = await self._next()
        if message["type"] == "websocket.close":
            raise SocketClosed(message.get("code", 1000))
        value: dict[str, Any] = json.loads(message["text"])
        return value
