"""Twilio's date formats: JSON uses whole seconds, status callbacks carry milliseconds."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


class SystemClock:
    """The real clock, for a service's ``Clock`` port (tests inject one they set)."""

    def now(self) -> datetime:
        return utcnow()


def to_json_date(value: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SSZ``, the only form twilio-python parses into a datetime."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_callback_timestamp(value: datetime) -> str:
    """Status-callback ``Timestamp``: ISO 8601 in UTC with milliseconds."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_filter_date(text: str) -> datetime:
    """Parse a list-filter date: ``YYYY-MM-DD``, ``...THH:MM:SSZ`` or with an explicit offset.

    Raises ValueError on anything else; naive values are taken as UTC.
    """
    text = text.strip()
    if _DATE_ONLY.match(text):
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def whole_seconds(start: datetime, end: datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (never negative): how Twilio reports durations."""
    return max(0, math.floor((end - start).total_seconds()))
