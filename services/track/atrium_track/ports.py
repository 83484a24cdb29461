"""What the track use cases need from the outside world, as interfaces.

Adapters (:mod:`atrium_track.adapters`) implement them on Redis and NATS; the unit tier implements
them in memory (``tests/support/fakes/track.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal, Protocol

from atrium_shared.events import DomainEvent
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.track_api import SubscribeRules, SubscriptionsChanged

# A participant's two keyset-paged listings: the tracks it publishes, the tracks it receives.
TrackIndex = Literal["published", "subscribed"]
# One page of an index: the MT SIDs, newest first, and the next and previous cursors.
SidPage = tuple[list[str], str | None, str | None]


class TrackTransaction(Protocol):
    """One decision's view of the track records.

    Every read makes the commit fail, and the decision run again, if what it read changes before
    the commit: a decision that reads a key depends on it. Writes are staged and take effect
    together with the emitted events at the commit, or not at all.
    """

    # Reads --------------------------------------------------------------------------------------
    async def has_left(self, participant_sid: str) -> bool:
        """Whether the participant left the room (it cannot come back)."""
        ...

    async def client_ids(self, participant_sid: str) -> dict[str, str]:
        """SDK track id -> MT SID of each track the participant publishes."""
        ...

    async def track_names(self, participant_sid: str) -> set[str]:
        """The names of the tracks the participant publishes."""
        ...

    async def track(self, sid: str) -> TrackInfo | None: ...

    async def tracks(self, sids: Sequence[str]) -> list[TrackInfo]:
        """The published tracks among ``sids``, in that order (unknown ones left out)."""
        ...

    async def participant(self, sid: str) -> ParticipantInfo | None:
        """A publisher's record, as its events carry it (written when it publishes)."""
        ...

    async def identities(self, participant_sids: Iterable[str]) -> dict[str, str]:
        """PA SID -> identity of those of ``participant_sids`` that have a publisher record."""
        ...

    async def room_participants(self, room_sid: str) -> set[str]:
        """PA SIDs of the participants that joined the room and have not left."""
        ...

    async def room_tracks(self, room_sid: str) -> list[TrackInfo]:
        """Every track published in the room (any order)."""
        ...

    async def rules(self, participant_sid: str) -> SubscribeRules | None:
        """The participant's SubscribeRules, or None when never set."""
        ...

    async def rules_of(self, participant_sids: Sequence[str]) -> dict[str, SubscribeRules]:
        """The SubscribeRules of those of ``participant_sids`` that have set rules."""
        ...

    async def subscriptions(self, participant_sid: str) -> dict[str, datetime]:
        """MT SID -> start of each subscription of the participant."""
        ...

    async def subscribed_since(self, subscriber_sid: str, track_sid: str) -> datetime | None:
        """When ``subscriber_sid`` started receiving ``track_sid``; None when it does not."""
        ...

    async def subscribers(self, track_sid: str) -> set[str]:
        """PA SIDs of the participants that receive the track."""
        ...

    # Staged writes ------------------------------------------------------------------------------
    def save_participant(self, participant: ParticipantInfo) -> None: ...

    def enter_room(self, room_sid: str, participant_sid: str) -> None:
        """The participant takes part in the room's subscriptions from now on."""
        ...

    def add_track(self, track: TrackInfo, client_id: str) -> None: ...

    def update_track(self, track: TrackInfo) -> None: ...

    def remove_track(self, track: TrackInfo, client_id: str | None) -> None:
        """Unpublish a track; its subscriptions are ended apart (:meth:`unsubscribe`)."""
        ...

    def subscribe(self, subscriber_sid: str, track_sid: str, since: datetime) -> None: ...

    def unsubscribe(self, subscriber_sid: str, track_sid: str) -> None:
        """End a subscription this transaction read (:meth:`subscriptions`,
        :meth:`subscribed_since` or :meth:`subscribers`)."""
        ...

    def save_rules(self, rules: SubscribeRules) -> None: ...

    def forget_participant(self, room_sid: str, participant_sid: str) -> None:
        """The participant left: drop its presence, records and rules, remember that it left.
        Its tracks and subscriptions are removed apart."""
        ...

    def emit(self, *events: DomainEvent) -> None:
        """Events committed with the writes, in this order."""
        ...


class TrackQueries(Protocol):
    """Read-only lookups for the REST resources (no transaction, nothing watched)."""

    async def track(self, sid: str) -> TrackInfo | None: ...

    async def tracks(self, sids: Sequence[str]) -> list[TrackInfo]:
        """The published tracks among ``sids``, in that order (unknown ones left out)."""
        ...

    async def sid_by_name(self, participant_sid: str, name: str) -> str | None:
        """The MT SID of the participant's published track of that name."""
        ...

    async def subscribed_since(self, subscriber_sid: str, track_sid: str) -> datetime | None: ...

    async def rules(self, participant_sid: str) -> SubscribeRules | None: ...

    async def page(self, participant_sid: str, index: TrackIndex, window: PageWindow) -> SidPage:
        """One page of one of the participant's indexes; raises ValueError for a cursor that
        was not issued by this port."""
        ...


class PageWindow(Protocol):
    """What a listing request asks for (both list requests of :mod:`atrium_shared.track_api`)."""

    @property
    def created_on_or_after(self) -> datetime | None: ...

    @property
    def created_before(self) -> datetime | None: ...

    @property
    def page_size(self) -> int: ...

    @property
    def cursor(self) -> str | None: ...


class Publisher(Protocol):
    """Messages that are not domain events (those go through the outbox)."""

    async def subscriptions_changed(self, change: SubscriptionsChanged) -> None:
        """Tell every media worker a participant's subscriptions after a rules change."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
