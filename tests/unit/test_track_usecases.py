"""The track use cases on in-memory fakes: every branch, the races a fake can express (a use case
committed between another's decision and its commit), and the order of the events they commit."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import Any

import pytest

from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.events import (
    DomainEvent,
    TrackAdded,
    TrackDisabled,
    TrackEnabled,
    TrackRemoved,
)
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo
from atrium_shared.track_api import (
    FetchPublishedTrackRequest,
    FetchSubscribedTrackRequest,
    FetchSubscribeRulesRequest,
    JoinTracksRequest,
    JoinTracksResult,
    LeaveTracksRequest,
    ListPublishedTracksRequest,
    ListSubscribedTracksRequest,
    PublishTracksRequest,
    PublishTracksResult,
    SetSubscribeRulesRequest,
    SetSubscribeRulesResult,
    SetTrackEnabledRequest,
    SetTrackPriorityRequest,
    SubscribeRules,
    SubscriptionsChanged,
    TrackSubscriptionRequest,
    TrackSubscriptionResult,
    TrackToPublish,
    UnpublishTracksRequest,
)
from atrium_track.usecases import TrackUseCases
from tests.support.fakes.track import TrackFakes, participant_key

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
ROOM = "RM" + "1" * 32
OTHER_ROOM = "RM" + "2" * 32
ALICE = "PA" + "a" * 32
BOB = "PA" + "b" * 32
CAROL = "PA" + "c" * 32
IDENTITIES = {ALICE: "alice", BOB: "bob", CAROL: "carol"}
UNKNOWN_TRACK = "MT" + "0" * 32


@pytest.fixture
def fakes() -> TrackFakes:
    return TrackFakes()


@pytest.fixture
def tracks(fakes: TrackFakes) -> TrackUseCases:
    return fakes.service().tracks


async def failure(call: Awaitable[Any]) -> AtriumError:
    with pytest.raises(AtriumError) as caught:
        await call
    return caught.value


def participant(
    sid: str, *, room_sid: str = ROOM, account_sid: str = ACCOUNT, status: str = "connected"
) -> ParticipantInfo:
    at = TrackFakes().clock.now()
    return ParticipantInfo(
        sid=sid,
        room_sid=room_sid,
        account_sid=account_sid,
        identity=IDENTITIES[sid],
        status=status,
        date_created=at,
        date_updated=at,
        start_time=at,
    )


TrackEvent = TrackAdded | TrackRemoved | TrackEnabled | TrackDisabled


def track_of(event: DomainEvent, kind: type[TrackEvent]) -> TrackInfo:
    """The track an event of that kind carries."""
    assert isinstance(event, kind), event
    return event.track


async def publish(
    tracks: TrackUseCases, who: str, *wanted: tuple[str, str, str], room_sid: str = ROOM
) -> PublishTracksResult:
    """``wanted``: (client id, name, kind) of each track."""
    return await tracks.publish(
        PublishTracksRequest(
            account_sid=ACCOUNT,
            room_sid=room_sid,
            participant=participant(who, room_sid=room_sid),
            tracks=[TrackToPublish(client_id=c, name=n, kind=k) for c, n, k in wanted],
        )
    )


async def publish_one(
    fakes: TrackFakes, tracks: TrackUseCases, who: str, name: str, kind: str = "audio"
) -> TrackInfo:
    """Publish one track one second after the previous one (so publish order is date order)."""
    fakes.clock.advance(1)
    [outcome] = (await publish(tracks, who, (f"{who}-{name}", name, kind))).tracks
    assert outcome.track is not None, outcome.error
    return outcome.track


async def join(tracks: TrackUseCases, who: str) -> JoinTracksResult:
    return await tracks.join(
        JoinTracksRequest(account_sid=ACCOUNT, room_sid=ROOM, participant_sid=who)
    )


async def leave(tracks: TrackUseCases, who: str) -> list[TrackInfo]:
    request = LeaveTracksRequest(account_sid=ACCOUNT, room_sid=ROOM, participant_sid=who)
    return (await tracks.leave(request)).removed


async def unpublish(
    tracks: TrackUseCases,
    who: str,
    *,
    client_ids: list[str] | None = None,
    track_sids: list[str] | None = None,
    room_sid: str = ROOM,
) -> list[TrackInfo]:
    return (
        await tracks.unpublish(
            UnpublishTracksRequest(
                account_sid=ACCOUNT,
                room_sid=room_sid,
                participant_sid=who,
                client_ids=client_ids or [],
                track_sids=track_sids or [],
            )
        )
    ).removed


async def subscribe(
    tracks: TrackUseCases,
    who: str,
    track_sid: str,
    subscribed: bool = True,
    *,
    account_sid: str = ACCOUNT,
    room_sid: str = ROOM,
) -> TrackSubscriptionResult:
    return await tracks.subscription(
        TrackSubscriptionRequest(
            account_sid=account_sid,
            room_sid=room_sid,
            subscriber_sid=who,
            track_sid=track_sid,
            subscribed=subscribed,
        )
    )


async def set_rules(
    tracks: TrackUseCases,
    who: str,
    rules: list[dict[str, Any]] | str,
    account_sid: str = ACCOUNT,
) -> SetSubscribeRulesResult:
    text = rules if isinstance(rules, str) else json.dumps(rules)
    return await tracks.set_rules(
        SetSubscribeRulesRequest(
            account_sid=account_sid,
            room_sid=ROOM,
            participant_sid=who,
            rules=text,
        )
    )


NO_ALICE_VIDEO: list[dict[str, Any]] = [
    {"type": "include", "all": True},
    {"type": "exclude", "publisher": "alice", "kind": "video"},
]


# publish -----------------------------------------------------------------------------------------
async def test_publish_stores_the_tracks_and_commits_their_events_in_request_order(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)

    result = await publish(tracks, ALICE, ("a1", "mic", "audio"), ("v1", "cam", "video"))

    mic, cam = (outcome.track for outcome in result.tracks)
    assert mic is not None and cam is not None
    assert [(o.client_id, o.added, o.subscribers, o.decided) for o in result.tracks] == [
        ("a1", True, [BOB], {BOB: 0}),
        ("v1", True, [BOB], {BOB: 0}),
    ]
    assert (mic.name, mic.kind, mic.participant_sid, mic.room_sid) == ("mic", "audio", ALICE, ROOM)
    assert mic.date_created == fakes.clock.now() and mic.enabled
    assert fakes.committed_types == ["track-added", "track-added"]
    assert [track_of(e, TrackAdded) for e in fakes.store.uow.committed] == [mic, cam]
    view = fakes.store.view
    assert await view.client_ids(ALICE) == {"a1": mic.sid, "v1": cam.sid}
    assert await view.track_names(ALICE) == {"mic", "cam"}
    assert {t.sid for t in await view.room_tracks(ROOM)} == {mic.sid, cam.sid}
    assert await view.participant(ALICE) == participant(ALICE)
    assert await view.room_participants(ROOM) == {ALICE, BOB}


async def test_republishing_a_client_id_is_the_same_track_and_no_event(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    [first] = (await publish(tracks, ALICE, ("a1", "mic", "audio"))).tracks
    [again] = (await publish(tracks, ALICE, ("a1", "mic", "audio"))).tracks

    assert again.track == first.track and not again.added and again.error is None
    assert fakes.committed_types == ["track-added"]


async def test_one_client_id_twice_in_a_request_is_one_track(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    first, second = (
        await publish(tracks, ALICE, ("a1", "mic", "audio"), ("a1", "mic", "audio"))
    ).tracks

    assert first.added and not second.added and first.track == second.track
    assert fakes.committed_types == ["track-added"]


@pytest.mark.parametrize(
    ("name", "kind", "code"),
    [
        ("screen", "screen", errors.TRACK_INVALID),
        ("", "audio", errors.TRACK_NAME_INVALID),
        ("x" * 129, "audio", errors.TRACK_NAME_TOO_LONG),
        ("mic", "video", errors.TRACK_NAME_DUPLICATED),
    ],
)
async def test_an_invalid_track_fails_alone_with_its_code(
    fakes: TrackFakes, tracks: TrackUseCases, name: str, kind: str, code: int
) -> None:
    good, bad = (await publish(tracks, ALICE, ("a1", "mic", "audio"), ("b1", name, kind))).tracks

    assert good.added and bad.track is None and not bad.added
    assert bad.error is not None and (bad.error.code, bad.error.status) == (code, 400)
    assert fakes.committed_types == ["track-added"]
    assert await fakes.store.view.client_ids(ALICE) == {"a1": good.track.sid}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "publisher",
    [
        participant(ALICE, account_sid=OTHER_ACCOUNT),
        participant(ALICE, room_sid=OTHER_ROOM),
        participant(ALICE, status="disconnected"),
    ],
    ids=["other-account", "other-room", "disconnected"],
)
async def test_a_publisher_not_connected_to_this_room_is_53204_and_commits_nothing(
    fakes: TrackFakes, tracks: TrackUseCases, publisher: ParticipantInfo
) -> None:
    request = PublishTracksRequest(
        account_sid=ACCOUNT,
        room_sid=ROOM,
        participant=publisher,
        tracks=[TrackToPublish(client_id="a1", name="mic", kind="audio")],
    )

    assert (await failure(tracks.publish(request))).code == errors.PARTICIPANT_NOT_FOUND
    assert fakes.store.uow.commits == 0 and fakes.store.uow.state == {}


async def test_subscribers_follow_each_ones_rules_and_name_the_version_that_decided(
    tracks: TrackUseCases,
) -> None:
    await join(tracks, BOB)
    await join(tracks, CAROL)
    await set_rules(tracks, BOB, NO_ALICE_VIDEO)

    mic, cam = (await publish(tracks, ALICE, ("a1", "mic", "audio"), ("v1", "cam", "video"))).tracks

    assert (mic.subscribers, mic.decided) == ([BOB, CAROL], {BOB: 1, CAROL: 0})
    assert (cam.subscribers, cam.decided) == ([CAROL], {BOB: 1, CAROL: 0})


async def test_a_rules_change_committed_during_a_publish_reruns_it_with_the_newest_rules(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    fakes.store.uow.interleave(lambda: set_rules(tracks, BOB, NO_ALICE_VIDEO))

    [cam] = (await publish(tracks, ALICE, ("v1", "cam", "video"))).tracks

    assert fakes.store.uow.conflicts == 1
    assert (cam.subscribers, cam.decided) == ([], {BOB: 1})
    # The rules change was decided before the track existed: the workers hear the publish's
    # decision (version 1) after the broadcast that did not consider the track.
    [change] = fakes.publisher.changes
    assert (change.rules_version, change.considered) == (1, [])


async def test_a_publish_committed_during_a_rules_change_reruns_it_so_it_considers_the_track(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    published: list[PublishTracksResult] = []

    async def alice_publishes() -> None:
        published.append(
            await publish(tracks, ALICE, ("a1", "mic", "audio"), ("v1", "cam", "video"))
        )

    fakes.store.uow.interleave(alice_publishes)

    result = await set_rules(tracks, BOB, NO_ALICE_VIDEO)

    mic, cam = (outcome.track for outcome in published[0].tracks)
    assert mic is not None and cam is not None
    assert fakes.store.uow.conflicts == 1
    # Published in one request, at one instant: considered in MT SID order.
    considered = sorted([mic.sid, cam.sid])
    assert (result.desired, result.considered) == ([mic.sid], considered)
    assert fakes.publisher.changes == [
        SubscriptionsChanged(
            account_sid=ACCOUNT,
            room_sid=ROOM,
            subscriber_sid=BOB,
            rules_version=1,
            desired=[mic.sid],
            considered=considered,
        )
    ]


async def test_a_join_committed_during_a_publish_makes_the_joiner_a_subscriber(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    fakes.store.uow.interleave(lambda: join(tracks, BOB))

    [mic] = (await publish(tracks, ALICE, ("a1", "mic", "audio"))).tracks

    assert fakes.store.uow.conflicts == 1 and mic.subscribers == [BOB]


async def test_a_publish_committed_during_a_join_gives_the_joiner_the_track(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    fakes.store.uow.interleave(lambda: publish(tracks, ALICE, ("a1", "mic", "audio")))

    joined = await join(tracks, BOB)

    assert fakes.store.uow.conflicts == 1
    assert [t.name for t in joined.tracks] == ["mic"]


# unpublish ---------------------------------------------------------------------------------------
async def test_unpublish_by_client_id_and_sid_ends_subscriptions_and_emits_in_publish_order(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    data = await publish_one(fakes, tracks, ALICE, "chat", "data")
    await subscribe(tracks, BOB, mic.sid)
    await subscribe(tracks, BOB, data.sid)

    removed = await unpublish(tracks, ALICE, client_ids=[f"{ALICE}-cam"], track_sids=[mic.sid])

    assert removed == [mic, cam]
    assert [track_of(e, TrackRemoved) for e in fakes.store.uow.committed[-2:]] == [mic, cam]
    view = fakes.store.view
    assert set(await view.subscriptions(BOB)) == {data.sid}
    assert await view.subscribers(mic.sid) == set()
    assert await view.client_ids(ALICE) == {f"{ALICE}-chat": data.sid}
    assert await view.track_names(ALICE) == {"chat"}
    assert [t.sid for t in await view.room_tracks(ROOM)] == [data.sid]


async def test_unpublishing_unknown_or_foreign_tracks_commits_nothing(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    bobs = await publish_one(fakes, tracks, BOB, "mic")
    alices = await publish_one(fakes, tracks, ALICE, "mic")
    commits = fakes.store.uow.commits

    assert await unpublish(tracks, ALICE, client_ids=["nope"], track_sids=[bobs.sid]) == []
    assert await unpublish(tracks, ALICE, track_sids=[alices.sid], room_sid=OTHER_ROOM) == []
    assert fakes.store.uow.commits == commits
    assert await fakes.store.view.track(alices.sid) == alices


async def test_a_track_whose_publisher_has_no_record_is_removed_without_an_event(
    fakes: TrackFakes, tracks: TrackUseCases, caplog: pytest.LogCaptureFixture
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    del fakes.store.uow.state[participant_key(ALICE)]

    with caplog.at_level(logging.WARNING, "atrium.track"):
        assert await unpublish(tracks, ALICE, track_sids=[mic.sid]) == [mic]

    assert fakes.committed_types == ["track-added"]
    assert await fakes.store.view.track(mic.sid) is None
    assert "has tracks but no record" in caplog.text


# set_enabled -------------------------------------------------------------------------------------
async def test_set_enabled_changes_the_track_with_an_event_only_on_change(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    fakes.clock.advance(5)

    def request(enabled: bool) -> SetTrackEnabledRequest:
        return SetTrackEnabledRequest(account_sid=ACCOUNT, track_sid=mic.sid, enabled=enabled)

    disabled = await tracks.set_enabled(request(False))
    again = await tracks.set_enabled(request(False))
    enabled = await tracks.set_enabled(request(True))

    assert not disabled.enabled and disabled.date_updated == fakes.clock.now()
    assert again == disabled and enabled.enabled
    _, off, on = fakes.store.uow.committed
    assert (track_of(off, TrackDisabled), track_of(on, TrackEnabled)) == (disabled, enabled)
    assert await fakes.store.view.track(mic.sid) == enabled


@pytest.mark.parametrize("account_sid", [ACCOUNT, OTHER_ACCOUNT])
async def test_set_enabled_of_an_unknown_or_foreign_track_is_20404(
    fakes: TrackFakes, tracks: TrackUseCases, account_sid: str
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    sid = UNKNOWN_TRACK if account_sid == ACCOUNT else mic.sid

    caught = await failure(
        tracks.set_enabled(
            SetTrackEnabledRequest(account_sid=account_sid, track_sid=sid, enabled=False)
        )
    )

    assert (caught.code, caught.status) == (errors.NOT_FOUND, 404)
    assert f"/Tracks/{sid}" in caught.message
    assert fakes.committed_types == ["track-added"]


async def test_set_enabled_without_a_publisher_record_changes_nothing(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    del fakes.store.uow.state[participant_key(ALICE)]

    request = SetTrackEnabledRequest(account_sid=ACCOUNT, track_sid=mic.sid, enabled=False)
    assert await tracks.set_enabled(request) == mic
    assert fakes.committed_types == ["track-added"]


# set_priority ------------------------------------------------------------------------------------
HIGH_VIDEO_ONLY: list[dict[str, Any]] = [{"type": "include", "kind": "video", "priority": "high"}]


async def set_priority(
    tracks: TrackUseCases, track_sid: str, priority: Any, account_sid: str = ACCOUNT
) -> TrackInfo:
    return await tracks.set_priority(
        SetTrackPriorityRequest(account_sid=account_sid, track_sid=track_sid, priority=priority)
    )


async def test_a_track_is_published_with_its_priority_and_rules_see_it(
    tracks: TrackUseCases,
) -> None:
    await join(tracks, BOB)
    await join(tracks, CAROL)
    await set_rules(tracks, BOB, HIGH_VIDEO_ONLY)

    high, plain = (
        await tracks.publish(
            PublishTracksRequest(
                account_sid=ACCOUNT,
                room_sid=ROOM,
                participant=participant(ALICE),
                tracks=[
                    TrackToPublish(client_id="v1", name="cam", kind="video", priority="high"),
                    TrackToPublish(client_id="v2", name="screen", kind="video"),
                ],
            )
        )
    ).tracks

    assert high.track is not None and plain.track is not None
    assert (high.track.priority, plain.track.priority) == ("high", "standard")
    assert (high.subscribers, plain.subscribers) == ([BOB, CAROL], [CAROL])
    assert [t.name for t in (await join(tracks, BOB)).tracks] == ["cam"]


async def test_a_priority_change_is_stored_and_redecides_the_rules_that_filter_on_it(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    await join(tracks, CAROL)
    await set_rules(tracks, BOB, HIGH_VIDEO_ONLY)
    await set_rules(tracks, CAROL, NO_ALICE_VIDEO)  # no priority filter: not decided again
    bobs_rules = await fakes.store.view.rules(BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    fakes.clock.advance(5)
    fakes.publisher.changes.clear()

    high = await set_priority(tracks, cam.sid, "high")

    assert high.priority == "high" and high.date_updated == fakes.clock.now()
    assert high.model_dump(exclude={"priority", "date_updated"}) == cam.model_dump(
        exclude={"priority", "date_updated"}
    )
    assert await fakes.store.view.track(cam.sid) == high
    # Bob's rules decide again under their next version, every track of the room considered:
    # that supersedes whatever was decided with the old priority.
    assert fakes.publisher.changes == [
        SubscriptionsChanged(
            account_sid=ACCOUNT,
            room_sid=ROOM,
            subscriber_sid=BOB,
            rules_version=2,
            desired=[cam.sid],
            considered=[mic.sid, cam.sid],
        )
    ]
    stored = await fakes.store.view.rules(BOB)
    assert stored is not None and bobs_rules is not None and stored.version == 2
    # What REST shows of Bob's rules does not change; Carol's are untouched.
    assert stored.model_dump(exclude={"version"}) == bobs_rules.model_dump(exclude={"version"})
    carols = await fakes.store.view.rules(CAROL)
    assert carols is not None and carols.version == 1
    assert [t.name for t in (await join(tracks, BOB)).tracks] == ["cam"]

    await set_priority(tracks, cam.sid, "low")
    assert [(c.rules_version, c.desired) for c in fakes.publisher.changes[1:]] == [(3, [])]
    assert (await join(tracks, BOB)).tracks == []
    # No Twilio status callback for a priority: no event.
    assert fakes.committed_types == ["track-added", "track-added"]


async def test_the_same_priority_again_or_no_rule_on_priority_broadcasts_nothing(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    await set_rules(tracks, BOB, HIGH_VIDEO_ONLY)
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    before = dict(fakes.store.uow.state)
    commits, broadcasts = fakes.store.uow.commits, len(fakes.publisher.changes)

    assert await set_priority(tracks, cam.sid, "standard") == cam
    assert fakes.store.uow.state == before and fakes.store.uow.commits == commits

    await set_rules(tracks, BOB, NO_ALICE_VIDEO)
    broadcasts += 1
    low = await set_priority(tracks, cam.sid, "low")
    assert low.priority == "low" and len(fakes.publisher.changes) == broadcasts


@pytest.mark.parametrize("account_sid", [ACCOUNT, OTHER_ACCOUNT])
async def test_set_priority_of_an_unknown_or_foreign_track_is_20404(
    fakes: TrackFakes, tracks: TrackUseCases, account_sid: str
) -> None:
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    sid = UNKNOWN_TRACK if account_sid == ACCOUNT else cam.sid

    caught = await failure(set_priority(tracks, sid, "high", account_sid))

    assert (caught.code, caught.status) == (errors.NOT_FOUND, 404)
    assert await fakes.store.view.track(cam.sid) == cam


def test_a_priority_outside_low_standard_high_is_refused_by_the_request() -> None:
    with pytest.raises(ValueError):
        SetTrackPriorityRequest(account_sid=ACCOUNT, track_sid=UNKNOWN_TRACK, priority="urgent")
    with pytest.raises(ValueError):
        TrackToPublish(client_id="v1", name="cam", kind="video", priority="urgent")


async def test_a_rules_change_committed_during_a_priority_change_reruns_it(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    fakes.store.uow.interleave(lambda: set_rules(tracks, BOB, HIGH_VIDEO_ONLY))

    await set_priority(tracks, cam.sid, "high")

    assert fakes.store.uow.conflicts == 1
    # The rules change was decided with the old priority (version 1, no camera); the priority
    # change, rerun with Bob's new rules, decides under version 2, which the workers keep.
    assert [(c.rules_version, c.desired) for c in fakes.publisher.changes] == [
        (1, []),
        (2, [cam.sid]),
    ]


async def test_a_priority_change_committed_during_a_rules_change_reruns_that(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    fakes.store.uow.interleave(lambda: set_priority(tracks, cam.sid, "high"))

    result = await set_rules(tracks, BOB, HIGH_VIDEO_ONLY)

    # Bob had no priority filter when the priority changed; the rules change, rerun, sees the
    # new priority.
    assert fakes.store.uow.conflicts == 1
    assert (result.rules.version, result.desired) == (1, [cam.sid])
    assert [c.rules_version for c in fakes.publisher.changes] == [1]


async def test_a_join_committed_during_a_priority_change_is_decided_for_too(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await set_rules(tracks, BOB, HIGH_VIDEO_ONLY)
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    fakes.store.uow.interleave(lambda: join(tracks, BOB))

    await set_priority(tracks, cam.sid, "high")

    assert fakes.store.uow.conflicts == 1
    assert [(c.subscriber_sid, c.desired) for c in fakes.publisher.changes[-1:]] == [
        (BOB, [cam.sid])
    ]


# join and leave ----------------------------------------------------------------------------------
async def test_join_gives_the_others_tracks_its_rules_select_and_what_was_considered(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    own = await publish_one(fakes, tracks, BOB, "bobs-mic")
    await set_rules(tracks, BOB, NO_ALICE_VIDEO)

    joined = await join(tracks, BOB)

    assert joined == JoinTracksResult(
        tracks=[mic], considered=[mic.sid, cam.sid, own.sid], rules_version=1
    )
    assert BOB in await fakes.store.view.room_participants(ROOM)
    assert (await join(tracks, CAROL)).tracks == [mic, cam, own]


async def test_leave_removes_tracks_subscriptions_and_the_participant(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, ALICE)
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    bobs = await publish_one(fakes, tracks, BOB, "bobs-mic")
    await subscribe(tracks, BOB, mic.sid)
    await subscribe(tracks, ALICE, bobs.sid)
    await set_rules(tracks, ALICE, [{"type": "include", "kind": "audio"}])

    assert await leave(tracks, ALICE) == [mic, cam]

    # Committed before leave replies: the participant service disconnects only then, so these
    # precede participant-disconnected.
    assert [track_of(e, TrackRemoved) for e in fakes.store.uow.committed[-2:]] == [mic, cam]
    view = fakes.store.view
    assert await view.subscriptions(BOB) == {}
    assert await view.subscribers(bobs.sid) == set()
    assert await view.has_left(ALICE)
    assert await view.room_participants(ROOM) == {BOB}
    assert await view.participant(ALICE) is None and await view.rules(ALICE) is None
    assert await view.subscriptions(ALICE) == {} and await view.client_ids(ALICE) == {}
    assert [t.sid for t in await view.room_tracks(ROOM)] == [bobs.sid]


async def test_after_leaving_a_participant_cannot_come_back(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, ALICE)
    bobs = await publish_one(fakes, tracks, BOB, "mic")
    await leave(tracks, ALICE)
    events = len(fakes.store.uow.committed)

    assert (await failure(publish(tracks, ALICE, ("a1", "mic", "audio")))).code == (
        errors.PARTICIPANT_NOT_FOUND
    )
    assert (await failure(join(tracks, ALICE))).code == errors.PARTICIPANT_NOT_FOUND
    assert (await failure(subscribe(tracks, ALICE, bobs.sid))).code == (
        errors.PARTICIPANT_NOT_FOUND
    )
    gone = await failure(set_rules(tracks, ALICE, [{"type": "include", "all": True}]))
    assert (gone.code, gone.status) == (errors.NOT_FOUND, 404)
    assert f"/Participants/{ALICE}/SubscribeRules" in gone.message
    assert await leave(tracks, ALICE) == []
    assert len(fakes.store.uow.committed) == events and fakes.publisher.changes == []


# subscription ------------------------------------------------------------------------------------
async def test_a_subscription_is_recorded_once_from_its_start(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    started = fakes.clock.advance(2)

    first = await subscribe(tracks, BOB, mic.sid)
    fakes.clock.advance(3)
    again = await subscribe(tracks, BOB, mic.sid)

    assert first.changed and not again.changed
    assert first.subscription == again.subscription
    assert first.subscription is not None
    assert (first.subscription.participant_sid, first.subscription.publisher_sid) == (BOB, ALICE)
    assert first.subscription.date_created == started
    assert await fakes.store.view.subscribers(mic.sid) == {BOB}


async def test_unsubscribing_ends_only_an_existing_subscription(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    await subscribe(tracks, BOB, mic.sid)

    assert (await subscribe(tracks, BOB, mic.sid, subscribed=False)).changed
    assert not (await subscribe(tracks, BOB, mic.sid, subscribed=False)).changed
    assert await fakes.store.view.subscriptions(BOB) == {}
    assert await fakes.store.view.subscribers(mic.sid) == set()


@pytest.mark.parametrize(
    ("account_sid", "room_sid", "known"),
    [(ACCOUNT, ROOM, False), (ACCOUNT, OTHER_ROOM, True), (OTHER_ACCOUNT, ROOM, True)],
    ids=["unknown", "other-room", "other-account"],
)
async def test_subscribing_to_an_unknown_or_foreign_track_is_20404(
    fakes: TrackFakes, tracks: TrackUseCases, account_sid: str, room_sid: str, known: bool
) -> None:
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    sid = mic.sid if known else UNKNOWN_TRACK

    caught = await failure(subscribe(tracks, BOB, sid, account_sid=account_sid, room_sid=room_sid))

    assert (caught.code, caught.status) == (errors.NOT_FOUND, 404)
    assert f"/Participants/{BOB}/SubscribedTracks/{sid}" in caught.message


async def test_subscribing_to_ones_own_track_is_20001(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")

    assert (await failure(subscribe(tracks, ALICE, mic.sid))).code == errors.INVALID_PARAMETER


async def test_a_subscriber_not_in_the_room_is_53204(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")

    assert (await failure(subscribe(tracks, BOB, mic.sid))).code == errors.PARTICIPANT_NOT_FOUND
    assert await fakes.store.view.subscribers(mic.sid) == set()


async def test_an_unpublish_committed_during_a_subscription_makes_it_20404(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    fakes.store.uow.interleave(lambda: unpublish(tracks, ALICE, track_sids=[mic.sid]))

    assert (await failure(subscribe(tracks, BOB, mic.sid))).code == errors.NOT_FOUND
    assert fakes.store.uow.conflicts == 1
    assert await fakes.store.view.subscriptions(BOB) == {}


async def test_a_subscription_committed_during_an_unpublish_is_ended_by_it(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    fakes.store.uow.interleave(lambda: subscribe(tracks, BOB, mic.sid))

    assert await unpublish(tracks, ALICE, track_sids=[mic.sid]) == [mic]
    assert fakes.store.uow.conflicts == 1
    assert await fakes.store.view.subscriptions(BOB) == {}
    assert await fakes.store.view.subscribers(mic.sid) == set()


# SubscribeRules ----------------------------------------------------------------------------------
async def test_get_rules_is_the_default_until_set_in_this_account(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    def request(account_sid: str = ACCOUNT) -> FetchSubscribeRulesRequest:
        return FetchSubscribeRulesRequest(
            account_sid=account_sid, room_sid=ROOM, participant_sid=BOB
        )

    default = await tracks.get_rules(request())
    assert (default.version, default.date_created, default.date_updated) == (0, None, None)
    assert [r.model_dump(exclude_none=True) for r in default.rules] == [
        {"type": "include", "all": True}
    ]

    stored = (await set_rules(tracks, BOB, NO_ALICE_VIDEO)).rules
    assert await tracks.get_rules(request()) == stored
    assert (await tracks.get_rules(request(OTHER_ACCOUNT))).version == 0


async def test_set_rules_stores_the_next_version_and_broadcasts_the_subscriptions(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    first_at = fakes.clock.now()

    first = await set_rules(tracks, BOB, NO_ALICE_VIDEO)
    fakes.clock.advance(10)
    # In order, the last matching rule decides: alice's tracks are out but her mic is back in.
    second = await set_rules(
        tracks,
        BOB,
        [
            {"type": "include", "all": True},
            {"type": "exclude", "publisher": ALICE},
            {"type": "include", "track": "mic"},
        ],
    )

    assert (first.rules.version, first.desired, first.considered) == (
        1,
        [mic.sid],
        [mic.sid, cam.sid],
    )
    assert (second.rules.version, second.desired) == (2, [mic.sid])
    assert second.rules.date_created == first_at
    assert second.rules.date_updated == fakes.clock.now()
    assert await fakes.store.view.rules(BOB) == second.rules
    assert [
        (c.subscriber_sid, c.rules_version, c.desired, c.considered)
        for c in fakes.publisher.changes
    ] == [
        (BOB, 1, [mic.sid], [mic.sid, cam.sid]),
        (BOB, 2, [mic.sid], [mic.sid, cam.sid]),
    ]
    assert fakes.committed_types == ["track-added", "track-added"]  # rules are no room event


@pytest.mark.parametrize(
    "rules",
    [None, "", "not json", "[]", '[{"type": "include"}]', '[{"type": "maybe", "all": true}]'],
)
async def test_invalid_rules_are_53215_and_change_nothing(
    fakes: TrackFakes, tracks: TrackUseCases, rules: str | None
) -> None:
    await set_rules(tracks, BOB, NO_ALICE_VIDEO)
    before = dict(fakes.store.uow.state)

    caught = await failure(
        tracks.set_rules(
            SetSubscribeRulesRequest(
                account_sid=ACCOUNT,
                room_sid=ROOM,
                participant_sid=BOB,
                rules=rules,
            )
        )
    )

    assert (caught.code, caught.status) == (errors.SUBSCRIBE_RULES_INVALID, 400)
    assert fakes.store.uow.state == before and len(fakes.publisher.changes) == 1


async def test_rules_stored_under_another_account_start_again_from_the_default(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    foreign = SubscribeRules(
        account_sid=OTHER_ACCOUNT,
        room_sid=ROOM,
        participant_sid=BOB,
        rules=[],
        version=7,
        date_created=fakes.clock.now(),
    )
    fakes.store.view.save_rules(foreign)
    fakes.clock.advance(1)

    changed = (await set_rules(tracks, BOB, NO_ALICE_VIDEO)).rules

    assert (changed.account_sid, changed.version) == (ACCOUNT, 1)
    assert changed.date_created == fakes.clock.now()


# queries -----------------------------------------------------------------------------------------
async def test_fetch_published_by_sid_or_name_within_its_participant_and_room(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")

    def request(key: str, **fields: str) -> FetchPublishedTrackRequest:
        where = {"account_sid": ACCOUNT, "room_sid": ROOM, "participant_sid": ALICE, **fields}
        return FetchPublishedTrackRequest(sid_or_name=key, **where)

    assert await tracks.fetch_published(request(mic.sid)) == mic
    assert await tracks.fetch_published(request("mic")) == mic
    for wrong in (
        request("cam"),
        request(UNKNOWN_TRACK),
        request(mic.sid, participant_sid=BOB),
        request(mic.sid, room_sid=OTHER_ROOM),
        request(mic.sid, account_sid=OTHER_ACCOUNT),
    ):
        caught = await failure(tracks.fetch_published(wrong))
        assert caught.code == errors.NOT_FOUND
        path = f"/Participants/{wrong.participant_sid}/PublishedTracks/{wrong.sid_or_name}"
        assert caught.message.endswith(f"{path} was not found")


async def test_list_published_pages_newest_first_within_its_room(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    chat = await publish_one(fakes, tracks, ALICE, "chat", "data")

    def request(cursor: str | None = None, room_sid: str = ROOM) -> ListPublishedTracksRequest:
        return ListPublishedTracksRequest(
            account_sid=ACCOUNT,
            room_sid=room_sid,
            participant_sid=ALICE,
            page_size=2,
            cursor=cursor,
        )

    first = await tracks.list_published(request())
    assert first.items == [chat, cam] and first.previous_cursor is None
    second = await tracks.list_published(request(first.next_cursor))
    assert second.items == [mic] and second.next_cursor is None
    back = await tracks.list_published(request(second.previous_cursor))
    assert back.items == [chat, cam]
    assert (await tracks.list_published(request(room_sid=OTHER_ROOM))).items == []


async def test_fetch_and_list_subscribed_within_its_room(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    await join(tracks, BOB)
    mic = await publish_one(fakes, tracks, ALICE, "mic")
    cam = await publish_one(fakes, tracks, ALICE, "cam", "video")
    fakes.clock.advance(1)
    on_mic = (await subscribe(tracks, BOB, mic.sid)).subscription
    fakes.clock.advance(1)
    on_cam = (await subscribe(tracks, BOB, cam.sid)).subscription

    def fetch(sid: str, room_sid: str = ROOM) -> FetchSubscribedTrackRequest:
        return FetchSubscribedTrackRequest(
            account_sid=ACCOUNT, room_sid=room_sid, participant_sid=BOB, sid=sid
        )

    def listing(room_sid: str = ROOM) -> ListSubscribedTracksRequest:
        return ListSubscribedTracksRequest(
            account_sid=ACCOUNT, room_sid=room_sid, participant_sid=BOB
        )

    assert await tracks.fetch_subscribed(fetch(mic.sid)) == on_mic
    assert (await tracks.list_subscribed(listing())).items == [on_cam, on_mic]
    assert (await tracks.list_subscribed(listing(OTHER_ROOM))).items == []
    for wrong in (fetch("mic"), fetch(UNKNOWN_TRACK), fetch(mic.sid, OTHER_ROOM)):
        caught = await failure(tracks.fetch_subscribed(wrong))
        assert caught.code == errors.NOT_FOUND
        assert f"/Participants/{BOB}/SubscribedTracks/{wrong.sid}" in caught.message


async def test_a_page_token_that_was_not_issued_is_20001(tracks: TrackUseCases) -> None:
    where = {"account_sid": ACCOUNT, "room_sid": ROOM, "participant_sid": ALICE, "cursor": "bm9wZQ"}

    for listing in (
        tracks.list_published(ListPublishedTracksRequest(**where)),
        tracks.list_subscribed(ListSubscribedTracksRequest(**where)),
    ):
        caught = await failure(listing)
        assert (caught.code, caught.message) == (errors.INVALID_PARAMETER, "PageToken is invalid")


# The room's settings ---------------------------------------------------------------------------
def room_settings(**fields: Any) -> RoomInfo:
    at = TrackFakes().clock.now()
    return RoomInfo(
        sid=ROOM, account_sid=ACCOUNT, unique_name="r", date_created=at, date_updated=at, **fields
    )


async def publish_in(
    tracks: TrackUseCases, room: RoomInfo, who: str, *wanted: tuple[str, str, str, str | None]
) -> PublishTracksResult:
    """``wanted``: (client id, name, kind, codec) of each track, published under ``room``."""
    return await tracks.publish(
        PublishTracksRequest(
            account_sid=ACCOUNT,
            room_sid=ROOM,
            participant=participant(who),
            tracks=[
                TrackToPublish(client_id=c, name=n, kind=k, codec=codec)
                for c, n, k, codec in wanted
            ],
            room=room,
        )
    )


async def test_an_audio_only_room_refuses_video_with_53125(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    room = room_settings(audio_only=True, video_codecs=[])
    result = await publish_in(
        tracks, room, ALICE, ("m", "mic", "audio", None), ("c", "cam", "video", "VP8")
    )
    mic, cam = result.tracks
    assert mic.track is not None and mic.error is None
    assert cam.track is None and cam.error is not None
    assert (cam.error.code, cam.error.status) == (errors.TRACK_KIND_UNSUPPORTED, 400)
    assert fakes.committed_types == ["track-added"]  # nothing for the refused one


async def test_video_must_use_one_of_the_rooms_codecs(tracks: TrackUseCases) -> None:
    room = room_settings(video_codecs=["H264"])
    result = await publish_in(
        tracks,
        room,
        ALICE,
        ("a", "h264", "video", "H264"),
        ("b", "vp8", "video", "VP8"),
        ("c", "unknown-yet", "video", None),  # not negotiated yet: not refused for it
    )
    h264, vp8, unknown = result.tracks
    assert h264.track is not None and unknown.track is not None
    assert vp8.error is not None and vp8.error.code == errors.TRACK_KIND_UNSUPPORTED


async def test_the_rooms_published_track_limit_counts_every_participant(
    fakes: TrackFakes, tracks: TrackUseCases
) -> None:
    """max_concurrent_published_tracks is the whole room's (Twilio: "all participants
    combined"): the third track is 53203; an unpublished one frees its place."""
    room = room_settings(max_concurrent_published_tracks=2)
    first = await publish_in(tracks, room, ALICE, ("a1", "mic", "audio", None))
    assert first.tracks[0].track is not None
    both = await publish_in(
        tracks, room, BOB, ("b1", "mic", "audio", None), ("b2", "cam", "video", None)
    )
    ok, refused = both.tracks
    assert ok.track is not None
    assert refused.error is not None
    assert (refused.error.code, refused.error.status) == (errors.MAX_PUBLISHED_TRACKS_REACHED, 400)
    await tracks.unpublish(
        UnpublishTracksRequest(
            account_sid=ACCOUNT, room_sid=ROOM, participant_sid=ALICE, client_ids=["a1"]
        )
    )
    again = await publish_in(tracks, room, BOB, ("b2", "cam", "video", None))
    assert again.tracks[0].track is not None


async def test_no_limit_when_the_room_has_none(tracks: TrackUseCases) -> None:
    room = room_settings(max_concurrent_published_tracks=0)
    wanted = [(f"t{i}", f"track-{i}", "data", None) for i in range(5)]
    result = await publish_in(tracks, room, ALICE, *wanted)
    assert all(outcome.track is not None for outcome in result.tracks)
