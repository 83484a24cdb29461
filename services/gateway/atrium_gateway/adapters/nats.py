"""The services and the media workers over NATS: request/reply (atrium_shared.rpc) and publish.

Each client is a transport only: the subject of each request and the type of its result.
"""

from __future__ import annotations

from typing import TypeVar

from faststream.nats import NatsBroker
from pydantic import BaseModel

from atrium_gateway.ports import SignalingInbox
from atrium_shared import participant_api, recording_api, room_api, rpc, subjects, track_api
from atrium_shared.infra import is_connected
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.signaling_api import ClientFrame, WorkerFrame

ResultT = TypeVar("ResultT", bound=BaseModel)


class NatsRpc:
    """Request/reply with the gateway's timeout; error replies raise their AtriumError."""

    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def call(self, subject: str, request: BaseModel, result_type: type[ResultT]) -> ResultT:
        return await rpc.call(self._broker, subject, request, result_type, self._timeout)


class NatsRooms:
    def __init__(self, rpc: NatsRpc) -> None:
        self._rpc = rpc

    async def create(self, request: room_api.CreateRoomRequest) -> RoomInfo:
        return await self._rpc.call(subjects.ROOM_CREATE, request, RoomInfo)

    async def fetch(self, request: room_api.FetchRoomRequest) -> RoomInfo:
        return await self._rpc.call(subjects.ROOM_FETCH, request, RoomInfo)

    async def update(self, request: room_api.UpdateRoomRequest) -> RoomInfo:
        return await self._rpc.call(subjects.ROOM_UPDATE, request, RoomInfo)

    async def list_rooms(self, request: room_api.ListRoomsRequest) -> room_api.RoomPage:
        return await self._rpc.call(subjects.ROOM_LIST, request, room_api.RoomPage)

    async def join(self, request: room_api.JoinRoomRequest) -> room_api.JoinRoomResult:
        return await self._rpc.call(subjects.ROOM_JOIN, request, room_api.JoinRoomResult)


class NatsParticipants:
    def __init__(self, rpc: NatsRpc) -> None:
        self._rpc = rpc

    async def fetch(self, request: participant_api.FetchParticipantRequest) -> ParticipantInfo:
        return await self._rpc.call(subjects.PARTICIPANT_FETCH, request, ParticipantInfo)

    async def update(self, request: participant_api.UpdateParticipantRequest) -> ParticipantInfo:
        return await self._rpc.call(subjects.PARTICIPANT_UPDATE, request, ParticipantInfo)

    async def anonymize(
        self, request: participant_api.AnonymizeParticipantRequest
    ) -> ParticipantInfo:
        return await self._rpc.call(subjects.PARTICIPANT_ANONYMIZE, request, ParticipantInfo)

    async def list_participants(
        self, request: participant_api.ListParticipantsRequest
    ) -> participant_api.ParticipantPage:
        return await self._rpc.call(
            subjects.PARTICIPANT_LIST, request, participant_api.ParticipantPage
        )


class NatsTracks:
    def __init__(self, rpc: NatsRpc) -> None:
        self._rpc = rpc

    async def fetch_published(self, request: track_api.FetchPublishedTrackRequest) -> TrackInfo:
        return await self._rpc.call(subjects.TRACK_PUBLISHED_FETCH, request, TrackInfo)

    async def list_published(
        self, request: track_api.ListPublishedTracksRequest
    ) -> track_api.PublishedTrackPage:
        return await self._rpc.call(
            subjects.TRACK_PUBLISHED_LIST, request, track_api.PublishedTrackPage
        )

    async def fetch_subscribed(
        self, request: track_api.FetchSubscribedTrackRequest
    ) -> track_api.SubscribedTrackInfo:
        return await self._rpc.call(
            subjects.TRACK_SUBSCRIBED_FETCH, request, track_api.SubscribedTrackInfo
        )

    async def list_subscribed(
        self, request: track_api.ListSubscribedTracksRequest
    ) -> track_api.SubscribedTrackPage:
        return await self._rpc.call(
            subjects.TRACK_SUBSCRIBED_LIST, request, track_api.SubscribedTrackPage
        )

    async def fetch_rules(
        self, request: track_api.FetchSubscribeRulesRequest
    ) -> track_api.SubscribeRules:
        return await self._rpc.call(subjects.TRACK_RULES_GET, request, track_api.SubscribeRules)

    async def set_rules(
        self, request: track_api.SetSubscribeRulesRequest
    ) -> track_api.SetSubscribeRulesResult:
        return await self._rpc.call(
            subjects.TRACK_RULES_SET, request, track_api.SetSubscribeRulesResult
        )


class NatsRecordings:
    def __init__(self, rpc: NatsRpc) -> None:
        self._rpc = rpc

    async def list_recordings(
        self, request: recording_api.ListRecordingsRequest
    ) -> recording_api.RecordingPage:
        return await self._rpc.call(subjects.RECORDING_LIST, request, recording_api.RecordingPage)

    async def fetch(
        self, request: recording_api.FetchRecordingRequest
    ) -> recording_api.RecordingInfo:
        return await self._rpc.call(subjects.RECORDING_FETCH, request, recording_api.RecordingInfo)

    async def delete(
        self, request: recording_api.DeleteRecordingRequest
    ) -> recording_api.RecordingInfo:
        return await self._rpc.call(subjects.RECORDING_DELETE, request, recording_api.RecordingInfo)

    async def media(
        self, request: recording_api.RecordingMediaRequest
    ) -> recording_api.RecordingMediaLocation:
        return await self._rpc.call(
            subjects.RECORDING_MEDIA, request, recording_api.RecordingMediaLocation
        )

    async def fetch_rules(
        self, request: recording_api.FetchRecordingRulesRequest
    ) -> recording_api.RecordingRules:
        return await self._rpc.call(
            subjects.RECORDING_RULES_GET, request, recording_api.RecordingRules
        )

    async def set_rules(
        self, request: recording_api.SetRecordingRulesRequest
    ) -> recording_api.RecordingRules:
        return await self._rpc.call(
            subjects.RECORDING_RULES_SET, request, recording_api.RecordingRules
        )

    async def fetch_settings(
        self, request: recording_api.FetchRecordingSettingsRequest
    ) -> recording_api.RecordingSettings:
        return await self._rpc.call(
            subjects.RECORDING_SETTINGS_GET, request, recording_api.RecordingSettings
        )

    async def set_settings(
        self, request: recording_api.SetRecordingSettingsRequest
    ) -> recording_api.RecordingSettings:
        return await self._rpc.call(
            subjects.RECORDING_SETTINGS_SET, request, recording_api.RecordingSettings
        )


class NatsSignalingPublisher:
    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def to_worker(self, worker_id: str, frame: ClientFrame) -> None:
        await self._broker.publish(frame, subjects.worker_subject(worker_id))


def subscribe_worker_frames(broker: NatsBroker, inbox: SignalingInbox) -> None:
    """Subscribe this replica to what media workers send its connections."""

    @broker.subscriber(subjects.gateway_subject(inbox.gateway_id), title="gateway.signaling")
    async def from_worker(frame: WorkerFrame) -> None:
        inbox.deliver(frame)


class BrokerReadiness:
    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def ready(self) -> bool:
        """Connected now: not while the client reconnects to a NATS that went away."""
        return is_connected(self._broker)
