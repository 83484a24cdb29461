"""The callback Dispatcher on in-memory fakes: per-room order under retries, rooms in parallel
and bounded, backoff timed by a fake clock, leases between replicas, a replica dying mid-delivery,
and the run loop itself."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

import pytest

from atrium_callback.bootstrap import CallbackService
from atrium_callback.domain import AttemptResult, CallbackRequest
from atrium_callback.usecases import Dispatcher
from atrium_shared.events import DomainEvent
from atrium_shared.settings import Settings
from tests.support.fakes.callback import CallbackFakes, RoomEvents, Rule
from tests.support.waiting import eventually

SETTINGS = Settings(
    callback_max_attempts=4,
    callback_backoff_initial_seconds=1.0,
    callback_backoff_max_seconds=2.0,
    callback_concurrency=8,
    timer_poll_seconds=0.02,
)


@pytest.fixture
def fakes() -> CallbackFakes:
    return CallbackFakes()


def replica(fakes: CallbackFakes, **settings: object) -> CallbackService:
    return fakes.service(SETTINGS.model_copy(update=settings))


@pytest.fixture
def service(fakes: CallbackFakes) -> CallbackService:
    return replica(fakes)


def sequence_is(*numbers: int) -> Rule:
    def rule(request: CallbackRequest) -> bool:
        assert request.form is not None
        return int(request.form["SequenceNumber"]) in numbers

    return rule


def of_room(room_sid: str) -> Rule:
    def rule(request: CallbackRequest) -> bool:
        assert request.form is not None
        return request.form["RoomSid"] == room_sid

    return rule


async def take_in(service: CallbackService, events: Iterable[DomainEvent]) -> None:
    for event in events:
        await service.intake.accept(event)


async def one_pass(dispatcher: Dispatcher) -> list[str]:
    """Start every due room the dispatcher has slots for and wait until they stop."""
    started = await dispatcher.start_due_rooms()
    await dispatcher.wait_active()
    return started


async def until_settled(fakes: CallbackFakes, *dispatchers: Dispatcher, limit: int = 100) -> None:
    """Passes until every queue is empty, moving the clock to the next due time between them."""
    for _ in range(limit):
        if not any(fakes.store.queues.values()):
            return
        for dispatcher in dispatchers:
            await one_pass(dispatcher)
        if fakes.store.due:
            fakes.clock.current = max(fakes.clock.now(), min(fakes.store.due.values()))
    raise AssertionError("the queues never emptied")


def collapsed(sequences: list[int]) -> list[int]:
    """Consecutive repeats (retries, a re-sent in-flight callback) collapsed."""
    return [n for i, n in enumerate(sequences) if i == 0 or sequences[i - 1] != n]


async def test_order_within_a_room_holds_under_retries(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    room = RoomEvents(fakes.clock)
    await take_in(service, [room.created() for _ in range(5)])
    for sequence, failures in {0: 2, 2: 1, 3: 2}.items():
        fakes.sender.fail(failures, where=sequence_is(sequence))

    await until_settled(fakes, service.dispatcher)

    assert fakes.sender.sequences(room.sid) == [0, 0, 0, 1, 2, 2, 3, 3, 3, 4]
    assert [r.sequence_number for r in reversed(fakes.store.log)] == [0, 1, 2, 3, 4]
    assert all(r.outcome == "delivered" for r in fakes.store.log)


async def test_a_dead_letter_does_not_block_the_room_behind_it(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    room = RoomEvents(fakes.clock)
    await take_in(service, [room.created(), room.connected(), room.ended()])
    fakes.sender.fail(10, AttemptResult(status=500), where=sequence_is(1))

    await until_settled(fakes, service.dispatcher)

    assert fakes.sender.sequences(room.sid) == [0, 1, 1, 1, 1, 2]
    [dead] = fakes.store.dead
    assert (dead.sequence_number, dead.attempts) == (1, 4)
    assert [r.outcome for r in reversed(fakes.store.log)] == [
        "delivered",
        "dead-letter",
        "delivered",
    ]


async def test_a_retry_waits_for_its_backoff(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    room = RoomEvents(fakes.clock)
    await take_in(service, [room.created()])
    fakes.sender.fail(2)

    assert await one_pass(service.dispatcher) == [room.sid]  # fails: due in 1 s
    assert await one_pass(service.dispatcher) == []
    fakes.clock.advance(0.999)
    assert await one_pass(service.dispatcher) == []
    fakes.clock.advance(0.001)
    assert await one_pass(service.dispatcher) == [room.sid]  # fails again: due in 2 s
    fakes.clock.advance(1.5)
    assert await one_pass(service.dispatcher) == []
    fakes.clock.advance(0.5)
    assert await one_pass(service.dispatcher) == [room.sid]
    assert len(fakes.sender.sent) == 3 and fakes.store.log[0].attempts == 3


async def test_rooms_are_delivered_in_parallel(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    slow, quick = RoomEvents(fakes.clock), RoomEvents(fakes.clock)
    gate = fakes.sender.hold(of_room(slow.sid))
    await take_in(service, [slow.created(), quick.created(), quick.connected(), quick.ended()])

    assert set(await service.dispatcher.start_due_rooms()) == {slow.sid, quick.sid}
    await eventually(lambda: len(fakes.store.log) == 3, message="the quick room delivered")
    assert fakes.sender.sequences(quick.sid) == [0, 1, 2]
    assert fakes.sender.sequences(slow.sid) == [0]  # still in flight

    gate.set()
    await service.dispatcher.wait_active()
    assert len(fakes.store.log) == 4


async def test_a_failing_room_does_not_delay_another(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    down, healthy = RoomEvents(fakes.clock), RoomEvents(fakes.clock)
    fakes.sender.fail(100, where=of_room(down.sid))
    await take_in(service, [down.created(), down.connected()])
    await take_in(service, [healthy.created() for _ in range(3)])

    await one_pass(service.dispatcher)

    assert fakes.sender.sequences(healthy.sid) == [0, 1, 2]
    assert fakes.sender.sequences(down.sid) == [0]  # waits for its retry, in order
    assert fakes.store.due[down.sid] > fakes.clock.now()


async def test_concurrency_bounds_the_rooms_in_flight(fakes: CallbackFakes) -> None:
    service = replica(fakes, callback_concurrency=1)
    first, second = RoomEvents(fakes.clock), RoomEvents(fakes.clock)
    gate = fakes.sender.hold(of_room(first.sid))
    await take_in(service, [first.created()])
    fakes.clock.advance(0.001)  # the second room becomes due later
    await take_in(service, [second.created()])

    assert await service.dispatcher.start_due_rooms() == [first.sid]  # due longest
    assert await service.dispatcher.start_due_rooms() == []  # no free slot
    gate.set()
    await service.dispatcher.wait_active()
    assert await one_pass(service.dispatcher) == [second.sid]


async def test_two_replicas_never_deliver_one_room_concurrently(fakes: CallbackFakes) -> None:
    one, other = replica(fakes), replica(fakes)
    rooms = [RoomEvents(fakes.clock) for _ in range(4)]
    for _ in range(6):
        await take_in(one, [room.created() for room in rooms])
    rng = random.Random(7)
    for _ in range(8):
        fakes.sender.fail(1, where=of_room(rng.choice(rooms).sid))

    for _ in range(60):
        if not any(fakes.store.queues.values()):
            break
        # Both look for due rooms at the same time; a room leased by one is skipped by the other.
        await asyncio.gather(one.dispatcher.start_due_rooms(), other.dispatcher.start_due_rooms())
        await asyncio.gather(one.dispatcher.wait_active(), other.dispatcher.wait_active())
        if fakes.store.due:
            fakes.clock.current = max(fakes.clock.now(), min(fakes.store.due.values()))

    assert fakes.sender.overlaps == []
    for room in rooms:
        assert collapsed(fakes.sender.sequences(room.sid)) == list(range(6))
    assert len(fakes.store.log) == 24


async def test_a_replica_dying_mid_delivery_loses_and_reorders_nothing(
    fakes: CallbackFakes,
) -> None:
    """kill -9 of the replica sending a room's head: its lease runs out, another replica sends
    the head again and then the rest, in order; each callback is logged once."""
    dying, survivor = replica(fakes), replica(fakes)
    room = RoomEvents(fakes.clock)
    await take_in(dying, [room.created(), room.connected(), room.ended()])
    hung = fakes.sender.hold(lambda _: len(fakes.sender.sent) == 1)
    assert await dying.dispatcher.start_due_rooms() == [room.sid]
    await eventually(lambda: fakes.sender.sent, message="the head in flight")

    del fakes.store.leases[room.sid]  # the dead replica's lease expired
    assert await one_pass(survivor.dispatcher) == [room.sid]
    hung.set()  # had the dead replica's request arrived, its result finds the lease gone
    await dying.dispatcher.wait_active()

    assert fakes.sender.sequences(room.sid) == [0, 0, 1, 2]
    assert [r.sequence_number for r in reversed(fakes.store.log)] == [0, 1, 2]
    assert fakes.store.queues[room.sid] == {}


def quick_lease_dispatcher(fakes: CallbackFakes, service: CallbackService) -> Dispatcher:
    return Dispatcher(
        fakes.store,
        service.delivery,
        fakes.clock,
        concurrency=4,
        poll_seconds=0.02,
        lease_ms=30,  # renewed every 10 ms (of real time: leases expire in Redis)
    )


async def test_a_lost_lease_stops_the_drain(fakes: CallbackFakes, service: CallbackService) -> None:
    """Our renewals failed (we were stalled): another replica holds the room now, so ours stops
    after its try, records nothing and leaves the queue to the holder."""
    dispatcher = quick_lease_dispatcher(fakes, service)
    room = RoomEvents(fakes.clock)
    await take_in(service, [room.created(), room.connected()])
    gate = fakes.sender.hold(lambda _: True)
    await dispatcher.start_due_rooms()
    await eventually(lambda: fakes.sender.sent, message="the head in flight")

    fakes.store.leases[room.sid] = "another replica"
    await asyncio.sleep(0.05)  # let a renewal find the lease taken
    gate.set()
    await dispatcher.wait_active()

    assert len(fakes.sender.sent) == 1
    assert fakes.store.log == [] and len(fakes.store.queues[room.sid]) == 2
    assert fakes.store.leases[room.sid] == "another replica"


async def test_a_failed_renewal_is_tried_again_and_the_drain_goes_on(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    dispatcher = quick_lease_dispatcher(fakes, service)
    room = RoomEvents(fakes.clock)
    await take_in(service, [room.created(), room.connected()])
    gate = fakes.sender.hold(lambda _: True)
    await dispatcher.start_due_rooms()
    await eventually(lambda: fakes.sender.sent, message="the head in flight")

    fakes.store.fail("acquire", ConnectionError("redis blinked"))
    await eventually(lambda: not fakes.store.failing("acquire"), message="a renewal failed")
    gate.set()
    await dispatcher.wait_active()

    assert fakes.sender.sequences(room.sid) == [0, 1]
    assert len(fakes.store.log) == 2 and fakes.store.leases == {}


async def test_a_failing_drain_releases_the_room_for_a_later_pass(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    room = RoomEvents(fakes.clock)
    await take_in(service, [room.created()])
    fakes.store.fail("head", ConnectionError("redis went away"))

    assert await one_pass(service.dispatcher) == [room.sid]
    assert fakes.store.leases == {} and fakes.sender.sent == []
    assert await one_pass(service.dispatcher) == [room.sid]  # still due
    assert fakes.sender.sequences(room.sid) == [0]


async def test_the_run_loop_wakes_on_intake_survives_store_errors_and_stops(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    running = asyncio.create_task(service.dispatcher.run())
    room = RoomEvents(fakes.clock)
    fakes.store.fail("due_rooms", ConnectionError("redis went away"))
    await take_in(service, [room.created(), room.connected()])

    await eventually(lambda: len(fakes.store.log) == 2, message="delivered by the loop")

    gate = fakes.sender.hold(lambda _: True)
    await take_in(service, [room.ended()])
    await eventually(lambda: len(fakes.sender.sent) == 3, message="the last one in flight")
    service.dispatcher.stop()
    await asyncio.sleep(0)
    assert not running.done()  # it lets the room in flight finish its try
    gate.set()
    await asyncio.wait_for(running, 5)
    assert [r.sequence_number for r in reversed(fakes.store.log)] == [0, 1, 2]
