"""The track service's use cases: publishing, room presence, subscriptions, queries.

Every write is one decision run by the unit of work: what a decision reads through its
transaction, it depends on; a change to it by another writer before the commit runs the decision
again. A publish reads the room's participants and their SubscribeRules, a join and a rules change
read the room's tracks, and each writes what the others read. So a participant joining while
another publishes either gets the track from ``join`` or is named among its ``subscribers``, and
every decision about a subscriber is made with its newest rules.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from atrium_shared import errors, sids
from atrium_shared.errors import AtriumError
from atrium_shared.models import TrackInfo
from atrium_shared.track_api import (
    FetchPublishedTrackRequest,
    FetchSubscribedTrackRequest,
    FetchSubscribeRulesRequest,
    JoinTracksRequest,
    JoinTracksResult,
    LeaveTracksRequest,
    LeaveTracksResult,
    ListPublishedTracksRequest,
    ListSubscribedTracksRequest,
    PublishedTrackOutcome,
    PublishedTrackPage,
    PublishTracksRequest,
    PublishTracksResult,
    SetSubscribeRulesRequest,
    SetSubscribeRulesResult,
    SetTrackEnabledRequest,
    SetTrackPriorityRequest,
    SubscribedTrackInfo,
    SubscribedTrackPage,
    SubscribeRules,
    SubscriptionsChanged,
    TrackSubscriptionRequest,
    TrackSubscriptionResult,
    UnpublishTracksRequest,
    UnpublishTracksResult,
)
from atrium_shared.unit_of_work import UnitOfWork
from atrium_track import domain
from atrium_track.ports import (
    Clock,
    PageWindow,
    Publisher,
    SidPage,
    TrackIndex,
    TrackQueries,
    TrackTransaction,
)

log = logging.getLogger("atrium.track")


def _published_path(room_sid: str, participant_sid: str, sid: str) -> str:
    return f"/Rooms/{room_sid}/Participants/{participant_sid}/PublishedTracks/{sid}"


def _subscribed_path(room_sid: str, participant_sid: str, sid: str) -> str:
    return f"/Rooms/{room_sid}/Participants/{participant_sid}/SubscribedTracks/{sid}"


def _owned(track: TrackInfo, account_sid: str, room_sid: str, participant_sid: str) -> bool:
    return (
        track.account_sid == account_sid
        and track.room_sid == room_sid
        and track.participant_sid == participant_sid
    )


async def _room_view(
    tx: TrackTransaction, account_sid: str, room_sid: str
) -> tuple[list[TrackInfo], dict[str, str]]:
    """The room's published tracks, oldest first, and their publishers' identities: what a
    subscriber's rules are evaluated against."""
    published = [t for t in await tx.room_tracks(room_sid) if t.account_sid == account_sid]
    published.sort(key=lambda t: (t.date_created, t.sid))
    return published, await tx.identities({t.participant_sid for t in published})


