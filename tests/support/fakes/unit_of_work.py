"""The in-memory unit of work every service's fake transaction builds on.

State is a plain dict of records. ``decide`` works on a copy; the copy replaces the state and its
events are appended to :attr:`FakeUnitOfWork.committed` only when ``decide`` returns, so a use case
that raises half-way changes nothing, as with Redis's MULTI.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from atrium_shared.events import DomainEvent

ResultT = TypeVar("ResultT")


class FakeTransaction:
    """Base of a service's fake transaction: ``state`` is the working copy it reads and writes."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.emitted: list[DomainEvent] = []

    def emit(self, *events: DomainEvent) -> None:
        self.emitted.extend(events)


FakeTxT = TypeVar("FakeTxT", bound=FakeTransaction)


class FakeUnitOfWork(Generic[FakeTxT]):
    def __init__(self, make_tx: Callable[[dict[str, Any]], FakeTxT]) -> None:
        self.state: dict[str, Any] = {}
        self.committed: list[DomainEvent] = []
        self.commits = 0
        self._make_tx = make_tx

    async def run(self, decide: Callable[[FakeTxT], Awaitable[ResultT]]) -> ResultT:
        tx = self._make_tx(copy.deepcopy(self.state))
        result = await decide(tx)
        self.state = tx.state
        self.committed.extend(tx.emitted)
        self.commits += 1
        return result

    def events_of(self, event_type: str) -> list[DomainEvent]:
        return [event for event in self.committed if event.event_type == event_type]
