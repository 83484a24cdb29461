"""A small event emitter: ``on``/``once``/``off`` with sync or async handlers."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("atrium_video")

Handler = Callable[..., Any]


class EventEmitter:
    """Handlers are called in registration order; coroutine results are scheduled as tasks.

    An exception raised by a handler is logged and never reaches the SDK's own machinery.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register ``handler`` for ``event``; usable as a decorator (``@room.on("...")``)."""
        if handler is None:

            def decorator(func: Handler) -> Handler:
                self.on(event, func)
                return func

            return decorator
        self._handlers.setdefault(event, []).append(handler)
        return handler

    def once(self, event: str, handler: Handler) -> Handler:
        """Register ``handler`` for the next ``event`` only."""

        def wrapper(*args: Any) -> Any:
            self.off(event, wrapper)
            return handler(*args)

        wrapper.__wrapped__ = handler  # type: ignore[attr-defined]
        return self.on(event, wrapper)  # type: ignore[no-any-return]

    def off(self, event: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (or every handler of ``event`` when omitted)."""
        if handler is None:
            self._handlers.pop(event, None)
            return
        handlers = self._handlers.get(event, [])
        for registered in list(handlers):
            if registered is handler or getattr(registered, "__wrapped__", None) is handler:
                handlers.remove(registered)
                break

    def listener_count(self, event: str) -> int:
        """How many handlers ``event`` has."""
        return len(self._handlers.get(event, []))

    def emit(self, event: str, *args: Any) -> None:
        """Call every handler of ``event`` with ``args`` (the SDK emits; applications listen)."""
        for handler in list(self._handlers.get(event, [])):
            try:
                result = handler(*args)
            except Exception:
                log.exception("handler for %r failed", event)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("async handler failed", exc_info=task.exception())
