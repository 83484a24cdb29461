"""REST parity with Twilio where Atrium used to differ quietly (issue 17), checked with the
official twilio package, the Python SDK as the client, and raw HTTP where the helper library
hides what is checked (a status code, an empty parameter).

What Twilio documents for each behaviour, and where it says so, is in the README ("REST
parity").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from redis.asyncio import Redis
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from atrium_cli.embedded import free_port
from atrium_shared.accounts import AccountStore
from atrium_video import (
    LocalDataTrack,
    TwilioError,
    connect,
    create_local_audio_track,
    create_local_video_track,
)
from tests.support.logs import recorded
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

T = TypeVar("T")


async def off_loop(fn: Callable[[], T]) -> T:
    """twilio-python is synchronous; run it beside the services' event loop."""
    return await asyncio.to_thread(fn)


def client_for(stack: Stack, tenant: Tenant) -> Client:
    return stack.rest_as(tenant.account.sid, tenant.auth_token)


async def twilio_error(request: Callable[[], Any]) -> tuple[int, int]:
    with pytest.raises(TwilioRestException) as caught:
        await off_loop(request)
    return caught.value.code, caught.value.status


# Control plane only -----------------------------------------------------------------------------
def raw_http(stack: Stack, tenant: Tenant) -> httpx.AsyncClient:
    """Plain HTTP where the helper library hides what is checked (its status code)."""
    auth = (tenant.account.sid, tenant.auth_token)
    return httpx.AsyncClient(base_url=stack.base_url, auth=auth)


async def test_updates_answer_202(stack: Stack, tenant: Tenant) -> None:
    client = client_for(stack, tenant)
    first = await off_loop(lambda: client.video.v1.rooms.create(unique_name="to-complete"))
    done = await off_loop(lambda: client.video.v1.rooms(first.sid).update(status="completed"))
    assert done.status == "completed"  # the helper library takes the 202
    second = await off_loop(lambda: client.video.v1.rooms.create(unique_name="raw"))
    async with raw_http(stack, tenant) as http:
        response = await http.post(f"/v1/Rooms/{second.sid}", data={"Status": "completed"})
    assert (response.status_code, response.json()["status"]) == (202, "completed")


async def test_empty_choices_and_long_callbacks_are_twilios_400s(
    stack: Stack, tenant: Tenant
) -> None:
    rooms = client_for(stack, tenant).video.v1.rooms
    long_url = "https://example.com/" + "x" * 3981  # 4001 characters
    cases: list[tuple[int, Callable[[], Any]]] = [
        (53108, lambda: rooms.create(type="")),
        (53110, lambda: rooms.create(status_callback_method="")),
        (53115, lambda: rooms.create(media_region="")),
        (53111, lambda: rooms.create(status_callback=long_url)),
        (53123, lambda: rooms.create(max_participant_duration=599)),
        (53123, lambda: rooms.create(max_participant_duration=86401)),
    ]
    for code, request in cases:
        assert await twilio_error(request) == (code, 400)
    # A repeated key sent empty, which the helper library would not send: raw HTTP.
    async with raw_http(stack, tenant) as http:
        response = await http.post("/v1/Rooms", content=b"VideoCodecs=", headers=FORM)
    assert (response.status_code, response.json()["code"]) == (400, 53114)
    assert await off_loop(lambda: rooms.list()) == []  # none of them created a room


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_defaults_and_bounds_as_twilio_shows_them(stack: Stack, tenant: Tenant) -> None:
    rooms = client_for(stack, tenant).video.v1.rooms
    room = await off_loop(lambda: rooms.create(max_participant_duration=600))
    assert room.duration == 0  # in progress
    assert room.media_region == "us1"
    assert room.max_participant_duration == 600
    edge = await off_loop(lambda: rooms.create(max_participant_duration=86400))
    assert edge.max_participant_duration == 86400


async def test_go_and_peer_to_peer_rooms_follow_twilios_limits(
    stack: Stack, tenant: Tenant
) -> None:
    rooms = client_for(stack, tenant).video.v1.rooms
    go = await off_loop(lambda: rooms.create(type="go"))
    assert (go.max_participants, go.max_concurrent_published_tracks) == (2, 0)
    p2p = await off_loop(lambda: rooms.create(type="peer-to-peer", max_participants=10))
    assert (p2p.max_participants, p2p.max_concurrent_published_tracks) == (10, 0)
    cases: list[tuple[int, Callable[[], Any]]] = [
        (53107, lambda: rooms.create(type="go", max_participants=3)),
        (53107, lambda: rooms.create(type="peer-to-peer", max_participants=11)),
        (53114, lambda: rooms.create(type="peer-to-peer", large_room=True)),
        (53114, lambda: rooms.create(type="go", record_participants_on_connect=True)),
        (53124, lambda: rooms.create(type="go", audio_only=True)),
        # SubscribeRules: media goes peer to peer, there is nothing to subscribe through.
        (53117, lambda: rooms(go.sid).participants("PA" + "0" * 32).subscribe_rules.update()),
        (53117, lambda: rooms(p2p.sid).participants("anyone").subscribe_rules.update()),
    ]
    for code, request in cases:
        assert await twilio_error(request) == (code, 400)


