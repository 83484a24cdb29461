"""What the media worker asks of the control plane (admission, tracks, subscriptions,
recordings, connection state). Protocols only: ``adapters/nats.py`` implements them over NATS
request/reply, tests pass fakes."""

from __future__ import annotations

from typing import Protocol

from atrium_shared.models import ParticipantInfo, RoomInfo, TrackPriority
from atrium_shared.participant_api import AdmitParticipantResult
from atrium_shared.recording_api import RecordingReport
from atrium_shared.track_api import (
    JoinTracksResult,
    PublishTracksResult,
    SetSubscribeRulesResult,
    TrackToPublish,
)


class ControlPlane(Protocol):
    async def admit(
        self,
        account_sid: str,
        room_sid: str,
        identity: str,
        max_participants: int,
        max_participant_duration: int,
    ) -> AdmitParticipantResult: ...

    async def leave(self, participant: ParticipantInfo, reason: str) -> ParticipantInfo: ...

    async def report_recording(self, report: RecordingReport) -> None: ...

    async def set_connection_state(self, participant: ParticipantInfo, state: str) -> None: ...

    async def join_tracks(self, participant: ParticipantInfo) -> JoinTracksResult: ...

    async def publish(
        self,
        participant: ParticipantInfo,
        tracks: list[TrackToPublish],
        room: RoomInfo | None = None,
    ) -> PublishTracksResult:
        """``room``: the hosted room, whose settings decide what may be published."""
        ...

    async def unpublish(self, participant: ParticipantInfo, track_sids: list[str]) -> None: ...

    async def set_enabled(self, account_sid: str, track_sid: str, enabled: bool) -> None: ...

    async def set_priority(self, account_sid: str, track_sid: str, priority: TrackPriority) -> None:
        """A track's new publish priority (subscriptions that depend on it follow as a
        SubscriptionsChanged broadcast)."""
        ...

    async def subscription(
        self, subscriber: ParticipantInfo, track_sid: str, subscribed: bool
    ) -> None: ...

    async def set_subscribe_rules(
        self, participant: ParticipantInfo, rules: list[dict[str, object]]
    ) -> SetSubscribeRulesResult: ...
