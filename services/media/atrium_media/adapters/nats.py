"""The control plane over NATS request/reply: the media worker's ControlPlane port."""

from __future__ import annotations

import json

from faststream.nats import NatsBroker
from pydantic import BaseModel

from atrium_shared import subjects
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo, TrackPriority
from atrium_shared.participant_api import (
    AdmitParticipantRequest,
    AdmitParticipantResult,
    DisconnectParticipantRequest,
    SetConnectionStateRequest,
)
from atrium_shared.recording_api import RecordingInfo, RecordingReport
from atrium_shared.rpc import ResultT, call
from atrium_shared.track_api import (
    JoinTracksRequest,
    JoinTracksResult,
    PublishTracksRequest,
    PublishTracksResult,
    SetSubscribeRulesRequest,
    SetSubscribeRulesResult,
    SetTrackEnabledRequest,
    SetTrackPriorityRequest,
    TrackSubscriptionRequest,
    TrackSubscriptionResult,
    TrackToPublish,
    UnpublishTracksRequest,
    UnpublishTracksResult,
)


class NatsControlPlane:
    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self._broker = broker
        self._timeout = timeout

    async def _call(self, subject: str, request: BaseModel, result: type[ResultT]) -> ResultT:
        return await call(self._broker, subject, request, result, self._timeout)

    async def admit(
        self,
        account_sid: str,
        room_sid: str,
        identity: str,
        max_participants: int,
        max_participant_duration: int,
    ) -> AdmitParticipantResult:
        return await self._call(
            subjects.PARTICIPANT_ADMIT,
            AdmitParticipantRequest(
                account_sid=account_sid,
                room_sid=room_sid,
                identity=identity,
                max_participants=max_participants,
                max_participant_duration=max_participant_duration,
            ),
            AdmitParticipantResult,
        )

    async def leave(self, participant: ParticipantInfo, reason: str) -> ParticipantInfo:
        return await self._call(
            subjects.PARTICIPANT_DISCONNECT,
            DisconnectParticipantRequest(
                account_sid=participant.account_sid,
                room_sid=participant.room_sid,
                participant_sid=participant.sid,
                reason=reason,
            ),
            ParticipantInfo,
        )

    async def report_recording(self, report: RecordingReport) -> None:
        """A recording started, was completed or failed (the recording service records it)."""
        await self._call(subjects.RECORDING_REPORT, report, RecordingInfo)

    async def set_connection_state(self, participant: ParticipantInfo, state: str) -> None:
        await self._call(
            subjects.PARTICIPANT_SET_STATE,
            SetConnectionStateRequest(
                account_sid=participant.account_sid,
                room_sid=participant.room_sid,
                participant_sid=participant.sid,
                state="reconnecting" if state == "reconnecting" else "connected",
            ),
            ParticipantInfo,
        )

    async def join_tracks(self, participant: ParticipantInfo) -> JoinTracksResult:
        return await self._call(
            subjects.TRACK_JOIN,
            JoinTracksRequest(
                account_sid=participant.account_sid,
                room_sid=participant.room_sid,
                participant_sid=participant.sid,
            ),
            JoinTracksResult,
        )

    async def publish(
        self,
        participant: ParticipantInfo,
        tracks: list[TrackToPublish],
        room: RoomInfo | None = None,
    ) -> PublishTracksResult:
        return await self._call(
            subjects.TRACK_PUBLISH,
            PublishTracksRequest(
                account_sid=participant.account_sid,
                room_sid=participant.room_sid,
                participant=participant,
                tracks=tracks,
                room=room,
            ),
            PublishTracksResult,
        )

    async def unpublish(self, participant: ParticipantInfo, track_sids: list[str]) -> None:
        await self._call(
            subjects.TRACK_UNPUBLISH,
            UnpublishTracksRequest(
                account_sid=participant.account_sid,
                room_sid=participant.room_sid,
                participant_sid=participant.sid,
                track_sids=track_sids,
            ),
            UnpublishTracksResult,
        )

    async def set_enabled(self, account_sid: str, track_sid: str, enabled: bool) -> None:
        await self._call(
            subjects.TRACK_SET_ENABLED,
            SetTrackEnabledRequest(account_sid=account_sid, track_sid=track_sid, enabled=enabled),
            TrackInfo,
        )

    async def set_priority(self, account_sid: str, track_sid: str, priority: TrackPriority) -> None:
        await self._call(
            subjects.TRACK_SET_PRIORITY,
            SetTrackPriorityRequest(
                account_sid=account_sid, track_sid=track_sid, priority=priority
            ),
            TrackInfo,
        )

    async def subscription(
        self, subscriber: ParticipantInfo, track_sid: str, subscribed: bool
    ) -> None:
        await self._call(
            subjects.TRACK_SUBSCRIPTION,
            TrackSubscriptionRequest(
                account_sid=subscriber.account_sid,
                room_sid=subscriber.room_sid,
                subscriber_sid=subscriber.sid,
                track_sid=track_sid,
                subscribed=subscribed,
            ),
            TrackSubscriptionResult,
        )

    async def set_subscribe_rules(
        self, participant: ParticipantInfo, rules: list[dict[str, object]]
    ) -> SetSubscribeRulesResult:
        """The client's own rules from ``connect`` (``automaticSubscription: false`` is an
        exclude-all rule), stored and decided by the track service as a REST update would be."""
        return await self._call(
            subjects.TRACK_RULES_SET,
            SetSubscribeRulesRequest(
                account_sid=participant.account_sid,
                room_sid=participant.room_sid,
                participant_sid=participant.sid,
                rules=json.dumps(rules),
            ),
            SetSubscribeRulesResult,
        )