# With media workers and SDK clients -------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.stack(REALTIME)
async def test_participant_update_answers_202(stack: Stack, tenant: Tenant) -> None:
    client = client_for(stack, tenant)
    alice = await connect(tenant.token("alice"), url=stack.signaling_url, name="kick-202")
    bob = await connect(tenant.token("bob"), url=stack.signaling_url, name="kick-202")
    try:
        room = client.video.v1.rooms("kick-202")
        kicked = await off_loop(lambda: room.participants("alice").update(status="disconnected"))
        assert kicked.status == "disconnected"  # the helper library takes the 202
        async with raw_http(stack, tenant) as http:
            response = await http.post(
                "/v1/Rooms/kick-202/Participants/bob", data={"Status": "disconnected"}
            )
        assert (response.status_code, response.json()["status"]) == (202, "disconnected")
    finally:
        await asyncio.gather(alice.disconnect(), bob.disconnect())


async def _all_of_redis(redis: Redis) -> str:
    """Every key and value in Redis as one text (whatever each key's type)."""
    parts: list[str] = []
    async for key in redis.scan_iter("*"):
        kind = await redis.type(key)
        parts.append(key)
        if kind == "string":
            parts.append(str(await redis.get(key)))
        elif kind == "hash":
            parts.extend(f"{k}={v}" for k, v in (await redis.hgetall(key)).items())
        elif kind == "set":
            parts.extend(await redis.smembers(key))
        elif kind == "zset":
            parts.extend(await redis.zrange(key, 0, -1))
        elif kind == "list":
            parts.extend(await redis.lrange(key, 0, -1))
        elif kind == "stream":
            parts.extend(str(entry) for entry in await redis.xrange(key))
    return "\n".join(parts)


