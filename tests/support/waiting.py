"""Wait on conditions with deadlines, never on fixed sleeps.

``eventually`` takes a probe that returns a value (or an awaitable of one) and polls it until the
value is truthy; ``eventually_sync`` is the same for code that must block (a subprocess's
readiness, a sync test). A probe that raises ``AssertionError`` counts as "not yet" unless
``retry_on`` says otherwise; any other exception ends the wait at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

T = TypeVar("T")

Retried = tuple[type[BaseException], ...]


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
    retry_on: Retried = ...,
) -> T: ...
@overload
async def eventually(
    probe: Callable[[], T],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
    retry_on: Retried = ...,
) -> T: ...
async def eventually(
    probe: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
    retry_on: Retried = (AssertionError,),
) -> Any:
    """Poll ``probe`` until it returns a truthy value (returned); AssertionError at the deadline."""
    poll = _Poll(timeout, message, AssertionError)
    while not poll.done(*await _attempt(probe, retry_on)):
        await asyncio.sleep(interval)
    return poll.value


def eventually_sync(
    probe: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str = "condition",
    retry_on: Retried = (AssertionError,),
    error: Callable[[str], BaseException] = AssertionError,
) -> T:
    """``eventually`` for blocking code; ``error(text)`` is raised at the deadline."""
    poll = _Poll(timeout, message, error)
    while not poll.done(*_attempt_sync(probe, retry_on)):
        time.sleep(interval)
    value: T = poll.value
    return value


async def _attempt(probe: Callable[[], Any], retry_on: Retried) -> tuple[Any, BaseException | None]:
    try:
        value = probe()
        return (await value if inspect.isawaitable(value) else value), None
    except retry_on as exc:
        return None, exc


def _attempt_sync(probe: Callable[[], Any], retry_on: Retried) -> tuple[Any, BaseException | None]:
    try:
        return probe(), None
    except retry_on as exc:
        return None, exc


@dataclass
class _Poll:
    """The deadline of one wait, and what the probe last said."""

    timeout: float
    message: str
    error: Callable[[str], BaseException]
    deadline: float = field(init=False)
    value: Any = None

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def done(self, value: Any, error: BaseException | None) -> bool:
        """True for a truthy ``value``; raises ``error`` once the deadline has passed."""
        self.value = value
        if value and error is None:
            return True
        if time.monotonic() > self.deadline:
            detail = f"last error: {error}" if error is not None else f"last={repr(value)[:500]}"
            raise self.error(
                f"timed out after {self.timeout:g}s waiting for {self.message}; {detail}"
            ) from error
        return False
