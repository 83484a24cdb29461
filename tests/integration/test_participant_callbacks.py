"""Status callbacks for participant and track events, through the real services.

twilio-python creates and completes the room over REST; participants are admitted through
``participant.admit`` and tracks published through ``track.publish`` / ``track.set-enabled``, as
the media worker does. The callback service delivers to a local webhook that checks every
signature with twilio's own RequestValidator.
"""

from __future__ import annotations

import asyncio

import pytest
from faststream.nats import NatsBroker
from twilio.rest import Client

from atrium_shared import subjects
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.rpc import call
from atrium_shared.timefmt import utcnow
from atrium_shared.track_api import SetTrackEnabledRequest
from tests.support.rpc import admit, publish, published
from tests.support.stack import WITH_CALLBACKS, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually
from tests.support.webhook import Received, Webhook, in_milliseconds

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90), pytest.mark.stack(WITH_CALLBACKS)]


@pytest.fixture
def client(stack: Stack, tenant: Tenant) -> Client:
    return stack.rest(tenant)


def participant_params(who: ParticipantInfo, status: str = "connected") -> dict[str, str]:
    return {
        "ParticipantSid": who.sid,
        "ParticipantStatus": status,
        "ParticipantIdentity": who.identity,
    }


def track_params(who: ParticipantInfo, track: TrackInfo) -> dict[str, str]:
    return {
        **participant_params(who),
        "TrackSid": track.sid,
        "TrackKind": track.kind,
        "TrackName": track.name,
    }


async def test_participant_and_track_callbacks_in_order(
    client: Client, broker: NatsBroker, tenant: Tenant, webhook: Webhook
) -> None:
    started = utcnow()
    room = await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(
            unique_name="town hall", status_callback=webhook.url("/video/events?app=1")
        )
    )
    alice = await admit(broker, room, "alice")
    bob = await admit(broker, room, "bob smith")
    mic, cam = published(
        await publish(broker, alice, ("a1", "mic", "audio"), ("v1", "cam", "video"))
    )
    (chat,) = published(await publish(broker, bob, ("d1", "chat", "data")))
    disabled = await call(
        broker,
        subjects.TRACK_SET_ENABLED,
        SetTrackEnabledRequest(account_sid=alice.account_sid, track_sid=mic.sid, enabled=False),
        TrackInfo,
    )
    assert not disabled.enabled
    await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).update(status="completed"))

    async def room_ended() -> list[Received]:
        received = sorted(webhook.for_room(room.sid), key=lambda r: r.sequence)
        done = any(r.params["StatusCallbackEvent"] == "room-ended" for r in received)
        return received if done else []

    received = await eventually(room_ended, timeout=30, message="the room-ended callback")
    assert all(r.valid_signature for r in received), [r.target for r in received]
    assert all(r.method == "POST" and r.target == "/video/events?app=1" for r in received)
    # Every event exactly once, numbered from 0 without gaps, and delivered in that order.
    assert [r.sequence for r in received] == list(range(len(received)))
    assert [r.sequence for r in webhook.for_room(room.sid)] == list(range(len(received)))
    events = [r.params["StatusCallbackEvent"] for r in received]
    assert events == [
        "room-created",
        "participant-connected",
        "participant-connected",
        "track-added",
        "track-added",
        "track-added",
        "track-disabled",
        "track-removed",
        "track-removed",
        "track-removed",
        "participant-disconnected",
        "participant-disconnected",
        "room-ended",
    ]

    # Exact parameters, with durations as REST reports them.
    finished = await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).fetch())
    durations: dict[str, int | None] = {}
    for who in (alice, bob):
        fetch = client.video.v1.rooms(room.sid).participants(who.sid).fetch
        durations[who.sid] = (await asyncio.to_thread(fetch)).duration
    room_common = {
        "AccountSid": tenant.account.sid,
        "RoomName": "town hall",
        "RoomSid": room.sid,
        "RoomStatus": "in-progress",
        "RoomType": "group",
    }

    def specific(request: Received) -> dict[str, str]:
        # Each event happened during this test.
        assert in_milliseconds(started) <= request.timestamp <= utcnow()
        params = request.event_params()
        event = params.pop("StatusCallbackEvent")
        assert params.pop("SequenceNumber") == str(request.sequence)
        for name, value in room_common.items():
            if not (event == "room-ended" and name == "RoomStatus"):
                assert params.pop(name) == value, (event, name)
        return params

    by_sid = {p.sid: p for p in (alice, bob)}
    tracks = {t.sid: t for t in (mic, cam, chat)}
    connected = [specific(r) for r in received[1:3]]
    assert connected == [participant_params(alice), participant_params(bob)]
    added = [specific(r) for r in received[3:6]]
    assert added == [track_params(alice, mic), track_params(alice, cam), track_params(bob, chat)]
    assert specific(received[6]) == track_params(alice, disabled)

    removed = [specific(r) for r in received[7:10]]
    assert sorted(removed, key=lambda p: p["TrackSid"]) == sorted(
        [
            track_params(by_sid[tracks[sid].participant_sid], tracks[sid])
            for sid in (mic.sid, cam.sid, chat.sid)
        ],
        key=lambda p: p["TrackSid"],
    )
    # The disabled track is removed as it last was.
    assert next(p for p in removed if p["TrackSid"] == mic.sid)["TrackName"] == "mic"
    disconnected = [specific(r) for r in received[10:12]]
    assert sorted(disconnected, key=lambda p: p["ParticipantSid"]) == sorted(
        [
            {
                **participant_params(who, "disconnected"),
                "ParticipantDuration": str(durations[who.sid]),
            }
            for who in (alice, bob)
        ],
        key=lambda p: p["ParticipantSid"],
    )
    # Each participant's tracks are removed before it is disconnected.
    for who in (alice, bob):
        gone = next(
            r.sequence
            for r in received
            if r.params["StatusCallbackEvent"] == "participant-disconnected"
            and r.params["ParticipantSid"] == who.sid
        )
        assert all(
            r.sequence < gone
            for r in received
            if r.params["StatusCallbackEvent"] == "track-removed"
            and r.params["ParticipantSid"] == who.sid
        )

    ended = specific(received[-1])
    assert ended == {"RoomStatus": "completed", "RoomDuration": str(finished.duration)}
