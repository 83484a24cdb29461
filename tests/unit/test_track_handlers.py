"""The track service's NATS handlers, wired by bootstrap() on fakes, under FastStream's
TestNatsBroker, called the way the gateway and the media worker call them (``rpc.call``): every
subject answers, request -> reply body, Twilio codes in error replies, and the subscriptions-changed
broadcast through the real NATS publisher."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from pydantic import BaseModel

from atrium_shared import errors, subjects
from atrium_shared.errors import AtriumError
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.rpc import call
from atrium_shared.settings import Settings
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
    TrackToPublish,
    UnpublishTracksRequest,
    UnpublishTracksResult,
)
from atrium_track.bootstrap import bootstrap
from tests.support.fakes.track import TrackFakes

ACCOUNT = "AC" + "a" * 32
ROOM = "RM" + "1" * 32
ALICE = "PA" + "a" * 32
BOB = "PA" + "b" * 32
WHERE = {"account_sid": ACCOUNT, "room_sid": ROOM}


@pytest.fixture
def fakes() -> TrackFakes:
    return TrackFakes()


@pytest.fixture
def heard() -> list[SubscriptionsChanged]:
    return []


@pytest.fixture
async def broker(fakes: TrackFakes, heard: list[SubscriptionsChanged]) -> AsyncIterator[NatsBroker]:
    # The real NATS publisher (no fake passed): what a media worker would hear is heard here.
    service = bootstrap(
        Settings(),
        broker=NatsBroker(),
        uow=fakes.store.uow,
        queries=fakes.store.queries,
        clock=fakes.clock,
    )

    @service.broker.subscriber(subjects.MEDIA_SUBSCRIPTIONS)
    async def media_worker(change: SubscriptionsChanged) -> None:
        heard.append(change)

    async with TestNatsBroker(service.broker) as broker:
        yield broker


async def failure(broker: NatsBroker, subject: str, request: BaseModel) -> AtriumError:
    """The error reply, as the callers' ``rpc.call`` raises it."""
    with pytest.raises(AtriumError) as caught:
        await call(broker, subject, request, BaseModel)
    return caught.value


def alice(fakes: TrackFakes) -> ParticipantInfo:
    at = fakes.clock.now()
    return ParticipantInfo(
        sid=ALICE, identity="alice", date_created=at, date_updated=at, start_time=at, **WHERE
    )


async def publish_mic(broker: NatsBroker, fakes: TrackFakes) -> TrackInfo:
    request = PublishTracksRequest(
        participant=alice(fakes),
        tracks=[TrackToPublish(client_id="a1", name="mic", kind="audio")],
        **WHERE,
    )
    reply = await call(broker, subjects.TRACK_PUBLISH, request, PublishTracksResult)
    [outcome] = reply.tracks
    assert outcome.track is not None and outcome.added
    return outcome.track


async def test_every_track_subject_answers_with_its_result(
    broker: NatsBroker, fakes: TrackFakes, heard: list[SubscriptionsChanged]
) -> None:
    join = JoinTracksRequest(participant_sid=BOB, **WHERE)
    assert await call(broker, subjects.TRACK_JOIN, join, JoinTracksResult) == JoinTracksResult(
        tracks=[]
    )
    mic = await publish_mic(broker, fakes)
    rules = '[{"type": "include", "kind": "audio"}]'
    answers: list[tuple[str, BaseModel, type[BaseModel]]] = [
        (
            subjects.TRACK_SUBSCRIPTION,
            TrackSubscriptionRequest(
                subscriber_sid=BOB, track_sid=mic.sid, subscribed=True, **WHERE
            ),
            TrackSubscriptionResult,
        ),
        (
            subjects.TRACK_SET_ENABLED,
            SetTrackEnabledRequest(account_sid=ACCOUNT, track_sid=mic.sid, enabled=False),
            TrackInfo,
        ),
        (
            subjects.TRACK_PUBLISHED_FETCH,
            FetchPublishedTrackRequest(participant_sid=ALICE, sid_or_name="mic", **WHERE),
            TrackInfo,
        ),
        (
            subjects.TRACK_PUBLISHED_LIST,
            ListPublishedTracksRequest(participant_sid=ALICE, **WHERE),
            PublishedTrackPage,
        ),
        (
            subjects.TRACK_SUBSCRIBED_FETCH,
            FetchSubscribedTrackRequest(participant_sid=BOB, sid=mic.sid, **WHERE),
            SubscribedTrackInfo,
        ),
        (
            subjects.TRACK_SUBSCRIBED_LIST,
            ListSubscribedTracksRequest(participant_sid=BOB, **WHERE),
            SubscribedTrackPage,
        ),
        (
            subjects.TRACK_RULES_SET,
            SetSubscribeRulesRequest(participant_sid=BOB, rules=rules, **WHERE),
            SetSubscribeRulesResult,
        ),
        (
            subjects.TRACK_RULES_GET,
            FetchSubscribeRulesRequest(participant_sid=BOB, **WHERE),
            SubscribeRules,
        ),
        (
            subjects.TRACK_UNPUBLISH,
            UnpublishTracksRequest(participant_sid=ALICE, client_ids=["a1"], **WHERE),
            UnpublishTracksResult,
        ),
        (subjects.TRACK_LEAVE, LeaveTracksRequest(participant_sid=BOB, **WHERE), LeaveTracksResult),
    ]

    replies = {
        subject: await call(broker, subject, request, kind) for subject, request, kind in answers
    }

    disabled = replies[subjects.TRACK_SET_ENABLED]
    assert isinstance(disabled, TrackInfo) and not disabled.enabled
    assert replies[subjects.TRACK_PUBLISHED_FETCH] == disabled
    assert replies[subjects.TRACK_PUBLISHED_LIST] == PublishedTrackPage(items=[disabled])
    subscription = replies[subjects.TRACK_SUBSCRIBED_FETCH]
    assert isinstance(subscription, SubscribedTrackInfo)
    assert (subscription.sid, subscription.participant_sid) == (mic.sid, BOB)
    assert replies[subjects.TRACK_SUBSCRIBED_LIST] == SubscribedTrackPage(items=[subscription])
    stored = replies[subjects.TRACK_RULES_SET]
    assert isinstance(stored, SetSubscribeRulesResult) and stored.desired == [mic.sid]
    assert replies[subjects.TRACK_RULES_GET] == stored.rules
    assert replies[subjects.TRACK_UNPUBLISH] == UnpublishTracksResult(removed=[disabled])
    assert heard == [
        SubscriptionsChanged(
            subscriber_sid=BOB, rules_version=1, desired=[mic.sid], considered=[mic.sid], **WHERE
        )
    ]
    assert fakes.committed_types == [
        "track-added",
        "track-disabled",
        "track-removed",
    ]