class TrackUseCases:
    def __init__(
        self,
        uow: UnitOfWork[TrackTransaction],
        queries: TrackQueries,
        publisher: Publisher,
        clock: Clock,
    ) -> None:
        self.uow = uow
        self.queries = queries
        self.publisher = publisher
        self.clock = clock

    # Publishing ---------------------------------------------------------------------------------
    async def publish(self, request: PublishTracksRequest) -> PublishTracksResult:
        publisher = request.participant
        domain.check_participant(publisher, request.account_sid, request.room_sid)

        async def decide(tx: TrackTransaction) -> PublishTracksResult:
            if await tx.has_left(publisher.sid):
                raise domain.participant_not_found()
            now = self.clock.now()
            by_client_id = await tx.client_ids(publisher.sid)
            taken = await tx.track_names(publisher.sid)
            existing = {t.sid: t for t in await tx.tracks(list(by_client_id.values()))}
            others = sorted(await tx.room_participants(request.room_sid) - {publisher.sid})
            # Reading their rules makes a rules change of any of them rerun this publish (and a
            # rules change reads the room's tracks, which this writes): each decision below uses
            # the rules version the worker is told.
            stored = await tx.rules_of(others)
            rules_of = {sid: rules.rules for sid, rules in stored.items()}
            decided = {sid: stored[sid].version if sid in stored else 0 for sid in others}

            def outcome(client_id: str, track: TrackInfo, added: bool) -> PublishedTrackOutcome:
                return PublishedTrackOutcome(
                    client_id=client_id,
                    track=track,
                    added=added,
                    decided=decided,
                    subscribers=domain.subscribers_of(track, others, rules_of, publisher.identity),
                )

            outcomes: list[PublishedTrackOutcome] = []
            tx.save_participant(publisher)
            tx.enter_room(request.room_sid, publisher.sid)
            # Read in the transaction: of two publishes racing for the room's last track, the
            # second reruns and sees the first.
            limited = request.room is not None and bool(
                request.room.max_concurrent_published_tracks
            )
            in_room = (
                sum(
                    t.account_sid == publisher.account_sid
                    for t in await tx.room_tracks(request.room_sid)
                )
                if limited
                else 0
            )
            for wanted in request.tracks:
                known = existing.get(by_client_id.get(wanted.client_id, ""))
                if known is not None:
                    outcomes.append(outcome(wanted.client_id, known, added=False))
                    continue
                try:
                    domain.check_room_allows(request.room, wanted.kind, wanted.codec, in_room)
                    track, event = domain.publish(
                        publisher,
                        wanted.name,
                        wanted.kind,
                        wanted.enabled,
                        sids.new_sid(sids.TRACK),
                        now,
                        taken,
                        wanted.priority,
                    )
                except AtriumError as exc:
                    outcomes.append(
                        PublishedTrackOutcome(client_id=wanted.client_id, error=exc.body())
                    )
                    continue
                taken.add(track.name)
                in_room += 1
                # The same client id twice in one request is one track.
                by_client_id[wanted.client_id] = track.sid
                existing[track.sid] = track
                tx.add_track(track, wanted.client_id)
                tx.emit(event)
                outcomes.append(outcome(wanted.client_id, track, added=True))
            return PublishTracksResult(tracks=outcomes)

        return await self.uow.run(decide)

    async def unpublish(self, request: UnpublishTracksRequest) -> UnpublishTracksResult:
        removed = await self._unpublish(
            request.account_sid,
            request.room_sid,
            request.participant_sid,
            request.client_ids,
            request.track_sids,
            leaving=False,
        )
        return UnpublishTracksResult(removed=removed)

    async def _unpublish(
        self,
        account_sid: str,
        room_sid: str,
        participant_sid: str,
        client_ids: list[str] | None,
        track_sids: Sequence[str],
        *,
        leaving: bool,
    ) -> list[TrackInfo]:
        """Unpublish the given tracks (all of them when ``client_ids`` is None) in one commit.

        ``leaving`` also forgets the participant: its room presence and its subscriptions.
        """

        async def decide(tx: TrackTransaction) -> list[TrackInfo]:
            now = self.clock.now()
            by_client_id = await tx.client_ids(participant_sid)
            client_of = {sid: client_id for client_id, sid in by_client_id.items()}
            if client_ids is None:
                wanted = set(by_client_id.values())
            else:
                wanted = {by_client_id[c] for c in client_ids if c in by_client_id}
                wanted |= set(track_sids)
            tracks = [
                t
                for t in await tx.tracks(sorted(wanted))
                if _owned(t, account_sid, room_sid, participant_sid)
            ]
            tracks.sort(key=lambda t: (t.date_created, t.sid))
            own_subscriptions = await tx.subscriptions(participant_sid) if leaving else {}
            fan_out = {track.sid: await tx.subscribers(track.sid) for track in tracks}
            if not tracks and not leaving:
                return []
            publisher = await tx.participant(participant_sid)
            if tracks and publisher is None:
                log.warning("participant %s has tracks but no record", participant_sid)
            for track in tracks:
                if publisher is not None:
                    tx.emit(domain.unpublish(publisher, track, now))
                for subscriber in sorted(fan_out[track.sid]):
                    tx.unsubscribe(subscriber, track.sid)
                tx.remove_track(track, client_of.get(track.sid))
            if leaving:
                for track_sid in own_subscriptions:
                    tx.unsubscribe(participant_sid, track_sid)
                tx.forget_participant(room_sid, participant_sid)
            return tracks

        return await self.uow.run(decide)

    async def set_enabled(self, request: SetTrackEnabledRequest) -> TrackInfo:
        async def decide(tx: TrackTransaction) -> TrackInfo:
            track = await tx.track(request.track_sid)
            if track is None or track.account_sid != request.account_sid:
                raise errors.not_found(f"/Tracks/{request.track_sid}")
            publisher = await tx.participant(track.participant_sid)
            change = (
                domain.set_enabled(publisher, track, request.enabled, self.clock.now())
                if publisher is not None
                else None
            )
            if change is None:
                return track
            changed, event = change
            tx.update_track(changed)
            tx.emit(event)
            return changed

        return await self.uow.run(decide)

    async def set_priority(self, request: SetTrackPriorityRequest) -> TrackInfo:
        """Store a track's new publish priority. Whoever's rules filter on priority has its
        subscriptions decided again, as a rules change would (the next version of the same
        rules, every track in the room considered), and the media workers are told: that
        decision supersedes any made with the old priority, however the messages arrive."""

        async def decide(tx: TrackTransaction) -> tuple[TrackInfo, list[SubscriptionsChanged]]:
            track = await tx.track(request.track_sid)
            if track is None or track.account_sid != request.account_sid:
                raise errors.not_found(f"/Tracks/{request.track_sid}")
            changed = domain.set_priority(track, request.priority, self.clock.now())
            if changed is None:
                return track, []
            tx.update_track(changed)
            # Read in the transaction: a join, publish or rules change committed meanwhile
            # reruns this, and each of them reads the track this writes.
            others = sorted(await tx.room_participants(track.room_sid) - {track.participant_sid})
            affected = [
                rules
                for rules in (await tx.rules_of(others)).values()
                if rules.account_sid == track.account_sid
                and domain.filters_on_priority(rules.rules)
            ]
            if not affected:
                return changed, []
            published, identities = await _room_view(tx, track.account_sid, track.room_sid)
            # What this transaction reads is the committed state: the track as it is now.
            published = [changed if t.sid == changed.sid else t for t in published]
            decisions = []
            for rules in affected:
                next_rules = domain.redecided(rules)
                tx.save_rules(next_rules)
                desired = domain.tracks_for(
                    rules.participant_sid, published, rules.rules, identities
                )
                decisions.append(
                    SubscriptionsChanged(
                        account_sid=track.account_sid,
                        room_sid=track.room_sid,
                        subscriber_sid=rules.participant_sid,
                        rules_version=next_rules.version,
                        desired=[t.sid for t in desired],
                        considered=[t.sid for t in published],
                    )
                )
            return changed, decisions

        track, decisions = await self.uow.run(decide)
        for decision in decisions:
            await self.publisher.subscriptions_changed(decision)
        return track

    # Room presence ------------------------------------------------------------------------------
    async def join(self, request: JoinTracksRequest) -> JoinTracksResult:
        async def decide(tx: TrackTransaction) -> JoinTracksResult:
            if await tx.has_left(request.participant_sid):
                raise domain.participant_not_found()
            published, identities = await _room_view(tx, request.account_sid, request.room_sid)
            rules = await tx.rules(request.participant_sid)
            tx.enter_room(request.room_sid, request.participant_sid)
            return JoinTracksResult(
                tracks=domain.tracks_for(
                    request.participant_sid,
                    published,
                    rules.rules if rules is not None else domain.DEFAULT_RULES,
                    identities,
                ),
                considered=[t.sid for t in published],
                rules_version=rules.version if rules is not None else 0,
            )

        return await self.uow.run(decide)

    async def leave(self, request: LeaveTracksRequest) -> LeaveTracksResult:
        """Commits the participant's ``track-removed`` events before it replies: the participant
        service disconnects it only then, so they precede ``participant-disconnected``."""
        removed = await self._unpublish(
            request.account_sid,
            request.room_sid,
            request.participant_sid,
            None,
            [],
            leaving=True,
        )
        return LeaveTracksResult(removed=removed)

    # Subscriptions ------------------------------------------------------------------------------
    async def subscription(self, request: TrackSubscriptionRequest) -> TrackSubscriptionResult:
        subscriber = request.subscriber_sid

        async def decide(tx: TrackTransaction) -> TrackSubscriptionResult:
            track = await tx.track(request.track_sid)
            if track is not None and (
                track.account_sid != request.account_sid or track.room_sid != request.room_sid
            ):
                track = None
            since = await tx.subscribed_since(subscriber, request.track_sid)
            if not request.subscribed:
                if since is None:
                    return TrackSubscriptionResult(changed=False)
                tx.unsubscribe(subscriber, request.track_sid)
                return TrackSubscriptionResult(changed=True)
            if track is None:
                raise errors.not_found(
                    _subscribed_path(request.room_sid, subscriber, request.track_sid)
                )
            domain.check_subscriber(subscriber, track)
            if subscriber not in await tx.room_participants(request.room_sid):
                raise domain.participant_not_found()
            if since is not None:
                return TrackSubscriptionResult(
                    changed=False, subscription=domain.subscription(subscriber, track, since)
                )
            now = self.clock.now()
            tx.subscribe(subscriber, request.track_sid, now)
            return TrackSubscriptionResult(
                changed=True, subscription=domain.subscription(subscriber, track, now)
            )

        return await self.uow.run(decide)

    # SubscribeRules -----------------------------------------------------------------------------
    async def get_rules(self, request: FetchSubscribeRulesRequest) -> SubscribeRules:
        stored = await self.queries.rules(request.participant_sid)
        if stored is None or stored.account_sid != request.account_sid:
            return domain.default_rules(
                request.account_sid, request.room_sid, request.participant_sid
            )
        return stored

    async def set_rules(self, request: SetSubscribeRulesRequest) -> SetSubscribeRulesResult:
        """Validate and store the rules (53215 changes nothing), then tell the media workers
        the participant's resulting subscriptions."""
        rules = domain.parse_rules(request.rules)
        subscriber = request.participant_sid

        async def decide(tx: TrackTransaction) -> SetSubscribeRulesResult:
            if await tx.has_left(subscriber):
                raise errors.not_found(
                    f"/Rooms/{request.room_sid}/Participants/{subscriber}/SubscribeRules"
                )
            current = await tx.rules(subscriber)
            if current is None or current.account_sid != request.account_sid:
                current = domain.default_rules(request.account_sid, request.room_sid, subscriber)
            changed = domain.set_rules(current, rules, self.clock.now())
            # Reading the room's tracks makes a publish in the room rerun this decision, and a
            # publish reads these rules: the broadcast below is never older than a publish's.
            published, identities = await _room_view(tx, request.account_sid, request.room_sid)
            desired = domain.tracks_for(subscriber, published, rules, identities)
            tx.save_rules(changed)
            return SetSubscribeRulesResult(
                rules=changed,
                desired=[t.sid for t in desired],
                considered=[t.sid for t in published],
            )

        result = await self.uow.run(decide)
        await self.publisher.subscriptions_changed(
            SubscriptionsChanged(
                account_sid=request.account_sid,
                room_sid=request.room_sid,
                subscriber_sid=subscriber,
                rules_version=result.rules.version,
                desired=result.desired,
                considered=result.considered,
            )
        )
        return result

    # Queries ------------------------------------------------------------------------------------
    async def fetch_published(self, request: FetchPublishedTrackRequest) -> TrackInfo:
        key = request.sid_or_name
        sid: str | None = key
        if not sids.is_sid(key, sids.TRACK):
            sid = await self.queries.sid_by_name(request.participant_sid, key)
        track = await self.queries.track(sid) if sid else None
        if track is None or not _owned(
            track, request.account_sid, request.room_sid, request.participant_sid
        ):
            raise errors.not_found(_published_path(request.room_sid, request.participant_sid, key))
        return track

    async def list_published(self, request: ListPublishedTracksRequest) -> PublishedTrackPage:
        track_sids, next_cursor, prev_cursor = await self._page(request, "published")
        items = [
            t
            for t in await self.queries.tracks(track_sids)
            if _owned(t, request.account_sid, request.room_sid, request.participant_sid)
        ]
        return PublishedTrackPage(items=items, next_cursor=next_cursor, previous_cursor=prev_cursor)

    async def fetch_subscribed(self, request: FetchSubscribedTrackRequest) -> SubscribedTrackInfo:
        found = await self._subscribed(request.participant_sid, request.sid)
        if (
            found is None
            or found.account_sid != request.account_sid
            or (found.room_sid != request.room_sid)
        ):
            raise errors.not_found(
                _subscribed_path(request.room_sid, request.participant_sid, request.sid)
            )
        return found

    async def list_subscribed(self, request: ListSubscribedTracksRequest) -> SubscribedTrackPage:
        track_sids, next_cursor, prev_cursor = await self._page(request, "subscribed")
        found = [await self._subscribed(request.participant_sid, sid) for sid in track_sids]
        items = [
            s
            for s in found
            if s is not None
            and s.account_sid == request.account_sid
            and s.room_sid == request.room_sid
        ]
        return SubscribedTrackPage(
            items=items, next_cursor=next_cursor, previous_cursor=prev_cursor
        )

    async def _page(
        self, request: ListPublishedTracksRequest | ListSubscribedTracksRequest, index: TrackIndex
    ) -> SidPage:
        window: PageWindow = request
        try:
            return await self.queries.page(request.participant_sid, index, window)
        except ValueError as exc:
            raise AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400) from exc

    async def _subscribed(self, subscriber_sid: str, track_sid: str) -> SubscribedTrackInfo | None:
        if not sids.is_sid(track_sid, sids.TRACK):
            return None
        since = await self.queries.subscribed_since(subscriber_sid, track_sid)
        track = await self.queries.track(track_sid) if since is not None else None
        if since is None or track is None:
            return None
        return domain.subscription(subscriber_sid, track, since)
