"""The services' RPCs called straight over NATS, as the gateway and the media worker call them."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsBroker

from atrium_shared import subjects
from atrium_shared.events import DomainEvent
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.participant_api import AdmitParticipantRequest, AdmitParticipantResult
from atrium_shared.room_api import JoinRoomRequest, JoinRoomResult
from atrium_shared.rpc import call
from atrium_shared.track_api import (
    JoinTracksRequest,
    JoinTracksResult,
    PublishTracksRequest,
    PublishTracksResult,
    TrackSubscriptionRequest,
    TrackSubscriptionResult,
    TrackToPublish,
)
from tests.support.jetstream import stream_events


async def join_room(broker: NatsBroker, account_sid: str, room: str) -> JoinRoomResult:
    """``room.join``: the room (created ad hoc if need be) and the worker it is placed on."""
    request = JoinRoomRequest(account_sid=account_sid, room=room)
    return await call(broker, subjects.ROOM_JOIN, request, JoinRoomResult)


async def admission(broker: NatsBroker, room: Any, identity: str) -> AdmitParticipantResult:
    """``participant.admit`` into ``room`` (a twilio-python room instance or a ``RoomInfo``)."""
    request = AdmitParticipantRequest(
        account_sid=room.account_sid,
        room_sid=room.sid,
        identity=identity,
        max_participants=room.max_participants,
        max_participant_duration=room.max_participant_duration,
    )
    return await call(broker, subjects.PARTICIPANT_ADMIT, request, AdmitParticipantResult)


async def admit(broker: NatsBroker, room: Any, identity: str) -> ParticipantInfo:
    """The participant ``participant.admit`` connects."""
    return (await admission(broker, room, identity)).participant


async def join_tracks(broker: NatsBroker, who: ParticipantInfo) -> JoinTracksResult:
    """``track.join``: what a participant that just connected subscribes to."""
    request = JoinTracksRequest(
        account_sid=who.account_sid, room_sid=who.room_sid, participant_sid=who.sid
    )
    return await call(broker, subjects.TRACK_JOIN, request, JoinTracksResult)


async def publish(
    broker: NatsBroker, who: ParticipantInfo, *tracks: tuple[str, str, str]
) -> PublishTracksResult:
    """``track.publish`` of (client id, name, kind) triples."""
    to_publish = [TrackToPublish(client_id=c, name=n, kind=k) for c, n, k in tracks]
    request = PublishTracksRequest(
        account_sid=who.account_sid, room_sid=who.room_sid, participant=who, tracks=to_publish
    )
    return await call(broker, subjects.TRACK_PUBLISH, request, PublishTracksResult)


def published(result: PublishTracksResult) -> list[TrackInfo]:
    """The tracks of a publish in which every one was accepted, in order."""
    tracks = [outcome.track for outcome in result.tracks]
    assert all(track is not None for track in tracks), result
    return [track for track in tracks if track is not None]


async def subscription(
    broker: NatsBroker, subscriber: ParticipantInfo, track_sid: str, subscribed: bool
) -> TrackSubscriptionResult:
    """``track.subscription``: ``subscriber`` subscribes to the track or stops."""
    request = TrackSubscriptionRequest(
        account_sid=subscriber.account_sid,
        room_sid=subscriber.room_sid,
        subscriber_sid=subscriber.sid,
        track_sid=track_sid,
        subscribed=subscribed,
    )
    return await call(broker, subjects.TRACK_SUBSCRIPTION, request, TrackSubscriptionResult)


async def room_events(nats_url: str, room_sid: str) -> list[DomainEvent]:
    """The room's events in the event stream, in stream order."""
    return [e for e in await stream_events(nats_url) if e.room_sid == room_sid]
