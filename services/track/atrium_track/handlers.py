"""NATS request handlers of the track service: decode, call the use case, reply."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared import subjects, track_api
from atrium_shared.models import TrackInfo
from atrium_shared.rpc import reply_handler
from atrium_track.usecases import TrackUseCases


def register(broker: NatsBroker, tracks: TrackUseCases) -> None:
    queue = subjects.queue_group("track")

    @broker.subscriber(subjects.TRACK_PUBLISH, queue=queue, title="track.publish")
    @reply_handler
    async def publish(request: track_api.PublishTracksRequest) -> track_api.PublishTracksResult:
        """Register a participant's tracks (idempotent per client id); names who receives each."""
        return await tracks.publish(request)

    @broker.subscriber(subjects.TRACK_UNPUBLISH, queue=queue, title="track.unpublish")
    @reply_handler
    async def unpublish(
        request: track_api.UnpublishTracksRequest,
    ) -> track_api.UnpublishTracksResult:
        """Unpublish tracks by client id or MT SID; their subscriptions end."""
        return await tracks.unpublish(request)

    @broker.subscriber(subjects.TRACK_SET_ENABLED, queue=queue, title="track.set-enabled")
    @reply_handler
    async def set_enabled(request: track_api.SetTrackEnabledRequest) -> TrackInfo:
        """Enable or disable a published track; an event only on change."""
        return await tracks.set_enabled(request)

    @broker.subscriber(subjects.TRACK_SET_PRIORITY, queue=queue, title="track.set-priority")
    @reply_handler
    async def set_priority(request: track_api.SetTrackPriorityRequest) -> TrackInfo:
        """Change a published track's publish priority; rules that filter on priority decide
        again (broadcast on ``atrium.media.subscriptions``)."""
        return await tracks.set_priority(request)

    @broker.subscriber(subjects.TRACK_JOIN, queue=queue, title="track.join")
    @reply_handler
    async def join(request: track_api.JoinTracksRequest) -> track_api.JoinTracksResult:
        """A participant is in the room: the tracks it should subscribe to now."""
        return await tracks.join(request)

    @broker.subscriber(subjects.TRACK_LEAVE, queue=queue, title="track.leave")
    @reply_handler
    async def leave(request: track_api.LeaveTracksRequest) -> track_api.LeaveTracksResult:
        """A participant is leaving: unpublish all its tracks, forget its subscriptions."""
        return await tracks.leave(request)

    @broker.subscriber(subjects.TRACK_SUBSCRIPTION, queue=queue, title="track.subscription")
    @reply_handler
    async def subscription(
        request: track_api.TrackSubscriptionRequest,
    ) -> track_api.TrackSubscriptionResult:
        """Record whether a subscriber really receives a track (idempotent)."""
        return await tracks.subscription(request)

    @broker.subscriber(subjects.TRACK_PUBLISHED_FETCH, queue=queue, title="track.published.fetch")
    @reply_handler
    async def fetch_published(request: track_api.FetchPublishedTrackRequest) -> TrackInfo:
        """A published track by MT SID or track name."""
        return await tracks.fetch_published(request)

    @broker.subscriber(subjects.TRACK_PUBLISHED_LIST, queue=queue, title="track.published.list")
    @reply_handler
    async def list_published(
        request: track_api.ListPublishedTracksRequest,
    ) -> track_api.PublishedTrackPage:
        """One page of a participant's currently published tracks, newest first."""
        return await tracks.list_published(request)

    @broker.subscriber(subjects.TRACK_SUBSCRIBED_FETCH, queue=queue, title="track.subscribed.fetch")
    @reply_handler
    async def fetch_subscribed(
        request: track_api.FetchSubscribedTrackRequest,
    ) -> track_api.SubscribedTrackInfo:
        """A track a participant receives, by MT SID."""
        return await tracks.fetch_subscribed(request)

    @broker.subscriber(subjects.TRACK_SUBSCRIBED_LIST, queue=queue, title="track.subscribed.list")
    @reply_handler
    async def list_subscribed(
        request: track_api.ListSubscribedTracksRequest,
    ) -> track_api.SubscribedTrackPage:
        """One page of the tracks a participant receives, newest first."""
        return await tracks.list_subscribed(request)

    @broker.subscriber(subjects.TRACK_RULES_GET, queue=queue, title="track.rules.get")
    @reply_handler
    async def get_rules(request: track_api.FetchSubscribeRulesRequest) -> track_api.SubscribeRules:
        """A participant's SubscribeRules (the default, include all, until set)."""
        return await tracks.get_rules(request)

    @broker.subscriber(subjects.TRACK_RULES_SET, queue=queue, title="track.rules.set")
    @reply_handler
    async def set_rules(
        request: track_api.SetSubscribeRulesRequest,
    ) -> track_api.SetSubscribeRulesResult:
        """Validate (53215) and store a participant's SubscribeRules; the media workers hear the
        resulting subscriptions on ``atrium.media.subscriptions``."""
        return await tracks.set_rules(request)
