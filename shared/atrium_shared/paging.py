"""Keyset paging over Redis sorted sets, newest first, stable while records are added.

Each index is a sorted set whose members are ``{created in microseconds, 17 digits}:{sid}`` with
score 0, read by lexicographic range. A page cursor is the edge member of the page it came from,
so records created between two page reads never shift or repeat the later pages.
"""

from __future__ import annotations

import base64
from datetime import datetime

from redis.asyncio import Redis


def index_member(created: datetime, sid: str) -> str:
    return f"{int(created.timestamp() * 1_000_000):017d}:{sid}"


def member_sid(member: str) -> str:
    return member.split(":", 1)[1]


def _bound(moment: datetime) -> str:
    return f"{int(moment.timestamp() * 1_000_000):017d}:"


def encode_cursor(direction: str, member: str) -> str:
    return base64.urlsafe_b64encode(f"{direction}|{member}".encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str, str]:
    """Raises ValueError on anything that is not a cursor we issued."""
    padded = token + "=" * (-len(token) % 4)
    direction, _, member = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
    if direction not in ("next", "prev") or ":" not in member:
        raise ValueError("bad cursor")
    return direction, member


async def read_page(
    redis: Redis,
    key: str,
    *,
    created_on_or_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
    cursor: str | None,
) -> tuple[list[str], str | None, str | None]:
    """One page of members, newest first, with the next and previous cursors (or None)."""
    low = f"[{_bound(created_on_or_after)}" if created_on_or_after else "-"
    high = f"({_bound(created_before)}" if created_before else "+"
    direction, anchor = decode_cursor(cursor) if cursor else ("next", None)

    if direction == "next":
        upper = high
        if anchor is not None and (high == "+" or anchor < high[1:]):
            upper = f"({anchor}"
        members = await redis.zrange(
            key, upper, low, desc=True, bylex=True, offset=0, num=page_size + 1
        )
        has_more = len(members) > page_size
        members = members[:page_size]
        has_before = anchor is not None
    else:
        members = await redis.zrange(
            key, f"({anchor}", high, bylex=True, offset=0, num=page_size + 1
        )
        has_before = len(members) > page_size
        members = list(reversed(members[:page_size]))
        has_more = True

    next_cursor = encode_cursor("next", members[-1]) if members and has_more else None
    prev_cursor = encode_cursor("prev", members[0]) if members and has_before else None
    return list(members), next_cursor, prev_cursor
