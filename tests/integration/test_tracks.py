"""Tracks on real NATS and Redis: publishing, presence, subscriptions, REST, event order.

Participants are admitted through ``participant.admit`` and tracks published through
``track.publish``, as the media worker does; REST is read with the official twilio package.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from faststream.nats import NatsBroker
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from atrium_shared import subjects
from atrium_shared.errors import AtriumError
from atrium_shared.events import (
    DomainEvent,
    ParticipantDisconnected,
    RoomEnded,
    TrackAdded,
    TrackDisabled,
    TrackEnabled,
    TrackRemoved,
)
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.rpc import call
from atrium_shared.settings import Settings
from atrium_shared.track_api import (
    LeaveTracksRequest,
    LeaveTracksResult,
    PublishTracksRequest,
    PublishTracksResult,
    SetTrackEnabledRequest,
    UnpublishTracksRequest,
    UnpublishTracksResult,
)
from tests.support.rpc import admit, join_tracks, publish, room_events, subscription
from tests.support.stack import Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

# Twilio's fields of the two track resources, in Twilio's order.
PUBLISHED_TRACK_FIELDS = (
    "sid participant_sid room_sid name date_created date_updated enabled kind url".split()
)
SUBSCRIBED_TRACK_FIELDS = (
    "sid participant_sid publisher_sid room_sid name date_created date_updated enabled kind url"
).split()


@pytest.fixture
def client(stack: Stack, tenant: Tenant) -> Client:
    return stack.rest(tenant)


async def join(broker: NatsBroker, who: ParticipantInfo) -> list[TrackInfo]:
    return (await join_tracks(broker, who)).tracks


async def test_published_tracks_over_rest(
    client: Client, broker: NatsBroker, tenant: Tenant, stack: Stack
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create(unique_name="studio"))
    alice = await admit(broker, room, "alice")
    bob = await admit(broker, room, "bob")
    assert await join(broker, bob) == []

    result = await publish(broker, alice, ("a1", "mic", "audio"), ("v1", "camera", "video"))
    mic, cam = result.tracks
    assert mic.track is not None and cam.track is not None and mic.added and cam.added
    assert mic.track.sid.startswith("MT") and len(mic.track.sid) == 34
    assert mic.subscribers == [bob.sid] and cam.subscribers == [bob.sid]
    # Someone joining now is told to subscribe to both.
    carol = await admit(broker, room, "carol")
    assert {t.sid for t in await join(broker, carol)} == {mic.track.sid, cam.track.sid}

    published = client.video.v1.rooms("studio").participants("alice").published_tracks
    listed = await asyncio.to_thread(lambda: published.list())
    assert {t.sid for t in listed} == {mic.track.sid, cam.track.sid}
    by_sid = await asyncio.to_thread(lambda: published(mic.track.sid).fetch())  # type: ignore[union-attr]
    assert (by_sid.name, by_sid.kind, by_sid.enabled) == ("mic", "audio", True)
    assert (by_sid.participant_sid, by_sid.room_sid) == (alice.sid, room.sid)
    # REST shows the time the track was published, in whole seconds.
    assert by_sid.date_created == mic.track.date_created.replace(microsecond=0)
    by_name = await asyncio.to_thread(lambda: published("camera").fetch())
    assert by_name.sid == cam.track.sid and by_name.kind == "video"
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(lambda: published("nothing").fetch())
    assert (caught.value.code, caught.value.status) == (20404, 404)
    # A track name belongs to one participant.
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(
            lambda: (
                client.video.v1.rooms(room.sid)
                .participants(bob.sid)
                .published_tracks("mic")
                .fetch()
            )
        )
    assert caught.value.code == 20404

    # Exactly Twilio's fields, with absolute URLs.
    auth = (tenant.account.sid, tenant.auth_token)
    async with httpx.AsyncClient(base_url=stack.base_url, auth=auth) as http:
        base = f"/v1/Rooms/{room.sid}/Participants/{alice.sid}/PublishedTracks"
        body = (await http.get(base)).json()
        assert body["meta"]["key"] == "published_tracks"
        assert body["meta"]["url"].startswith(f"{stack.base_url}{base}?PageSize=50")
        one = (await http.get(f"{base}/{mic.track.sid}")).json()
        assert list(one) == PUBLISHED_TRACK_FIELDS
        assert one["url"] == f"{stack.base_url}{base}/{mic.track.sid}"
        assert one["date_created"].endswith("Z") and "." not in one["date_created"]
        paged = (await http.get(base, params={"PageSize": "1"})).json()
        assert len(paged["published_tracks"]) == 1 and paged["meta"]["next_page_url"]
        rest = (await http.get(paged["meta"]["next_page_url"])).json()
        assert {paged["published_tracks"][0]["sid"], rest["published_tracks"][0]["sid"]} == {
            mic.track.sid,
            cam.track.sid,
        }
        missing = await http.get(f"/v1/Rooms/{room.sid}/Participants/nobody/PublishedTracks")
        assert missing.status_code == 404 and missing.json()["code"] == 20404


async def test_republish_is_idempotent_and_names_are_unique(
    client: Client, broker: NatsBroker, settings: Settings
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create())
    alice = await admit(broker, room, "alice")
    first = await publish(broker, alice, ("a1", "mic", "audio"))
    again = await publish(broker, alice, ("a1", "mic", "audio"), ("d1", "chat", "data"))
    assert again.tracks[0].track is not None and first.tracks[0].track is not None
    assert again.tracks[0].track.sid == first.tracks[0].track.sid
    assert not again.tracks[0].added and again.tracks[1].added

    refused = await publish(
        broker,
        alice,
        ("a2", "mic", "audio"),
        ("x1", "screen", "screen"),
        ("x2", "", "video"),
        ("x3", "n" * 129, "video"),
    )
    codes = [o.error.code if o.error else None for o in refused.tracks]
    assert codes == [53304, 53300, 53301, 53302]
    assert all(o.track is None for o in refused.tracks)
    assert refused.tracks[0].error is not None
    assert refused.tracks[0].error.message == "Track name is duplicated"
    # Two new tracks with one name in one request: the second is refused.
    both = await publish(broker, alice, ("v1", "cam", "video"), ("v2", "cam", "video"))
    assert both.tracks[0].added and both.tracks[1].error is not None
    assert both.tracks[1].error.code == 53304

    async def added() -> list[TrackAdded]:
        found = [
            e for e in await room_events(settings.nats_url, room.sid) if isinstance(e, TrackAdded)
        ]
        return found if len(found) >= 3 else []

    events = await eventually(added, message="track-added events")
    assert [e.track.name for e in events] == ["mic", "chat", "cam"]
    listed = await asyncio.to_thread(
        lambda: client.video.v1.rooms(room.sid).participants(alice.sid).published_tracks.list()
    )
    assert sorted(t.name for t in listed) == ["cam", "chat", "mic"]

    # A publisher outside the room, or one that left, is refused.
    with pytest.raises(AtriumError) as caught:
        await call(
            broker,
            subjects.TRACK_PUBLISH,
            PublishTracksRequest(
                account_sid=alice.account_sid,
                room_sid="RM" + "0" * 32,
                participant=alice,
                tracks=[],
            ),
            PublishTracksResult,
        )
    assert caught.value.code == 53204


async def test_enable_disable_and_unpublish(
    client: Client, broker: NatsBroker, settings: Settings
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create())
    alice = await admit(broker, room, "alice")
    published = await publish(broker, alice, ("a1", "mic", "audio"), ("v1", "cam", "video"))
    mic = published.tracks[0].track
    assert mic is not None

    async def set_enabled(enabled: bool) -> TrackInfo:
        return await call(
            broker,
            subjects.TRACK_SET_ENABLED,
            SetTrackEnabledRequest(
                account_sid=alice.account_sid, track_sid=mic.sid, enabled=enabled
            ),
            TrackInfo,
        )

    assert not (await set_enabled(False)).enabled
    assert not (await set_enabled(False)).enabled
    fetched = await asyncio.to_thread(
        lambda: (
            client.video.v1.rooms(room.sid).participants(alice.sid).published_tracks("mic").fetch()
        )
    )
    assert fetched.enabled is False
    assert (await set_enabled(True)).enabled
    assert (await set_enabled(True)).enabled

    removed = await call(
        broker,
        subjects.TRACK_UNPUBLISH,
        UnpublishTracksRequest(
            account_sid=alice.account_sid,
            room_sid=room.sid,
            participant_sid=alice.sid,
            client_ids=["v1", "unknown"],
        ),
        UnpublishTracksResult,
    )
    assert [t.name for t in removed.removed] == ["cam"]
    listed = await asyncio.to_thread(
        lambda: client.video.v1.rooms(room.sid).participants(alice.sid).published_tracks.list()
    )
    assert [t.name for t in listed] == ["mic"]
    # The name is free again, and the client id publishes a new track.
    again = await publish(broker, alice, ("v1", "cam", "video"))
    assert again.tracks[0].added and again.tracks[0].track is not None
    assert again.tracks[0].track.sid != published.tracks[1].track.sid  # type: ignore[union-attr]

    async def settled() -> list[str]:
        kinds: list[str] = [
            e.event_type
            for e in await room_events(settings.nats_url, room.sid)
            if isinstance(e, TrackAdded | TrackRemoved | TrackEnabled | TrackDisabled)
        ]
        return kinds if len(kinds) >= 6 else []

    kinds = await eventually(settled, message="track events")
    assert kinds == [
        "track-added",
        "track-added",
        "track-disabled",
        "track-enabled",
        "track-removed",
        "track-added",
    ]
    with pytest.raises(AtriumError) as caught:
        await call(
            broker,
            subjects.TRACK_SET_ENABLED,
            SetTrackEnabledRequest(
                account_sid=alice.account_sid,
                track_sid=published.tracks[1].track.sid,  # type: ignore[union-attr]
                enabled=False,
            ),
            TrackInfo,
        )
    assert caught.value.code == 20404


async def test_subscriptions_are_recorded_and_listed(
    client: Client, broker: NatsBroker, tenant: Tenant, stack: Stack
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create())
    alice = await admit(broker, room, "alice")
    bob = await admit(broker, room, "bob")
    await join(broker, bob)
    published = await publish(broker, alice, ("a1", "mic", "audio"), ("v1", "cam", "video"))
    mic, cam = (o.track for o in published.tracks)
    assert mic is not None and cam is not None
    subscribed = client.video.v1.rooms(room.sid).participants("bob").subscribed_tracks
    assert await asyncio.to_thread(lambda: subscribed.list()) == []

    first = await subscription(broker, bob, mic.sid, True)
    assert first.changed and first.subscription is not None
    assert first.subscription.publisher_sid == alice.sid
    repeat = await subscription(broker, bob, mic.sid, True)
    assert not repeat.changed and repeat.subscription == first.subscription
    await subscription(broker, bob, cam.sid, True)

    listed = await asyncio.to_thread(lambda: subscribed.list())
    assert {t.sid for t in listed} == {mic.sid, cam.sid}
    one = await asyncio.to_thread(lambda: subscribed(mic.sid).fetch())
    assert (one.participant_sid, one.publisher_sid, one.room_sid) == (bob.sid, alice.sid, room.sid)
    assert (one.name, one.kind, one.enabled) == ("mic", "audio", True)
    # By SID only: names are not unique on the subscriber side.
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(lambda: subscribed("mic").fetch())
    assert (caught.value.code, caught.value.status) == (20404, 404)
    auth = (tenant.account.sid, tenant.auth_token)
    async with httpx.AsyncClient(base_url=stack.base_url, auth=auth) as http:
        base = f"/v1/Rooms/{room.sid}/Participants/{bob.sid}/SubscribedTracks"
        body = (await http.get(f"{base}/{mic.sid}")).json()
        assert list(body) == SUBSCRIBED_TRACK_FIELDS
        assert body["url"] == f"{stack.base_url}{base}/{mic.sid}"
        assert (await http.get(base)).json()["meta"]["key"] == "subscribed_tracks"

    # Disabling shows through; a publisher cannot subscribe to itself.
    await call(
        broker,
        subjects.TRACK_SET_ENABLED,
        SetTrackEnabledRequest(account_sid=alice.account_sid, track_sid=mic.sid, enabled=False),
        TrackInfo,
    )
    assert (await asyncio.to_thread(lambda: subscribed(mic.sid).fetch())).enabled is False
    with pytest.raises(AtriumError):
        await subscription(broker, alice, mic.sid, True)

    stopped = await subscription(broker, bob, cam.sid, False)
    assert stopped.changed
    assert not (await subscription(broker, bob, cam.sid, False)).changed
    assert [t.sid for t in await asyncio.to_thread(lambda: subscribed.list())] == [mic.sid]
    # Unpublishing ends the subscriptions to the track.
    await call(
        broker,
        subjects.TRACK_UNPUBLISH,
        UnpublishTracksRequest(
            account_sid=alice.account_sid,
            room_sid=room.sid,
            participant_sid=alice.sid,
            track_sids=[mic.sid],
        ),
        UnpublishTracksResult,
    )
    assert await asyncio.to_thread(lambda: subscribed.list()) == []
    with pytest.raises(AtriumError) as failed:
        await subscription(broker, bob, mic.sid, True)
    assert failed.value.code == 20404


async def test_kick_removes_tracks_before_participant_disconnected(
    client: Client, broker: NatsBroker, settings: Settings
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create())
    alice = await admit(broker, room, "alice")
    bob = await admit(broker, room, "bob")
    await join(broker, bob)
    published = await publish(broker, alice, ("a1", "mic", "audio"), ("v1", "cam", "video"))
    bobs = await publish(broker, bob, ("a9", "mic", "audio"))
    mic, cam = (o.track for o in published.tracks)
    bob_mic = bobs.tracks[0].track
    assert mic is not None and cam is not None and bob_mic is not None
    assert bobs.tracks[0].subscribers == [alice.sid]
    await subscription(broker, bob, mic.sid, True)
    await subscription(broker, alice, bob_mic.sid, True)

    participants = client.video.v1.rooms(room.sid).participants
    await asyncio.to_thread(lambda: participants(alice.sid).update(status="disconnected"))

    async def disconnected() -> list[DomainEvent]:
        events = await room_events(settings.nats_url, room.sid)
        done = any(isinstance(e, ParticipantDisconnected) for e in events)
        return events if done else []

    events = await eventually(disconnected, message="participant-disconnected")
    removed = [e for e in events if isinstance(e, TrackRemoved)]
    assert {e.track.sid for e in removed} == {mic.sid, cam.sid}
    assert all(e.participant.sid == alice.sid for e in removed)
    gone = next(i for i, e in enumerate(events) if isinstance(e, ParticipantDisconnected))
    assert all(events.index(e) < gone for e in removed)
    assert [e.sequence_number for e in events] == list(range(len(events)))

    assert await asyncio.to_thread(lambda: participants(alice.sid).published_tracks.list()) == []
    assert await asyncio.to_thread(lambda: participants(bob.sid).subscribed_tracks.list()) == []
    # Bob's track stays; the one who left no longer receives it, and cannot come back.
    bob_listed = await asyncio.to_thread(lambda: participants(bob.sid).published_tracks.list())
    assert [t.sid for t in bob_listed] == [bob_mic.sid]
    with pytest.raises(AtriumError) as caught:
        await subscription(broker, alice, bob_mic.sid, True)
    assert caught.value.code == 53204
    with pytest.raises(AtriumError) as caught:
        await publish(broker, alice, ("a2", "mic2", "audio"))
    assert caught.value.code == 53204
    # Leaving twice changes nothing.
    again = await call(
        broker,
        subjects.TRACK_LEAVE,
        LeaveTracksRequest(
            account_sid=alice.account_sid, room_sid=room.sid, participant_sid=alice.sid
        ),
        LeaveTracksResult,
    )
    assert again.removed == []


async def test_completing_a_room_orders_tracks_participants_room(
    client: Client, broker: NatsBroker, settings: Settings
) -> None:
    room = await asyncio.to_thread(lambda: client.video.v1.rooms.create())
    for name in ("a", "b"):
        who = await admit(broker, room, name)
        await publish(broker, who, (f"{name}-mic", "mic", "audio"), (f"{name}-cam", "cam", "video"))
    await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).update(status="completed"))

    async def settled() -> list[DomainEvent]:
        events = await room_events(settings.nats_url, room.sid)
        return events if any(isinstance(e, RoomEnded) for e in events) else []

    events = await eventually(settled, message="room-ended in the stream")
    kinds = [e.event_type for e in events]
    assert kinds.count("track-removed") == 4 and kinds.count("participant-disconnected") == 2
    first_disconnect = kinds.index("participant-disconnected")
    assert max(i for i, k in enumerate(kinds) if k == "track-removed") < first_disconnect
    assert kinds[-1] == "room-ended"
    assert [e.sequence_number for e in events] == list(range(len(events)))
