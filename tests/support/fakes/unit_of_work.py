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
T = TypeVar("T")


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


class KeyedFakeTransaction(FakeTransaction):
    """A fake transaction over keyed records: ``read_keys`` and ``written_keys`` are what a WATCH
    and a MULTI would name, for :class:`OptimisticFakeUnitOfWork`."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(state)
        self.read_keys: set[str] = set()
        self.written_keys: set[str] = set()

    def _read(self, key: str, default: T) -> T:
        self.read_keys.add(key)
        value: T = self.state.get(key, default)
        return copy.copy(value)

    def _put(self, key: str, value: object) -> None:
        self.written_keys.add(key)
        self.state[key] = value

    def _delete(self, *keys: str) -> None:
        for key in keys:
            self.written_keys.add(key)
            self.state.pop(key, None)


KeyedTxT = TypeVar("KeyedTxT", bound=KeyedFakeTransaction)


class OptimisticFakeUnitOfWork(FakeUnitOfWork[KeyedTxT]):
    """Optimistic like WATCH/MULTI: a decision that read a key another commit changed since it
    started runs again (``conflicts`` counts the reruns); a commit writes only its keys, and a
    decision that staged nothing commits nothing (``commits`` does not count it). ``fail`` makes
    the next runs raise (Redis down); ``interleave`` expresses races."""

    def __init__(self, make_tx: Callable[[dict[str, Any]], KeyedTxT]) -> None:
        super().__init__(make_tx)
        self.conflicts = 0
        self.fail: Exception | None = None
        self._versions: dict[str, int] = {}
        self._between: list[Callable[[], Awaitable[object]]] = []

    def interleave(self, action: Callable[[], Awaitable[object]]) -> None:
        """Run ``action`` (to its end) once, after the next decision and before its commit."""
        self._between.append(action)

    async def run(self, decide: Callable[[KeyedTxT], Awaitable[ResultT]]) -> ResultT:
        while True:
            if self.fail is not None:
                raise self.fail
            started = dict(self._versions)
            tx = self._make_tx(copy.deepcopy(self.state))
            result = await decide(tx)
            if self._between:
                await self._between.pop(0)()
            if any(self._versions.get(k) != started.get(k) for k in tx.read_keys):
                self.conflicts += 1
                continue
            if not tx.written_keys and not tx.emitted:
                return result  # nothing staged: like the Redis transaction, no commit at all
            for key in tx.written_keys:
                if key in tx.state:
                    self.state[key] = tx.state[key]
                else:
                    self.state.pop(key, None)
                self._versions[key] = self._versions.get(key, 0) + 1
            self.committed.extend(tx.emitted)
            self.commits += 1
            return result
