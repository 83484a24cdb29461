"""Closed-loop load: N workers, each sending its next request as soon as the last one answered.

Give each worker its own HTTP client (one connection): a single httpx.AsyncClient shared by 32
workers spends most of its time contending on its connection pool (p99 > 1 s against a server
that answers in a few ms), which would measure httpx rather than the server.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# ``send(worker, i)`` sends request number ``i`` from worker number ``worker``; it returns None on
# success or a short error description.
Send = Callable[[int, int], Awaitable[str | None]]


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


async def run_load(
    send: Send,
    *,
    concurrency: int,
    count: int,
    max_seconds: float,
    on_done: Callable[[], None] | None = None,
) -> LoadResult:
    """At most ``count`` requests; no new one starts after ``max_seconds``."""
    result = LoadResult()
    numbers = itertools.count()
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker(worker_number: int) -> None:
        while time.perf_counter() < deadline:
            i = next(numbers)
            if i >= count:
                return
            t0 = time.perf_counter()
            try:
                error = await send(worker_number, i)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - t0
            if error is None:
                result.latencies_s.append(elapsed)
            else:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(error)
            if on_done is not None:
                on_done()

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    result.elapsed_s = time.perf_counter() - started
    return result
