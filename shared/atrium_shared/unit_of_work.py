"""Unit of work: a use case's reads, its decision, and its writes plus events, committed together.

Use cases depend only on :class:`UnitOfWork`: they pass a ``decide`` coroutine that reads through
the service's transaction object, applies domain rules, stages writes and emits events. The unit of
work commits the staged writes and the events in one step, or nothing when ``decide`` raises. If
another writer changed what ``decide`` read, ``decide`` runs again, so it must be free of side
effects other than what it stages on the transaction.

Adapters provide the transaction types. In Redis (:class:`RedisUnitOfWork`) each service's
transaction subclasses :class:`RedisTransaction`: its read methods ``WATCH`` the keys they read,
its write methods queue commands for the ``MULTI``, and the events go into the outbox stream in the
same ``MULTI`` (:func:`atrium_shared.outbox.commit`). Tests wire an in-memory transaction instead
(``tests/support/fakes``) and run the same use cases without NATS or Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from atrium_shared import outbox
from atrium_shared.events import DomainEvent

TxT_co = TypeVar("TxT_co", covariant=True)
ResultT = TypeVar("ResultT")


class UnitOfWork(Protocol[TxT_co]):
    async def run(self, decide: Callable[[TxT_co], Awaitable[ResultT]]) -> ResultT:
        """Run ``decide`` in a transaction and commit what it staged; rerun it on a conflict."""
        ...


class RedisTransaction:
    """Base of a service's Redis transaction: watched reads, queued writes, emitted events."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe
        self._writes: list[Callable[[Pipeline], None]] = []
        self._events: list[DomainEvent] = []

    async def watch(self, *keys: str) -> None:
        """Make the commit fail (and ``decide`` rerun) if any of ``keys`` changes meanwhile."""
        if keys:
            await self.pipe.watch(*keys)

    def stage(self, write: Callable[[Pipeline], None]) -> None:
        """Queue Redis commands for the commit's ``MULTI``."""
        self._writes.append(write)

    def emit(self, *events: DomainEvent) -> None:
        """Events committed with the writes (through the outbox), in this order."""
        self._events.extend(events)

    @property
    def events(self) -> list[DomainEvent]:
        return list(self._events)

    def change(self) -> outbox.Change | None:
        if not self._writes and not self._events:
            return None
        writes = list(self._writes)

        def write(pipe: Pipeline) -> None:
            for one in writes:
                one(pipe)

        return outbox.Change(write=write, events=list(self._events))


RedisTxT = TypeVar("RedisTxT", bound=RedisTransaction)


class RedisUnitOfWork(Generic[RedisTxT]):
    """Runs ``decide`` under WATCH/MULTI with the outbox; ``make_tx`` builds the transaction."""

    def __init__(self, redis: Redis, make_tx: Callable[[Pipeline], RedisTxT]) -> None:
        self.redis = redis
        self._make_tx = make_tx

    async def run(self, decide: Callable[[RedisTxT], Awaitable[ResultT]]) -> ResultT:
        results: list[ResultT] = []

        async def attempt(pipe: Pipeline) -> outbox.Change | None:
            results.clear()
            tx = self._make_tx(pipe)
            results.append(await decide(tx))
            return tx.change()

        await outbox.commit(self.redis, (), attempt)
        return results[-1]
