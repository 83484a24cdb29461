"""Keyset paging over an in-memory index, with the cursors and order of atrium_shared.paging.

A fake query port keeps no sorted sets: it builds the members of the index it would read from its
records (``index_member(date_created, sid)``) and pages them here the way ``read_page`` pages a
Redis sorted set, so cursors issued by a fake decode like real ones and a bad one is a ValueError.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from atrium_shared.paging import decode_cursor, encode_cursor, index_member


def page_members(
    members: Iterable[str],
    *,
    created_on_or_after: datetime | None,
    created_before: datetime | None,
    page_size: int,
    cursor: str | None,
) -> tuple[list[str], str | None, str | None]:
    """One page of ``members``, newest first, with the next and previous cursors (or None)."""
    ordered = sorted(set(members))
    low = index_member(created_on_or_after, "") if created_on_or_after else None
    high = index_member(created_before, "") if created_before else None
    direction, anchor = decode_cursor(cursor) if cursor else ("next", None)

    if direction == "next":
        newest_first = [
            m
            for m in reversed(ordered)
            if (low is None or m >= low)
            and (high is None or m < high)
            and (anchor is None or m < anchor)
        ]
        page = newest_first[: page_size + 1]
        has_more = len(page) > page_size
        page = page[:page_size]
        has_before = anchor is not None
    else:
        assert anchor is not None
        oldest_first = [m for m in ordered if m > anchor and (high is None or m < high)]
        window = oldest_first[: page_size + 1]
        has_before = len(window) > page_size
        page = list(reversed(window[:page_size]))
        has_more = True

    next_cursor = encode_cursor("next", page[-1]) if page and has_more else None
    prev_cursor = encode_cursor("prev", page[0]) if page and has_before else None
    return page, next_cursor, prev_cursor
