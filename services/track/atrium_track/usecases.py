"""The track service's use cases: publishing, room presence, subscriptions, queries.

Every write goes through :func:`atrium_shared.outbox.commit` under WATCH. A publish and a join
watch what the other writes (the room's participants and tracks), so a participant joining while
another publishes either gets the track from ``join`` or is named among its ``subscribers``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from redis.asyncio.client import Pipeline

from atrium_shared import errors, outbox, sids
from atrium_shared.errors import AtriumError
from atrium_shared.events import DomainEvent
from atrium_shared.models import TrackInfo
from atrium_shared.timefmt import utcnow
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
    SubscribedTrackInfo,
    SubscribedTrackPage,
    SubscribeRules,
    SubscriptionsChanged,
    TrackSubscriptionRequest,
    TrackSubscriptionResult,
    UnpublishTracksRequest,
    UnpublishTracksResult,
)
from atrium_track import domain
from atrium_track.repository import (
    TrackRepository,
    client_ids_key,
    left_key,
    member_since,
    names_key,
    room_participants_key,
    room_tracks_key,
    rules_key,
    subscribed_key,
    subscribers_key,
    track_key,
)

log = logging.getLogger("atrium.track")


def _published_path(room_sid: str, participant_sid: str, sid: str) -> str:
    return f"/Rooms/{room_sid}/Participants/{participant_sid}/PublishedTracks/{sid}"


def _subscribed_path(room_sid: str, participant_sid: str, sid: str) -> str:
    return f"/Rooms/{room_sid}/Participants/{participant_sid}/SubscribedTracks/{sid}"


Notify = Callable[[SubscriptionsChanged], Awaitable[None]]


class TrackUseCases:
    def __init__(self, repository: TrackRepository, notify: Notify | None = None) -> None:
        self.tracks = repository
        self.notify = notify  # tells the media workers of a rules change

    # Publishing ---------------------------------------------------------------------------------
    async def publish(self, request: PublishTracksRequest) -> PublishTracksResult:
        publisher = request.participant
        domain.check_participant(publisher, request.account_sid, request.room_sid)
        outcomes: list[PublishedTrackOutcome] = []

        async def decide(pipe: Pipeline) -> outbox.Change:
            outcomes.clear()
            if await TrackRepository.has_left(pipe, publisher.sid):
                raise AtriumError(errors.PARTICIPANT_NOT_FOUND, "Participant not found", 400)
            now = utcnow()
            by_client_id = await TrackRepository.client_ids(pipe, publisher.sid)
            taken = set((await TrackRepository.names(pipe, publisher.sid)).keys())
            existing = {
                t.sid: t
                for t in await TrackRepository.load_many(pipe, list(by_client_id.values()))
            }
            present = await TrackRepository.room_participants(pipe, request.room_sid)
            others = sorted(present - {publisher.sid})
            # A rules change of any of them retries this publish (and a rules change watches the
            # room's tracks): each decision below uses the rules version the worker is told.
            if others:
                await pipe.watch(*(rules_key(sid) for sid in others))
            stored = await TrackRepository.rules_of(pipe, others)
            rules_of = {sid: rules for sid, (rules, _) in stored.items()}
            decided = {sid: stored[sid][1] if sid in stored else 0 for sid in others}

            def subscribers(track: TrackInfo) -> list[str]:
                return domain.subscribers_of(track, others, rules_of, publisher.identity)

            added: list[tuple[TrackInfo, str]] = []
            events: list[DomainEvent] = []
            for wanted in request.tracks:
                known = existing.get(by_client_id.get(wanted.client_id, ""))
                if known is not None:
                    outcomes.append(PublishedTrackOutcome(
                        client_id=wanted.client_id, track=known,
                        subscribers=subscribers(known), decided=decided,
                    ))
                    continue
                try:
                    track, event = domain.publish(
                        publisher, wanted.name, wanted.kind, wanted.enabled,
                        sids.new_sid(sids.TRACK), now, taken,
                    )
                except AtriumError as exc:
                    outcomes.append(PublishedTrackOutcome(
                        client_id=wanted.client_id, error=exc.body()
                    ))
                    continue
                taken.add(track.name)
                # The same client id twice in one request is one track.
                by_client_id[wanted.client_id] = track.sid
                existing[track.sid] = track
                added.append((track, wanted.client_id))
                events.append(event)
                outcomes.append(PublishedTrackOutcome(
                    client_id=wanted.client_id, track=track, added=True,
                    subscribers=subscribers(track), decided=decided,
                ))

            def write(p: Pipeline) -> None:
                TrackRepository.write_participant(p, publisher)
                TrackRepository.write_joined(p, request.room_sid, publisher.sid)
                for track, client_id in added:
                    TrackRepository.write_published(p, track, client_id)

            return outbox.Change(write=write, events=events)

        watch = [
            left_key(publisher.sid),
            client_ids_key(publisher.sid),
            names_key(publisher.sid),
            room_participants_key(request.room_sid),
        ]
        await outbox.commit(self.tracks.redis, watch, decide)
        return PublishTracksResult(tracks=list(outcomes))

    async def unpublish(self, request: UnpublishTracksRequest) -> UnpublishTracksResult:
        removed = await self._unpublish(
            request.account_sid, request.room_sid, request.participant_sid,
            request.client_ids, request.track_sids, leaving=False,
        )
        return UnpublishTracksResult(removed=removed)

    async def _unpublish(
        self,
        account_sid: str,
        room_sid: str,
        participant_sid: str,
        client_ids: list[str] | None,
        track_sids: list[str],
        *,
        leaving: bool,
    ) -> list[TrackInfo]:
        """Unpublish the given tracks (all of them when ``client_ids`` is None) in one commit.

        ``leaving`` also forgets the participant: its room presence and its subscriptions.
        """
        removed: list[TrackInfo] = []

        async def decide(pipe: Pipeline) -> outbox.Change | None:
            removed.clear()
            now = utcnow()
            by_client_id = await TrackRepository.client_ids(pipe, participant_sid)
            client_of = {sid: client_id for client_id, sid in by_client_id.items()}
            if client_ids is None:
                wanted = set(by_client_id.values())
            else:
                wanted = {by_client_id[c] for c in client_ids if c in by_client_id}
                wanted |= set(track_sids)
            tracks = [
                t for t in await TrackRepository.load_many(pipe, sorted(wanted))
                if t.participant_sid == participant_sid
                and t.account_sid == account_sid
                and t.room_sid == room_sid
            ]
            tracks.sort(key=lambda t: (t.date_created, t.sid))
            own_subscriptions = (
                await TrackRepository.subscriptions(pipe, participant_sid) if leaving else {}
            )
            # Watch what the removal touches, then read it.
            if tracks:
                await pipe.watch(*(subscribers_key(t.sid) for t in tracks),
                                 *(track_key(t.sid) for t in tracks))
            fan_out: dict[str, dict[str, str]] = {}
            for track in tracks:
                members: dict[str, str] = {}
                for subscriber in await TrackRepository.subscribers(pipe, track.sid):
                    member = await TrackRepository.subscription_member(pipe, subscriber, track.sid)
                    if member is not None:
                        members[subscriber] = member
                fan_out[track.sid] = members
            if not tracks and not leaving:
                return None
            publisher = await TrackRepository.load_participant(pipe, participant_sid)
            events: list[DomainEvent] = []
            if tracks and publisher is None:
                log.warning("participant %s has tracks but no record", participant_sid)
            for track in tracks:
                if publisher is not None:
                    events.append(domain.unpublish(publisher, track, now))
                removed.append(track)

            def write(p: Pipeline) -> None:
                for track in tracks:
                    TrackRepository.write_unpublished(
                        p, track, client_of.get(track.sid), fan_out[track.sid]
                    )
                if leaving:
                    for track_sid, member in own_subscriptions.items():
                        TrackRepository.write_unsubscribed(p, participant_sid, track_sid, member)
                    TrackRepository.write_left(p, room_sid, participant_sid)

            return outbox.Change(write=write, events=events)

        watch = [client_ids_key(participant_sid), names_key(participant_sid)]
        if leaving:
            watch += [subscribed_key(participant_sid), room_participants_key(room_sid),
                      left_key(participant_sid)]
        await outbox.commit(self.tracks.redis, watch, decide)
        return list(removed)

    async def set_enabled(self, request: SetTrackEnabledRequest) -> TrackInfo:
        result: list[TrackInfo] = []

        async def decide(pipe: Pipeline) -> outbox.Change | None:
            result.clear()
            track = await TrackRepository.load(pipe, request.track_sid)
            if track is None or track.account_sid != request.account_sid:
                raise errors.not_found(f"/Tracks/{request.track_sid}")
            publisher = await TrackRepository.load_participant(pipe, track.participant_sid)
            change = (
                domain.set_enabled(publisher, track, request.enabled, utcnow())
                if publisher is not None else None
            )
            if change is None:
                result.append(track)
                return None
            changed, event = change
            result.append(changed)

            def write(p: Pipeline) -> None:
                TrackRepository.write_updated(p, changed)

            return outbox.Change(write=write, events=[event])

        await outbox.commit(self.tracks.redis, [track_key(request.track_sid)], decide)
        return result[-1]

    # Room presence ------------------------------------------------------------------------------
    async def join(self, request: JoinTracksRequest) -> JoinTracksResult:
        found: list[TrackInfo] = []
        considered: list[str] = []
        versions: list[int] = []

        async def decide(pipe: Pipeline) -> outbox.Change:
            found.clear()
            considered.clear()
            versions.clear()
            if await TrackRepository.has_left(pipe, request.participant_sid):
                raise AtriumError(errors.PARTICIPANT_NOT_FOUND, "Participant not found", 400)
            published = await TrackRepository.load_many(
                pipe, await TrackRepository.room_tracks(pipe, request.room_sid)
            )
            published = [t for t in published if t.account_sid == request.account_sid]
            published.sort(key=lambda t: (t.date_created, t.sid))
            rules = await TrackRepository.rules(pipe, request.participant_sid)
            identities = await TrackRepository.identities(
                pipe, {t.participant_sid for t in published}
            )
            found.extend(domain.tracks_for(
                request.participant_sid, published,
                rules.rules if rules is not None else domain.DEFAULT_RULES, identities,
            ))
            considered.extend(t.sid for t in published)
            versions.append(rules.version if rules is not None else 0)

            def write(p: Pipeline) -> None:
                TrackRepository.write_joined(p, request.room_sid, request.participant_sid)

            return outbox.Change(write=write)

        watch = [left_key(request.participant_sid), room_tracks_key(request.room_sid),
                 rules_key(request.participant_sid)]
        await outbox.commit(self.tracks.redis, watch, decide)
        return JoinTracksResult(tracks=list(found), considered=list(considered),
                                rules_version=versions[-1])

    async def leave(self, request: LeaveTracksRequest) -> LeaveTracksResult:
        removed = await self._unpublish(
            request.account_sid, request.room_sid, request.participant_sid, None, [],
            leaving=True,
        )
        return LeaveTracksResult(removed=removed)

    # Subscriptions ------------------------------------------------------------------------------
    async def subscription(self, request: TrackSubscriptionRequest) -> TrackSubscriptionResult:
        outcome: list[TrackSubscriptionResult] = []
        subscriber = request.subscriber_sid

        async def decide(pipe: Pipeline) -> outbox.Change | None:
            outcome.clear()
            track = await TrackRepository.load(pipe, request.track_sid)
            if track is not None and (
                track.account_sid != request.account_sid or track.room_sid != request.room_sid
            ):
                track = None
            member = await TrackRepository.subscription_member(pipe, subscriber, request.track_sid)
            if not request.subscribed:
                if member is None:
                    outcome.append(TrackSubscriptionResult(changed=False))
                    return None
                ended = member

                def unsubscribe(p: Pipeline) -> None:
                    TrackRepository.write_unsubscribed(p, subscriber, request.track_sid, ended)

                outcome.append(TrackSubscriptionResult(changed=True))
                return outbox.Change(write=unsubscribe)
            if track is None:
                raise errors.not_found(
                    _subscribed_path(request.room_sid, subscriber, request.track_sid)
                )
            domain.check_subscriber(subscriber, track)
            present = await TrackRepository.room_participants(pipe, request.room_sid)
            if subscriber not in present:
                raise AtriumError(errors.PARTICIPANT_NOT_FOUND, "Participant not found", 400)
            if member is not None:
                outcome.append(TrackSubscriptionResult(
                    changed=False,
                    subscription=domain.subscription(subscriber, track, member_since(member)),
                ))
                return None
            now = utcnow()
            outcome.append(TrackSubscriptionResult(
                changed=True, subscription=domain.subscription(subscriber, track, now)
            ))

            def subscribe(p: Pipeline) -> None:
                TrackRepository.write_subscribed(p, subscriber, request.track_sid, now)

            return outbox.Change(write=subscribe)

        watch = [
            track_key(request.track_sid),
            subscribed_key(subscriber),
            room_participants_key(request.room_sid),
        ]
        await outbox.commit(self.tracks.redis, watch, decide)
        return outcome[-1]

    # SubscribeRules -----------------------------------------------------------------------------
    async def get_rules(self, request: FetchSubscribeRulesRequest) -> SubscribeRules:
        stored = await TrackRepository.rules(self.tracks.redis, request.participant_sid)
        if stored is None or stored.account_sid != request.account_sid:
            return domain.default_rules(request.account_sid, request.room_sid,
                                        request.participant_sid)
        return stored

    async def set_rules(self, request: SetSubscribeRulesRequest) -> SetSubscribeRulesResult:
        """Validate and store the rules (53215 changes nothing), then tell the media workers
        the participant's resulting subscriptions."""
        rules = domain.parse_rules(request.rules)
        subscriber = request.participant_sid
        outcome: list[SetSubscribeRulesResult] = []

        async def decide(pipe: Pipeline) -> outbox.Change:
            outcome.clear()
            if await TrackRepository.has_left(pipe, subscriber):
                raise errors.not_found(
                    f"/Rooms/{request.room_sid}/Participants/{subscriber}/SubscribeRules"
                )
            current = await TrackRepository.rules(pipe, subscriber)
            if current is None or current.account_sid != request.account_sid:
                current = domain.default_rules(request.account_sid, request.room_sid, subscriber)
            changed = domain.set_rules(current, rules, utcnow())
            published = await TrackRepository.load_many(
                pipe, await TrackRepository.room_tracks(pipe, request.room_sid)
            )
            published = [t for t in published if t.account_sid == request.account_sid]
            published.sort(key=lambda t: (t.date_created, t.sid))
            identities = await TrackRepository.identities(
                pipe, {t.participant_sid for t in published}
            )
            desired = domain.tracks_for(subscriber, published, rules, identities)
            outcome.append(SetSubscribeRulesResult(
                rules=changed, desired=[t.sid for t in desired],
                considered=[t.sid for t in published],
            ))

            def write(p: Pipeline) -> None:
                TrackRepository.write_rules(p, changed)

            return outbox.Change(write=write)

        watch = [rules_key(subscriber), room_tracks_key(request.room_sid), left_key(subscriber)]
        await outbox.commit(self.tracks.redis, watch, decide)
        result = outcome[-1]
        if self.notify is not None:
            await self.notify(SubscriptionsChanged(
                account_sid=request.account_sid, room_sid=request.room_sid,
                subscriber_sid=subscriber, rules_version=result.rules.version,
                desired=result.desired, considered=result.considered,
            ))
        return result

    # Queries ------------------------------------------------------------------------------------
    async def fetch_published(self, request: FetchPublishedTrackRequest) -> TrackInfo:
        key = request.sid_or_name
        sid: str | None = key
        if not sids.is_sid(key, sids.TRACK):
            sid = await self.tracks.sid_by_name(request.participant_sid, key)
        track = await self.tracks.get(sid) if sid else None
        if track is None or not self._owned(track, request.account_sid, request.room_sid,
                                             request.participant_sid):
            raise errors.not_found(_published_path(request.room_sid, request.participant_sid, key))
        return track

    async def list_published(self, request: ListPublishedTracksRequest) -> PublishedTrackPage:
        try:
            items, next_cursor, prev_cursor = await self.tracks.published_page(
                request.participant_sid,
                created_on_or_after=request.created_on_or_after,
                created_before=request.created_before,
                page_size=request.page_size,
                cursor=request.cursor,
            )
        except ValueError as exc:
            raise AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400) from exc
        items = [
            t for t in items
            if self._owned(t, request.account_sid, request.room_sid, request.participant_sid)
        ]
        return PublishedTrackPage(items=items, next_cursor=next_cursor,
                                  previous_cursor=prev_cursor)

    async def fetch_subscribed(self, request: FetchSubscribedTrackRequest) -> SubscribedTrackInfo:
        found = await self._subscribed(request.participant_sid, request.sid)
        if found is None or found.account_sid != request.account_sid or (
            found.room_sid != request.room_sid
        ):
            raise errors.not_found(
                _subscribed_path(request.room_sid, request.participant_sid, request.sid)
            )
        return found

    async def list_subscribed(self, request: ListSubscribedTracksRequest) -> SubscribedTrackPage:
        try:
            track_sids, next_cursor, prev_cursor = await self.tracks.subscribed_page(
                request.participant_sid,
                created_on_or_after=request.created_on_or_after,
                created_before=request.created_before,
                page_size=request.page_size,
                cursor=request.cursor,
            )
        except ValueError as exc:
            raise AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400) from exc
        found = [await self._subscribed(request.participant_sid, sid) for sid in track_sids]
        items = [
            s for s in found
            if s is not None
            and s.account_sid == request.account_sid
            and s.room_sid == request.room_sid
        ]
        return SubscribedTrackPage(items=items, next_cursor=next_cursor,
                                   previous_cursor=prev_cursor)

    async def _subscribed(self, subscriber_sid: str, track_sid: str) -> SubscribedTrackInfo | None:
        if not sids.is_sid(track_sid, sids.TRACK):
            return None
        since = await self.tracks.subscribed_since(subscriber_sid, track_sid)
        track = await self.tracks.get(track_sid) if since is not None else None
        if since is None or track is None:
            return None
        return domain.subscription(subscriber_sid, track, since)

    @staticmethod
    def _owned(track: TrackInfo, account_sid: str, room_sid: str, participant_sid: str) -> bool:
        return (
            track.account_sid == account_sid
            and track.room_sid == room_sid
            and track.participant_sid == participant_sid
        )

