"""What a service logged, read from its logger directly.

pytest's ``caplog`` hangs off the root logger, whose handlers ``telemetry.setup`` replaces the first
time a service is built in the process; a handler on the service's own logger is not touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def recorded(name: str, level: int = logging.INFO) -> Iterator[list[logging.LogRecord]]:
    """The records logger ``name`` (and its children) emit at ``level`` or above, as they come."""
    records: list[logging.LogRecord] = []
    logger = logging.getLogger(name)
    handler = _Keep(records)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of an Atrium log record (``extra={"fields": ...}``)."""
    value = getattr(record, "fields", None)
    return value if isinstance(value, dict) else {}
