"""What the gateway asks of the rest of Atrium: the services, the account store, the workers.

Protocols only. :mod:`atrium_gateway.adapters` implements them over NATS (and the shared
account store over Redis); ``tests/support/fakes/gateway.py`` in memory. Requests and results
are the services' own contracts (``atrium_shared.*_api``), so an adapter is a transport only.
"""

from __future__ import annotations

from typing import Protocol

from atrium_shared import participant_api, recording_api, room_api, track_api
from atrium_shared.accounts import Account, ApiKey
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.signaling_api import ClientFrame, WorkerFrame


class AccountsPort(Protocol):
    """The accounts and API keys (``atrium_shared.accounts.AccountStore`` is the real one)."""

    async def authenticate(self, username: str, password: str) -> Account | None:
        """Account SID + Auth Token, or API Key SID + Secret: the active account, else None."""
        ...

    async def get_account(self, sid: str) -> Account | None: ...

    async def list_accounts(self) -> list[Account]: ...

    async def get_api_key(self, sid: str) -> ApiKey | None: ...

    async def list_api_keys(self, account_sid: str) -> list[ApiKey]: ...

    async def dev_account(self) -> tuple[Account, ApiKey] | None:
        """The account and key ``atrium run`` made for development, while both are active."""
        ...


class SessionsPort(Protocol):
    """Where signaling sessions are hosted now (``atrium_shared.workers.SessionDirectory``)."""

    async def worker_of(self, session_id: str) -> str | None:
        """The worker that adopted the session after its own died, or None (it never moved)."""
        ...


class RoomsPort(Protocol):
    """The room service. Failures are :class:`~atrium_shared.errors.AtriumError` with the
    service's Twilio code (20404 for a room of another account)."""

    async def create(self, request: room_api.CreateRoomRequest) -> RoomInfo: ...

    async def fetch(self, request: room_api.FetchRoomRequest) -> RoomInfo: ...

    async def update(self, request: room_api.UpdateRoomRequest) -> RoomInfo: ...

    async def list_rooms(self, request: room_api.ListRoomsRequest) -> room_api.RoomPage: ...

    async def join(self, request: room_api.JoinRoomRequest) -> room_api.JoinRoomResult:
        """The room a signaling ``connect`` enters (made ad hoc if needed) and its worker."""
        ...


class ParticipantsPort(Protocol):
    """The participant service."""

    async def fetch(self, request: participant_api.FetchParticipantRequest) -> ParticipantInfo: ...

    async def update(
        self, request: participant_api.UpdateParticipantRequest
    ) -> ParticipantInfo: ...

    async def list_participants(
        self, request: participant_api.ListParticipantsRequest
    ) -> participant_api.ParticipantPage: ...

    async def anonymize(
        self, request: participant_api.AnonymizeParticipantRequest
    ) -> ParticipantInfo: ...


class TracksPort(Protocol):
    """The track service: published and subscribed tracks, subscribe rules."""

    async def fetch_published(self, request: track_api.FetchPublishedTrackRequest) -> TrackInfo: ...

    async def list_published(
        self, request: track_api.ListPublishedTracksRequest
    ) -> track_api.PublishedTrackPage: ...

    async def fetch_subscribed(
        self, request: track_api.FetchSubscribedTrackRequest
    ) -> track_api.SubscribedTrackInfo: ...

    async def list_subscribed(
        self, request: track_api.ListSubscribedTracksRequest
    ) -> track_api.SubscribedTrackPage: ...

    async def fetch_rules(
        self, request: track_api.FetchSubscribeRulesRequest
    ) -> track_api.SubscribeRules: ...

    async def set_rules(
        self, request: track_api.SetSubscribeRulesRequest
    ) -> track_api.SetSubscribeRulesResult: ...


class RecordingsPort(Protocol):
    """The recording service: recordings, where their media is, RecordingRules and
    RecordingSettings. A recording of another account is a 20404, as an unknown one."""

    async def list_recordings(
        self, request: recording_api.ListRecordingsRequest
    ) -> recording_api.RecordingPage: ...

    async def fetch(
        self, request: recording_api.FetchRecordingRequest
    ) -> recording_api.RecordingInfo: ...

    async def delete(
        self, request: recording_api.DeleteRecordingRequest
    ) -> recording_api.RecordingInfo:
        """Removes the media; the recording stays, ``deleted``."""
        ...

    async def media(
        self, request: recording_api.RecordingMediaRequest
    ) -> recording_api.RecordingMediaLocation:
        """Where a completed recording downloads from: a presigned URL, or the key of its file
        in the local folder (20404 while it is not completed)."""
        ...

    async def fetch_rules(
        self, request: recording_api.FetchRecordingRulesRequest
    ) -> recording_api.RecordingRules: ...

    async def set_rules(
        self, request: recording_api.SetRecordingRulesRequest
    ) -> recording_api.RecordingRules:
        """Invalid rules are a 53120 and change nothing."""
        ...

    async def fetch_settings(
        self, request: recording_api.FetchRecordingSettingsRequest
    ) -> recording_api.RecordingSettings: ...

    async def set_settings(
        self, request: recording_api.SetRecordingSettingsRequest
    ) -> recording_api.RecordingSettings: ...


class SignalingPublisher(Protocol):
    """Relays a client's signaling frame to the media worker hosting its session."""

    async def to_worker(self, worker_id: str, frame: ClientFrame) -> None:
        """Raises when the worker cannot be reached."""
        ...


class SignalingInbox(Protocol):
    """This replica's signaling connections, as the transport delivering worker frames sees
    them: frames go to ``gateway_subject(gateway_id)``."""

    @property
    def gateway_id(self) -> str: ...

    def deliver(self, frame: WorkerFrame) -> None:
        """Queue ``frame`` for its connection's socket (dropped if that socket is gone)."""
        ...


class ReadinessProbe(Protocol):
    """One connection the gateway needs to serve (``/readyz``)."""

    async def ready(self) -> bool:
        """True when usable; False or an exception when not."""
        ...