async def test_set_priority_answers_with_the_track_and_broadcasts_what_depends_on_it(
    broker: NatsBroker, fakes: TrackFakes, heard: list[SubscriptionsChanged]
) -> None:
    await call(
        broker,
        subjects.TRACK_JOIN,
        JoinTracksRequest(participant_sid=BOB, **WHERE),
        JoinTracksResult,
    )
    rules = '[{"type": "include", "priority": "low"}]'
    await call(
        broker,
        subjects.TRACK_RULES_SET,
        SetSubscribeRulesRequest(participant_sid=BOB, rules=rules, **WHERE),
        SetSubscribeRulesResult,
    )
    mic = await publish_mic(broker, fakes)
    request = SetTrackPriorityRequest(account_sid=ACCOUNT, track_sid=mic.sid, priority="low")

    reply = await call(broker, subjects.TRACK_SET_PRIORITY, request, TrackInfo)

    assert reply.priority == "low"
    fetched = await call(
        broker,
        subjects.TRACK_PUBLISHED_FETCH,
        FetchPublishedTrackRequest(participant_sid=ALICE, sid_or_name="mic", **WHERE),
        TrackInfo,
    )
    assert fetched == reply
    assert [(c.subscriber_sid, c.rules_version, c.desired) for c in heard] == [
        (BOB, 1, []),
        (BOB, 2, [mic.sid]),
    ]
    unknown = request.model_copy(update={"track_sid": "MT" + "0" * 32})
    caught = await failure(broker, subjects.TRACK_SET_PRIORITY, unknown)
    assert (caught.code, caught.status) == (errors.NOT_FOUND, 404)


async def test_invalid_rules_reply_53215_and_nothing_is_broadcast(
    broker: NatsBroker, heard: list[SubscriptionsChanged]
) -> None:
    request = SetSubscribeRulesRequest(participant_sid=BOB, rules="[]", **WHERE)

    body = await failure(broker, subjects.TRACK_RULES_SET, request)

    assert (body.code, body.status, body.message) == (
        errors.SUBSCRIBE_RULES_INVALID,
        400,
        "Invalid Subscribe Rule(s)",
    )
    assert heard == []


async def test_use_case_errors_reply_with_their_twilio_code(broker: NatsBroker) -> None:
    leave = LeaveTracksRequest(participant_sid=BOB, **WHERE)
    await call(broker, subjects.TRACK_LEAVE, leave, LeaveTracksResult)

    gone = await failure(
        broker, subjects.TRACK_JOIN, JoinTracksRequest(participant_sid=BOB, **WHERE)
    )
    missing = await failure(
        broker,
        subjects.TRACK_PUBLISHED_FETCH,
        FetchPublishedTrackRequest(participant_sid=ALICE, sid_or_name="mic", **WHERE),
    )

    assert (gone.code, gone.status) == (errors.PARTICIPANT_NOT_FOUND, 400)
    assert (missing.code, missing.status) == (errors.NOT_FOUND, 404)