@pytest.mark.integration
@pytest.mark.timeout(120)
# The first failed callback waits a minute for its retry: the room's callbacks stay queued.
@pytest.mark.stack(REALTIME, callback_backoff_initial_seconds=60.0)
async def test_anonymize_removes_the_identity_from_rest_callbacks_and_logs(
    stack: Stack, tenant: Tenant, redis: Redis
) -> None:
    identity = "alice-private-7f3a9c"
    client = client_for(stack, tenant)
    unreachable = f"http://127.0.0.1:{free_port()}/callbacks"
    room = await off_loop(
        lambda: client.video.v1.rooms.create(unique_name="anon", status_callback=unreachable)
    )
    with recorded("atrium", logging.DEBUG) as records:
        alice = await connect(tenant.token(identity), url=stack.signaling_url, name="anon")
        sid = alice.local_participant.sid
        participants = client.video.v1.rooms(room.sid).participants
        # Connected: the identity is still in use, nothing changes.
        with pytest.raises(TwilioRestException) as caught:
            await off_loop(lambda: participants(identity).anonymize().update())
        assert (caught.value.code, caught.value.status) == (20001, 400)
        await alice.disconnect()

        async def left() -> bool:
            found = await off_loop(lambda: participants(sid).fetch())
            return bool(found.status == "disconnected")

        await eventually(left, timeout=15, message="alice disconnected")

        async def queued() -> bool:
            return identity in await _all_of_redis(redis)

        await eventually(queued, timeout=15, message="callbacks naming alice queued")

        anonymized = await off_loop(lambda: participants(identity).anonymize().update())
        assert (anonymized.sid, anonymized.identity) == (sid, sid)
        assert anonymized.status == "disconnected"
        assert anonymized.url.endswith(f"/Participants/{sid}/Anonymize")
        async with raw_http(stack, tenant) as http:
            response = await http.post(f"/v1/Rooms/{room.sid}/Participants/{sid}/Anonymize")
        assert (response.status_code, response.json()["identity"]) == (200, sid)
        assert "links" not in response.json()

        # REST: by SID it shows its SID as identity, by identity it is gone.
        assert (await off_loop(lambda: participants(sid).fetch())).identity == sid
        listed = await off_loop(lambda: participants.list(status="disconnected"))
        assert [p.identity for p in listed] == [sid]
        with pytest.raises(TwilioRestException) as caught:
            await off_loop(lambda: participants(identity).fetch())
        assert caught.value.status == 404
        again = await off_loop(lambda: participants(sid).anonymize().update())
        assert again.identity == sid

        # Stored callbacks (queued ones, delivery log, dead letters) and every other key.
        async def forgotten() -> bool:
            return identity not in await _all_of_redis(redis)

        await eventually(forgotten, timeout=15, message="the identity gone from Redis")
        assert sid in await _all_of_redis(redis)

    for record in records:
        assert identity not in record.getMessage(), record.getMessage()
        assert identity not in repr(getattr(record, "fields", {})), record.getMessage()


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.stack(REALTIME)
async def test_audio_only_rooms_refuse_video_and_video_codecs_bind_publishers(
    stack: Stack, tenant: Tenant
) -> None:
    client = client_for(stack, tenant)
    rooms = client.video.v1.rooms
    await off_loop(lambda: rooms.create(unique_name="talk", audio_only=True))
    alice = await connect(tenant.token("alice"), url=stack.signaling_url, name="talk")
    try:
        await alice.local_participant.publish_track(create_local_audio_track(name="mic"))
        with pytest.raises(TwilioError) as refused:
            await alice.local_participant.publish_track(create_local_video_track(name="cam"))
        assert refused.value.code == 53125
        published = await off_loop(
            lambda: rooms("talk").participants("alice").published_tracks.list()
        )
        assert [(t.name, t.kind) for t in published] == [("mic", "audio")]
    finally:
        await alice.disconnect()

    await off_loop(lambda: rooms.create(unique_name="h264-only", video_codecs=["H264"]))
    bob = await connect(tenant.token("bob"), url=stack.signaling_url, name="h264-only")
    try:
        await bob.local_participant.publish_track(create_local_video_track(name="cam"))
        published = await off_loop(
            lambda: rooms("h264-only").participants("bob").published_tracks.list()
        )
        assert [(t.name, t.kind) for t in published] == [("cam", "video")]
        # The worker answered the publisher's offer (VP8 and H264) with H264 alone.
        answer = bob._pc.remoteDescription.sdp
        video = answer.split("m=video", 1)[1].split("m=", 1)[0]
        assert "H264/90000" in video and "VP8" not in video
    finally:
        await bob.disconnect()


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.stack(REALTIME)
async def test_the_rooms_published_track_limit_is_53203(stack: Stack, tenant: Tenant) -> None:
    rooms = client_for(stack, tenant).video.v1.rooms
    room = await off_loop(lambda: rooms.create(unique_name="large", large_room=True))
    assert room.max_concurrent_published_tracks == 16
    alice = await connect(tenant.token("alice"), url=stack.signaling_url, name="large")
    bob = await connect(tenant.token("bob"), url=stack.signaling_url, name="large")
    try:
        await alice.local_participant.publish_tracks(
            [LocalDataTrack(name=f"a{i}") for i in range(10)]
        )
        await bob.local_participant.publish_tracks([LocalDataTrack(name=f"b{i}") for i in range(6)])
        # The room holds 16 now, whoever published them.
        with pytest.raises(TwilioError) as refused:
            await bob.local_participant.publish_track(LocalDataTrack(name="one-too-many"))
        assert refused.value.code == 53203
    finally:
        await asyncio.gather(alice.disconnect(), bob.disconnect())


@pytest.mark.integration
@pytest.mark.timeout(120)
@pytest.mark.stack(REALTIME)
async def test_an_account_without_ad_hoc_rooms_joins_only_rooms_made_over_rest(
    stack: Stack, tenant: Tenant, redis: Redis
) -> None:
    await AccountStore(redis).set_ad_hoc_rooms(tenant.account.sid, False)
    with pytest.raises(TwilioError) as refused:
        await connect(tenant.token("alice"), url=stack.signaling_url, name="nowhere")
    assert refused.value.code == 53106
    rooms = client_for(stack, tenant).video.v1.rooms
    assert await off_loop(lambda: rooms.list(unique_name="nowhere")) == []

    booked = await off_loop(lambda: rooms.create(unique_name="booked"))
    alice = await connect(tenant.token("alice"), url=stack.signaling_url, name="booked")
    try:
        assert alice.sid == booked.sid
    finally:
        await alice.disconnect()
