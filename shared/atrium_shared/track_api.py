"""Requests the track service answers over NATS (see :mod:`atrium_shared.subjects`).

The media worker registers what its clients publish (``publish``/``unpublish``/``set_enabled``/
``set_priority``), tells the service who is in a room (``join``/``leave``) and reports which
subscriptions really carry media (``subscription``); the participant service calls ``leave``
before it disconnects a participant, so ``track-removed`` precedes ``participant-disconnected``.
The gateway reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from atrium_shared.errors import ErrorBody
from atrium_shared.models import (
    DEFAULT_TRACK_PRIORITY,
    Page,
    ParticipantInfo,
    RoomInfo,
    TrackInfo,
    TrackKind,
    TrackPriority,
)


class SubscribedTrackInfo(BaseModel):
    """A track a subscriber really receives: the publisher's track seen from the subscriber."""

    sid: str
    account_sid: str
    room_sid: str
    participant_sid: str  # the subscriber
    publisher_sid: str
    name: str
    kind: TrackKind
    enabled: bool
    date_created: datetime  # when the subscription started
    date_updated: datetime


class TrackToPublish(BaseModel):
    """One track of a client's ``update``. ``kind`` is checked by the service (53300)."""

    client_id: str  # the SDK's track id (``a=msid`` track id or data channel label)
    name: str
    kind: str
    enabled: bool = True
    priority: TrackPriority = DEFAULT_TRACK_PRIORITY  # its publish priority
    # The video codec the publisher sends it with, as negotiated (VP8, H264); None when not
    # known yet or not video.
    codec: str | None = None


class PublishTracksRequest(BaseModel):
    """``room`` is the room as the worker hosting it knows it: its AudioOnly, VideoCodecs and
    max_concurrent_published_tracks decide what may be published (None: no such limits)."""

    account_sid: str
    room_sid: str
    participant: ParticipantInfo
    tracks: list[TrackToPublish]
    room: RoomInfo | None = None


class PublishedTrackOutcome(BaseModel):
    """What became of one requested track.

    Either ``track`` (with its MT SID; ``added`` is False when the client id was already
    published, which changes nothing) or ``error`` (53300-53304), which the worker reports in
    RSP ``published`` as ``state: "failed"``. ``subscribers`` are the PA SIDs of the other
    participants in the room that should receive the track now.
    """

    client_id: str
    track: TrackInfo | None = None
    added: bool = False
    subscribers: list[str] = Field(default_factory=list)
    # Every other participant present -> the version of its SubscribeRules that decided whether
    # it is among ``subscribers`` (a worker that applied a newer version ignores this decision).
    decided: dict[str, int] = Field(default_factory=dict)
    error: ErrorBody | None = None


class PublishTracksResult(BaseModel):
    tracks: list[PublishedTrackOutcome]


class UnpublishTracksRequest(BaseModel):
    """Unpublish by client id and/or MT SID; unknown ones are ignored (idempotent)."""

    account_sid: str
    room_sid: str
    participant_sid: str
    client_ids: list[str] = Field(default_factory=list)
    track_sids: list[str] = Field(default_factory=list)


class UnpublishTracksResult(BaseModel):
    removed: list[TrackInfo]


class SetTrackEnabledRequest(BaseModel):
    account_sid: str
    track_sid: str
    enabled: bool


class SetTrackPriorityRequest(BaseModel):
    """The publisher changed a track's publish priority (twilio-video.js ``setPriority()``).

    The reply is the track. Every other participant whose SubscribeRules filter on ``priority``
    has its subscriptions decided again under the next version of its rules, broadcast as
    :class:`SubscriptionsChanged` (as after a rules change)."""

    account_sid: str
    track_sid: str
    priority: TrackPriority


class JoinTracksRequest(BaseModel):
    """A participant is in the room: it takes part in subscriptions from now on."""

    account_sid: str
    room_sid: str
    participant_sid: str


class JoinTracksResult(BaseModel):
    """The tracks of others the participant should subscribe to right now.

    ``considered`` are the MT SIDs of every track published in the room when this was decided
    (``tracks`` are the ones of them the rules select), ``rules_version`` the version of the
    participant's SubscribeRules used.
    """

    tracks: list[TrackInfo]
    considered: list[str] = Field(default_factory=list)
    rules_version: int = 0


class LeaveTracksRequest(BaseModel):
    """A participant is leaving: unpublish its tracks, forget its subscriptions."""

    account_sid: str
    room_sid: str
    participant_sid: str


class LeaveTracksResult(BaseModel):
    removed: list[TrackInfo]


class TrackSubscriptionRequest(BaseModel):
    """Whether ``subscriber_sid`` really receives ``track_sid`` now (media or data flows)."""

    account_sid: str
    room_sid: str
    subscriber_sid: str
    track_sid: str
    subscribed: bool


class TrackSubscriptionResult(BaseModel):
    changed: bool
    subscription: SubscribedTrackInfo | None = None


class FetchPublishedTrackRequest(BaseModel):
    account_sid: str
    room_sid: str
    participant_sid: str
    sid_or_name: str


class ListPublishedTracksRequest(BaseModel):
    account_sid: str
    room_sid: str
    participant_sid: str
    created_on_or_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class PublishedTrackPage(Page[TrackInfo]):
    pass


class FetchSubscribedTrackRequest(BaseModel):
    account_sid: str
    room_sid: str
    participant_sid: str
    sid: str


class ListSubscribedTracksRequest(BaseModel):
    account_sid: str
    room_sid: str
    participant_sid: str
    created_on_or_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = Field(50, ge=1, le=1000)
    cursor: str | None = None


class SubscribedTrackPage(Page[SubscribedTrackInfo]):
    pass


# SubscribeRules -----------------------------------------------------------------------------------
class SubscribeRule(BaseModel):
    """One validated rule: ``type`` and either ``all`` or one or more filters (ANDed)."""

    type: Literal["include", "exclude"]
    all: bool | None = None
    publisher: str | None = None  # identity (case-sensitive) or PA SID
    track: str | None = None  # track name (case-sensitive) or MT SID
    kind: TrackKind | None = None
    priority: str | None = None  # compared with the track's publish priority


class SubscribeRules(BaseModel):
    """A participant's rules. ``version`` 0 with no dates: never set (the default applies)."""

    account_sid: str
    room_sid: str
    participant_sid: str
    rules: list[SubscribeRule]
    version: int = 0
    date_created: datetime | None = None
    date_updated: datetime | None = None


class FetchSubscribeRulesRequest(BaseModel):
    account_sid: str
    room_sid: str
    participant_sid: str


class SetSubscribeRulesRequest(BaseModel):
    """``rules``: the ``Rules`` form value as sent (JSON text); the service validates it (53215)."""

    account_sid: str
    room_sid: str
    participant_sid: str
    rules: str | None


class SetSubscribeRulesResult(BaseModel):
    rules: SubscribeRules
    desired: list[str]  # MT SIDs the participant should receive now
    considered: list[str]  # MT SIDs published in the room when this was decided


class SubscriptionsChanged(BaseModel):
    """Broadcast to every media worker (``atrium.media.subscriptions``) after a rules change:
    the worker hosting ``subscriber_sid`` subscribes it to ``desired`` and unsubscribes it from
    the rest of ``considered``; a message older than the ``rules_version`` it applied is moot."""

    account_sid: str
    room_sid: str
    subscriber_sid: str
    rules_version: int
    desired: list[str]
    considered: list[str]
