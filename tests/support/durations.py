"""Twilio's durations: whole seconds from a start to an end (``RoomDuration``, a participant's
``Duration``), computed here from the times a resource or an event reports."""

from __future__ import annotations

import math
from datetime import datetime


def whole_seconds(start: datetime, end: datetime) -> int:
    """From ``start`` to ``end`` in whole seconds, rounded down (never negative)."""
    return max(0, math.floor((end - start).total_seconds()))


def rest_durations(start: datetime, end: datetime) -> set[int]:
    """The durations a REST resource showing ``start`` and ``end`` can carry.

    REST shows times in whole seconds, the duration is taken between the exact times, so it is the
    difference of the shown times or one second less (0.9 s after 10.3 s shows as 10 s and 11 s).
    """
    shown = whole_seconds(start, end)
    return {shown, max(0, shown - 1)}
