"""Room placement on media workers: least loaded live worker; a dead worker loses its rooms."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_shared import subjects
from atrium_shared.errors import AtriumError
from atrium_shared.infra import make_broker
from atrium_shared.room_api import JoinRoomRequest, JoinRoomResult
from atrium_shared.rpc import call
from atrium_shared.settings import Settings
from atrium_shared.workers import WorkerInfo, WorkerRegistry, worker_key
from tests.conftest import Tenant
from tests.support.stack import CONTROL_PLANE, running_stack


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[NatsBroker]:
    async with running_stack(settings, CONTROL_PLANE):
        client = make_broker(settings)
        await client.start()
        try:
            yield client
        finally:
            await client.stop()


async def join(broker: NatsBroker, tenant: Tenant, room: str) -> JoinRoomResult:
    return await call(broker, subjects.ROOM_JOIN,
                      JoinRoomRequest(account_sid=tenant.account.sid, room=room), JoinRoomResult)


async def test_new_rooms_go_to_the_least_loaded_live_worker(
    broker: NatsBroker, tenant: Tenant, redis: Redis
) -> None:
    with pytest.raises(AtriumError) as caught:
        await join(broker, tenant, "nowhere")
    assert caught.value.code == 53116  # no worker at all

    registry = WorkerRegistry(redis)
    await registry.heartbeat(WorkerInfo(worker_id="busy", participants=150, capacity=200))
    await registry.heartbeat(WorkerInfo(worker_id="idle", participants=3, capacity=200))
    await registry.heartbeat(WorkerInfo(worker_id="full", participants=10, capacity=10))
    await registry.heartbeat(WorkerInfo(worker_id="leaving", draining=True))

    first = await join(broker, tenant, "standup")
    assert first.worker_id == "idle"
    assert first.room.created_by == "signaling" and first.room.unique_name == "standup"
    # The room stays where it is while its worker lives, even if another gets less loaded.
    await registry.heartbeat(WorkerInfo(worker_id="busy", participants=0, capacity=200))
    again = await join(broker, tenant, "standup")
    assert (again.worker_id, again.room.sid) == ("idle", first.room.sid)

    # A worker that stops heartbeating is dead: its rooms move on the next join.
    await redis.delete(worker_key("idle"))
    moved = await join(broker, tenant, "standup")
    assert (moved.worker_id, moved.room.sid) == ("busy", first.room.sid)
