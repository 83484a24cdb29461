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
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last: object = None
    while True:
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last, last_error = value, None
        except retry_on as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(timeout, message, last, last_error)) from last_error
        await asyncio.sleep(interval)


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
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last, last_error = value, None
        except retry_on as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise error(_timed_out(timeout, message, last, last_error)) from last_error
        time.sleep(interval)


def _timed_out(timeout: float, message: str, last: object, error: BaseException | None) -> str:
    detail = f"; last error: {error}" if error is not None else f"; last={repr(last)[:500]}"
    return f"timed out after {timeout:g}s waiting for {message}{detail}"
