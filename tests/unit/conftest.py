"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from atrium_video import Room
from tests.support.sdk import ME


@pytest.fixture
async def make_room() -> AsyncIterator[Any]:
    """Rooms that never connect: ``make(**connect_options)`` is a Room in state ``connected``
    with ``ME`` as its local participant, torn down after the test (unit tests of the SDK)."""
    made: list[Room] = []

    def make(**options: Any) -> Room:
        room = Room("token", "ws://127.0.0.1:1/signaling", "room", ice_servers=[], **options)
        room.local_participant.sid = ME
        room.state = "connected"
        made.append(room)
        return room

    yield make
    for room in made:
        await room._teardown(None, emit=False)
