"""An account's default StatusCallback, used by rooms a client's connect creates (``room.join``).

The join goes straight to the room service's ``room.join``, as the gateway calls it; a fake media
worker entry in the registry lets the room be placed.
"""

from __future__ import annotations

import asyncio

import pytest
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_shared.accounts import AccountStore
from atrium_shared.room_api import JoinRoomResult
from atrium_shared.timefmt import utcnow
from atrium_shared.workers import WorkerInfo, WorkerRegistry
from tests.support.rpc import join_room
from tests.support.stack import WITH_CALLBACKS, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually
from tests.support.webhook import Received, Webhook, in_milliseconds

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90), pytest.mark.stack(WITH_CALLBACKS)]


async def join(broker: NatsBroker, tenant: Tenant, room: str) -> JoinRoomResult:
    return await join_room(broker, tenant.account.sid, room)


async def test_ad_hoc_room_uses_the_account_default_callback(
    stack: Stack, broker: NatsBroker, redis: Redis, tenant: Tenant, webhook: Webhook
) -> None:
    url = webhook.url("/adhoc/events?tenant=a")
    updated = await AccountStore(redis).set_default_status_callback(tenant.account.sid, url, "POST")
    assert updated is not None and updated.default_status_callback == url
    await WorkerRegistry(redis).heartbeat(WorkerInfo(worker_id="w1"))

    joined_at = utcnow()
    joined = await join(broker, tenant, "drop-in")
    created_by = utcnow()
    room = joined.room
    assert joined.worker_id == "w1"
    assert (room.unique_name, room.created_by) == ("drop-in", "signaling")
    assert (room.status_callback, room.status_callback_method) == (url, "POST")
    # The next joiner finds the room; nothing new is created.
    again = await join(broker, tenant, "drop-in")
    assert again.room.sid == room.sid

    client = stack.rest(tenant)
    fetched = await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).fetch())
    assert (fetched.status_callback, fetched.status_callback_method) == (url, "POST")
    # A REST room names its own StatusCallback; the account default is only for ad-hoc rooms.
    rest_room = await asyncio.to_thread(lambda: client.video.v1.rooms.create(unique_name="rest"))
    assert rest_room.status_callback is None

    async def created() -> list[Received]:
        return webhook.for_room(room.sid)

    (request,) = await eventually(created, timeout=15, message="room-created of the ad-hoc room")
    assert request.valid_signature
    assert request.method == "POST" and request.target == "/adhoc/events?tenant=a"
    # When the first join created the room.
    assert in_milliseconds(joined_at) <= request.timestamp <= in_milliseconds(created_by)
    assert request.event_params() == {
        "AccountSid": tenant.account.sid,
        "RoomName": "drop-in",
        "RoomSid": room.sid,
        "RoomStatus": "in-progress",
        "RoomType": "group",
        "StatusCallbackEvent": "room-created",
        "SequenceNumber": "0",
    }

    # Its later events go there too.
    await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).update(status="completed"))

    async def ended() -> list[Received]:
        received = webhook.for_room(room.sid)
        return received if len(received) >= 2 else []

    _, last = await eventually(ended, timeout=15, message="room-ended of the ad-hoc room")
    assert last.valid_signature and last.params["StatusCallbackEvent"] == "room-ended"
    assert last.params["SequenceNumber"] == "1"
    assert {r.room_sid for r in webhook.received} == {room.sid}


async def test_cleared_default_leaves_new_ad_hoc_rooms_without_callback(
    stack: Stack, broker: NatsBroker, redis: Redis, tenant: Tenant, webhook: Webhook
) -> None:
    accounts = AccountStore(redis)
    await accounts.set_default_status_callback(tenant.account.sid, webhook.url("/hook"), "GET")
    await WorkerRegistry(redis).heartbeat(WorkerInfo(worker_id="w1"))
    first = (await join(broker, tenant, "with-hook")).room
    assert (first.status_callback, first.status_callback_method) == (webhook.url("/hook"), "GET")

    await accounts.set_default_status_callback(tenant.account.sid, None)
    second = (await join(broker, tenant, "without-hook")).room
    assert (second.status_callback, second.status_callback_method) == (None, "POST")
    # A room created before keeps the callback it was created with.
    assert (await join(broker, tenant, "with-hook")).room.status_callback == webhook.url("/hook")
