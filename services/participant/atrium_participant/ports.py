"""What the participant use cases need from the outside world, as interfaces only.

The adapters (:mod:`atrium_participant.adapters`) implement them on Redis and NATS; the unit tier
implements them in memory (``tests/support/fakes/participant.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from atrium_shared.events import DomainEvent
from atrium_shared.models import ParticipantInfo


class ParticipantTransaction(Protocol):
    """One attempt at a participant change: reads, then staged writes and events committed
    together. Reads make the commit fail (and the decision run again) if what they read changes
    before it.

    A room's seats map each connected identity to its participant: the count admission checks
    against the room's capacity.
    """

    async def participant(self, sid: str) -> ParticipantInfo | None: ...

    async def seat_count(self, room_sid: str) -> int: ...

    async def seat_holder(self, room_sid: str, identity: str) -> str | None:
        """The SID of the participant holding the identity's seat in the room."""
        ...

    def add_participant(self, participant: ParticipantInfo) -> None:
        """Store a newly connected participant; it takes its identity's seat."""
        ...

    def update_participant(self, before: ParticipantInfo, after: ParticipantInfo) -> None:
        """Store a changed participant (its seat is left as it is)."""
        ...

    def release_seat(self, participant: ParticipantInfo) -> None: ...

    def schedule_max_duration(self, participant_sid: str, due_at: float) -> None:
        """Disconnect the participant at ``due_at`` (epoch seconds): MaxParticipantDuration."""
        ...

    def cancel_max_duration(self, participant_sid: str) -> None: ...

    def emit(self, *events: DomainEvent) -> None: ...


class ParticipantQueries(Protocol):
    """Reads outside a transaction: lookups before a change, REST fetches and listings."""

    async def get(self, sid: str) -> ParticipantInfo | None: ...

    async def seat_holder(self, room_sid: str, identity: str) -> str | None: ...

    async def seated(self, room_sid: str) -> list[str]:
        """SIDs of the participants holding the room's seats (those connected)."""
        ...

    async def latest_with_identity(self, room_sid: str, identity: str) -> str | None:
        """The newest participant with this identity: a connected one first, else the newest
        disconnected one."""
        ...

    async def list_page(
        self,
        room_sid: str,
        status: str,
        identity: str | None,
        *,
        created_on_or_after: datetime | None,
        created_before: datetime | None,
        page_size: int,
        cursor: str | None,
    ) -> tuple[list[ParticipantInfo], str | None, str | None]:
        """Newest first: (participants, next cursor, previous cursor). ValueError: a bad
        cursor."""
        ...


class DurationTimers(Protocol):
    """MaxParticipantDuration deadlines that are due; set and cancelled through
    :class:`ParticipantTransaction`."""

    async def due(self, now: float, limit: int = 100) -> list[str]:
        """SIDs of the participants whose deadline passed."""
        ...

    async def drop(self, participant_sid: str) -> None: ...


class TracksPort(Protocol):
    async def leave(self, account_sid: str, room_sid: str, participant_sid: str) -> int:
        """Unpublish a participant's tracks before it is disconnected: Twilio sends its
        ``track-removed`` callbacks before ``participant-disconnected``. Returns how many."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
