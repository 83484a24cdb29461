"""What several services' fakes are made of: a store, due timers, another service's RPC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from atrium_shared.errors import AtriumError
from tests.support.fakes.unit_of_work import FakeTransaction, FakeUnitOfWork

KeyT = TypeVar("KeyT", bound=Hashable)
FakeTxT = TypeVar("FakeTxT", bound=FakeTransaction)


class FakeStore(Generic[FakeTxT]):
    """A service's storage in memory: ``uow``, whose committed state the service's query and
    timer fakes read through ``view``, as the real adapters share one Redis."""

    def __init__(self, make_tx: Callable[[dict[str, Any]], FakeTxT]) -> None:
        self.uow: FakeUnitOfWork[FakeTxT] = FakeUnitOfWork(make_tx)
        self._make_tx = make_tx

    @property
    def view(self) -> FakeTxT:
        """The committed state, for reading (and for arranging a test's starting point)."""
        return self._make_tx(self.uow.state)


class FakeTimers(Generic[KeyT]):
    """A timers port on a fake store's committed timers (key -> due time, epoch seconds), which
    the fake transaction sets and cancels. ``dropped`` lists what the use cases dropped."""

    def __init__(self, pending: Callable[[], dict[KeyT, float]]) -> None:
        self._pending = pending
        self.dropped: list[KeyT] = []

    async def due(self, now: float, limit: int = 100) -> list[KeyT]:
        by_due_time = sorted(self._pending().items(), key=lambda item: item[1])
        return [key for key, due_at in by_due_time if due_at <= now][:limit]

    async def drop(self, key: KeyT) -> None:
        self.dropped.append(key)
        self._pending().pop(key, None)


class FakeRemoteService:
    """Another service behind a port. Each call gives the event loop a turn, as a network call
    would (so concurrent use cases interleave there), then fails with ``fail`` if set (503: the
    service is down), else is recorded in ``calls`` and passed to ``on_call`` (to look at what was
    committed by then)."""

    def __init__(self, on_call: Callable[[str], None] | None = None) -> None:
        self.calls: list[str] = []
        self.fail: AtriumError | None = None
        self.on_call = on_call

    async def answer(self, about: str) -> None:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        self.calls.append(about)
        if self.on_call is not None:
            self.on_call(about)
