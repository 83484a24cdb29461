"""Room lifecycle on real NATS and Redis: outbox events, unused-room timers, retention."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_room.app import build as build_room
from atrium_shared import outbox
from atrium_shared.events import DomainEvent, RoomCreated, RoomEnded
from atrium_shared.infra import make_broker
from atrium_shared.models import RoomInfo
from atrium_shared.settings import Settings
from atrium_shared.timefmt import utcnow
from tests.support.durations import rest_durations, whole_seconds
from tests.support.jetstream import stream_events
from tests.support.stack import CONTROL_PLANE, Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


async def create_room(base_url: str, tenant: Tenant, **form: str) -> dict[str, Any]:
    async with httpx.AsyncClient(auth=(tenant.account.sid, tenant.auth_token)) as client:
        response = await client.post(f"{base_url}/v1/Rooms", data=form)
        assert response.status_code == 201, response.text
        return dict(response.json())


def rest_date(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def test_created_and_ended_events_reach_jetstream_in_order(
    stack: Stack, settings: Settings, tenant: Tenant
) -> None:
    room = await create_room(stack.base_url, tenant, UniqueName="events")
    async with httpx.AsyncClient(auth=(tenant.account.sid, tenant.auth_token)) as client:
        await client.post(f"{stack.base_url}/v1/Rooms/events", data={"Status": "completed"})

    async def both_events() -> list[DomainEvent]:
        events = await stream_events(settings.nats_url)
        events = [e for e in events if e.room_sid == room["sid"]]
        return events if len(events) == 2 else []

    created, ended = await eventually(both_events, message="two room events")
    assert isinstance(created, RoomCreated) and isinstance(ended, RoomEnded)
    assert (created.sequence_number, ended.sequence_number) == (0, 1)
    assert ended.room.status == "completed" and ended.room.end_time is not None
    assert ended.room.duration == whole_seconds(ended.room.date_created, ended.room.end_time)
    assert created.account_sid == tenant.account.sid


async def test_outbox_survives_a_relay_outage_and_duplicates_nothing(
    settings: Settings, redis: Redis
) -> None:
    """Events committed while no relay runs are delivered later; a re-relay is de-duplicated."""
    now = utcnow()
    room = RoomInfo(
        sid="RM" + "a" * 32,
        account_sid="AC" + "b" * 32,
        unique_name="x",
        date_created=now,
        date_updated=now,
    )
    event = RoomCreated(account_sid=room.account_sid, room_sid=room.sid, room=room)

    async def decide(pipe: object) -> outbox.Change:
        return outbox.Change(events=[event])

    await outbox.commit(redis, [], decide)
    assert await redis.xlen(outbox.OUTBOX_STREAM) == 1

    broker: NatsBroker = make_broker(settings)
    await broker.start()
    relay = outbox.OutboxRelay(redis, broker)
    task = asyncio.create_task(relay.run())
    try:

        async def relayed() -> bool:
            return bool(await redis.xlen(outbox.OUTBOX_STREAM) == 0)

        await eventually(relayed, message="outbox drained")
        # A relay that crashed after publishing but before trimming publishes again.
        await outbox.commit(redis, [], decide)  # same event id, sequence 1 this time
        await eventually(relayed, message="outbox drained again")
    finally:
        relay.stop()
        await task
        await broker.stop()
    events = await stream_events(settings.nats_url)
    assert [e.event_id for e in events] == [event.event_id]


async def test_unused_room_ends_after_its_timeout(stack: Stack, tenant: Tenant) -> None:
    room = await create_room(stack.base_url, tenant, UniqueName="lonely", UnusedRoomTimeout="1")
    other = await create_room(stack.base_url, tenant, UniqueName="patient", UnusedRoomTimeout="60")
    auth = (tenant.account.sid, tenant.auth_token)
    async with httpx.AsyncClient(auth=auth, base_url=stack.base_url) as client:

        async def completed() -> bool:
            body = (await client.get(f"/v1/Rooms/{room['sid']}")).json()
            return bool(body["status"] == "completed")

        await eventually(completed, timeout=10, message="unused room to complete")
        body = (await client.get(f"/v1/Rooms/{room['sid']}")).json()
        assert body["end_time"] is not None
        start, end = rest_date(body["date_created"]), rest_date(body["end_time"])
        # Its timeout is a "minute" (a second here): it lasted that long, and its duration says so.
        assert body["duration"] in rest_durations(start, end) and body["duration"] >= 1
        assert (await client.get(f"/v1/Rooms/{other['sid']}")).json()["status"] == "in-progress"
        # Its name is free again.
        again = await client.post("/v1/Rooms", data={"UniqueName": "lonely"})
        assert again.status_code == 201


async def test_timers_survive_a_room_service_restart(stacks: StackFactory, tenant: Tenant) -> None:
    async with stacks.running(CONTROL_PLANE) as stack:
        room = await create_room(stack.base_url, tenant, UnusedRoomTimeout="2")
    # No room service runs while the deadline passes.
    async with stacks.running(["participant", "track"]) as stack:
        auth = (tenant.account.sid, tenant.auth_token)
        async with httpx.AsyncClient(auth=auth, base_url=stack.base_url) as client:
            # The gateway answers while no room service runs: 503, not a hang or a 500.
            assert (await client.get(f"/v1/Rooms/{room['sid']}")).status_code == 503
            stacks.spawn("room")

            async def completed() -> bool:
                response = await client.get(f"/v1/Rooms/{room['sid']}")
                return response.status_code == 200 and response.json()["status"] == "completed"

            await eventually(completed, timeout=15, message="timer to fire after restart")


async def test_two_replicas_fire_each_timer_exactly_once(
    settings: Settings, stacks: StackFactory, tenant: Tenant, redis: Redis
) -> None:
    replica = build_room(settings)
    await replica.start()
    try:
        async with stacks.running(CONTROL_PLANE) as stack:
            sids = [
                str((await create_room(stack.base_url, tenant, UnusedRoomTimeout="1"))["sid"])
                for _ in range(12)
            ]

            async def all_ended() -> list[RoomEnded]:
                events = await stream_events(settings.nats_url)
                ended = [e for e in events if isinstance(e, RoomEnded)]
                return ended if len(ended) >= len(sids) else []

            await eventually(all_ended, timeout=15, message="every room to end")
    finally:
        await replica.stop()
    # Both replicas have stopped, and a stopping service finishes its timer round first: a timer
    # fired twice would be in the stream by now, or in the outbox if its relay stopped first.
    counts = Counter(
        e.room_sid for e in await stream_events(settings.nats_url) if isinstance(e, RoomEnded)
    )
    assert counts == Counter({sid: 1 for sid in sids})
    assert await redis.xlen(outbox.OUTBOX_STREAM) == 0


@pytest.mark.stack(CONTROL_PLANE, completed_room_retention_seconds=1.0)
async def test_completed_rooms_are_kept_for_the_retention_period(
    stack: Stack, tenant: Tenant
) -> None:
    room = await create_room(stack.base_url, tenant)
    auth = (tenant.account.sid, tenant.auth_token)
    async with httpx.AsyncClient(auth=auth, base_url=stack.base_url) as client:
        await client.post(f"/v1/Rooms/{room['sid']}", data={"Status": "completed"})
        listed = (await client.get("/v1/Rooms", params={"Status": "completed"})).json()
        assert [r["sid"] for r in listed["rooms"]] == [room["sid"]]

        async def purged() -> bool:
            return (await client.get(f"/v1/Rooms/{room['sid']}")).status_code == 404

        await eventually(purged, timeout=10, message="completed room to be purged")
        listed = (await client.get("/v1/Rooms", params={"Status": "completed"})).json()
        assert listed["rooms"] == []
