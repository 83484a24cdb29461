"""Room placement on media workers: the least loaded live worker that is not draining and has room;
a dead worker loses its rooms to a live worker, which adopts them."""

from __future__ import annotations

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from redis.asyncio import Redis

from atrium_shared import subjects
from atrium_shared.errors import AtriumError
from atrium_shared.room_api import JoinRoomResult
from atrium_shared.rpc import RpcReply
from atrium_shared.signaling_api import AdoptedRoom, AdoptRoom
from atrium_shared.workers import WORKERS_KEY, WorkerInfo, WorkerRegistry, worker_key
from tests.support.rpc import join_room
from tests.support.stack import Stack
from tests.support.tenants import Tenant


async def join(broker: NatsBroker, tenant: Tenant, room: str) -> JoinRoomResult:
    return await join_room(broker, tenant.account.sid, room)


async def test_new_rooms_go_to_the_least_loaded_live_worker(
    stack: Stack, broker: NatsBroker, tenant: Tenant, redis: Redis
) -> None:
    with pytest.raises(AtriumError) as caught:
        await join(broker, tenant, "nowhere")
    assert caught.value.code == 53116  # no worker at all

    registry = WorkerRegistry(redis)
    await registry.heartbeat(WorkerInfo(worker_id="busy", participants=150, capacity=200))
    await registry.heartbeat(WorkerInfo(worker_id="idle", participants=3, capacity=200))
    # Each of these is ahead of "idle" in the load index, and only one check keeps rooms off it:
    # a worker that takes nobody (load 0, yet full), a draining worker the index still lists (a
    # draining heartbeat takes it out of the index, but placement must not rely on that), and a
    # dead worker (its entry expired, its load is still indexed).
    await registry.heartbeat(WorkerInfo(worker_id="closed", participants=0, capacity=0))
    await registry.heartbeat(WorkerInfo(worker_id="leaving", draining=True))
    await redis.zadd(WORKERS_KEY, {"leaving": 0.0})
    await registry.heartbeat(WorkerInfo(worker_id="gone", participants=0, capacity=200))
    await redis.delete(worker_key("gone"))
    await registry.heartbeat(WorkerInfo(worker_id="full", participants=10, capacity=10))
    index = await redis.zrange(WORKERS_KEY, 0, -1)
    assert index == ["closed", "gone", "leaving", "idle", "busy", "full"]

    first = await join(broker, tenant, "standup")
    assert first.worker_id == "idle"
    assert first.room.created_by == "signaling" and first.room.unique_name == "standup"
    # The dead worker left the index; the others stay in it.
    assert "gone" not in await redis.zrange(WORKERS_KEY, 0, -1)
    # The room stays where it is while its worker lives, even if another gets less loaded.
    await registry.heartbeat(WorkerInfo(worker_id="busy", participants=0, capacity=200))
    again = await join(broker, tenant, "standup")
    assert (again.worker_id, again.room.sid) == ("idle", first.room.sid)

    # A worker that stops heartbeating is dead: its rooms move on the next join (if the sweep
    # has not moved them first), to a worker that adopts their sessions.
    adoptions: list[AdoptRoom] = []
    client = await nats.connect(stack.settings.nats_url)

    async def adopt(message: Msg) -> None:
        request = AdoptRoom.model_validate_json(message.data)
        adoptions.append(request)
        reply = RpcReply(result=AdoptedRoom(room_sid=request.room.sid, sessions=0).model_dump())
        await message.respond(reply.model_dump_json().encode())

    try:
        await client.subscribe(subjects.worker_control_subject("busy", "adopt"), cb=adopt)
        await client.flush()
        await redis.delete(worker_key("idle"))
        moved = await join(broker, tenant, "standup")
        assert (moved.worker_id, moved.room.sid) == ("busy", first.room.sid)
        assert [(a.room.sid, a.from_worker) for a in adoptions] == [(first.room.sid, "idle")]
    finally:
        await client.close()
