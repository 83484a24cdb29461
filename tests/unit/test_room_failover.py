"""The room service's media worker failover on fakes: which workers are gone, how their rooms
move (one mover among replicas, adoption by the new worker, undone when it fails)."""

from __future__ import annotations

import asyncio

from atrium_room.usecases import RoomUseCases
from atrium_shared.room_api import JoinRoomRequest
from atrium_shared.settings import Settings
from atrium_shared.workers import WorkerInfo
from tests.support.fakes.room import FakeWorkers, RoomFakes

ACCOUNT = "AC" + "a" * 32
SETTINGS = Settings()


class StaleWorkers(FakeWorkers):
    """A registry whose entries are all late (their workers stopped writing Redis)."""

    async def get(self, worker_id: str) -> WorkerInfo | None:
        info = self.live.get(worker_id)
        return None if info is None else info.model_copy(update={"heartbeat_at": 0.0})


async def placed_room(fakes: RoomFakes, name: str = "standup") -> tuple[RoomUseCases, str]:
    rooms = fakes.service(SETTINGS).rooms
    joined = await rooms.join(JoinRoomRequest(account_sid=ACCOUNT, room=name))
    assert joined.worker_id == "w1"
    return rooms, joined.room.sid


def two_workers() -> RoomFakes:
    # w1 is less loaded, so the first rooms go there.
    return RoomFakes(
        workers=FakeWorkers(WorkerInfo(worker_id="w1"), WorkerInfo(worker_id="w2", rooms=1))
    )


async def test_a_dead_workers_rooms_move_to_a_live_worker_that_adopts_them() -> None:
    fakes = two_workers()
    rooms, first = await placed_room(fakes, "one")
    _, second = await placed_room(fakes, "two")
    del fakes.workers.live["w1"]  # its entry expired

    assert await rooms.failover.sweep() == 2

    assert fakes.store.view.placements == {first: "w2", second: "w2"}
    assert fakes.media is not None
    assert sorted(fakes.media.adopted) == sorted([("w2", first, "w1"), ("w2", second, "w1")])
    # Nothing is left on w1: the next sweep forgets it, and moves nothing again.
    assert await rooms.failover.sweep() == 0
    assert "w1" not in fakes.store.view.placed_workers
    assert len(fakes.media.adopted) == 2


async def test_a_late_heartbeat_with_an_answered_ping_keeps_the_rooms() -> None:
    fakes = two_workers()
    _, room = await placed_room(fakes)
    stale = StaleWorkers(*fakes.workers.live.values())
    replica = fakes.service(SETTINGS, workers=stale).rooms

    assert await replica.failover.sweep() == 0  # w1 answers its ping: only slow
    assert fakes.store.view.placements[room] == "w1"


async def test_a_late_heartbeat_without_an_answer_is_a_dead_worker() -> None:
    fakes = two_workers()
    await placed_room(fakes)
    stale = StaleWorkers(*fakes.workers.live.values())
    replica = fakes.service(SETTINGS, workers=stale).rooms
    assert fakes.media is not None
    fakes.media.workers = FakeWorkers(WorkerInfo(worker_id="w2"))  # w1 has no responder

    assert await replica.failover.is_gone("w1")
    assert not await replica.failover.is_gone("w2")  # late too, but it answers


async def test_a_draining_workers_rooms_are_handed_over() -> None:
    fakes = two_workers()
    rooms, room = await placed_room(fakes)
    fakes.workers.live["w1"] = fakes.workers.live["w1"].model_copy(update={"draining": True})

    assert await rooms.failover.sweep() == 1
    assert fakes.store.view.placements[room] == "w2"


async def test_a_failed_adoption_leaves_the_room_for_the_next_sweep() -> None:
    fakes = two_workers()
    rooms, room = await placed_room(fakes)
    del fakes.workers.live["w1"]
    assert fakes.media is not None
    fakes.media.refusing.add("w2")

    assert await rooms.failover.sweep() == 0
    assert fakes.store.view.placements[room] == "w1"  # put back
    fakes.media.refusing.clear()
    assert await rooms.failover.sweep() == 1
    assert fakes.store.view.placements[room] == "w2"


async def test_replicas_sweeping_together_move_each_room_once() -> None:
    fakes = two_workers()
    rooms, room = await placed_room(fakes)
    other = fakes.service(SETTINGS).rooms
    del fakes.workers.live["w1"]

    moved = await asyncio.gather(rooms.failover.sweep(), other.failover.sweep())

    assert sum(moved) == 1
    assert fakes.media is not None and fakes.media.adopted == [("w2", room, "w1")]


async def test_a_join_to_a_room_on_a_dead_worker_moves_it_first() -> None:
    fakes = two_workers()
    rooms, room = await placed_room(fakes)
    del fakes.workers.live["w1"]

    joined = await rooms.join(JoinRoomRequest(account_sid=ACCOUNT, room=room))

    assert joined.worker_id == "w2"
    assert fakes.media is not None and fakes.media.adopted == [("w2", room, "w1")]
