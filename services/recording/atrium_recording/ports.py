"""What the recording use cases need from the outside world, as interfaces.

Adapters (:mod:`atrium_recording.adapters`) implement them on Redis, NATS and the recordings
folder; the unit tier implements them in memory (``tests/support/fakes/recording.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal, Protocol

from atrium_recording.domain import LiveTrack
from atrium_shared.events import DomainEvent
from atrium_shared.models import RoomInfo
from atrium_shared.recording_api import (
    ListRecordingsRequest,
    RecordingCommand,
    RecordingInfo,
    RecordingPage,
    RecordingRules,
    RecordingSettings,
)

# The indexes a listing reads, newest first: every recording of an account, of a room, of a
# participant, of a track (the narrowest one a request's filters allow).
IndexScope = tuple[Literal["account", "room", "participant", "track"], str]


class RecordingTransaction(Protocol):
    """One decision's view of the recording service's records.

    Every read makes the commit fail, and the decision run again, if what it read changes before
    the commit. Writes are staged and take effect together with the emitted events at the
    commit, or not at all.
    """

    # Reads --------------------------------------------------------------------------------------
    async def seen(self, event_id: str) -> bool:
        """Whether a consumed event was already applied (JetStream redelivers)."""
        ...

    async def room(self, room_sid: str) -> RoomInfo | None: ...

    async def rules(self, room_sid: str) -> RecordingRules | None:
        """The room's RecordingRules as set through REST; None until then."""
        ...

    async def live_tracks(self, room_sid: str) -> dict[str, LiveTrack]:
        """MT SID -> each track published in the room now."""
        ...

    async def active(self, room_sid: str) -> dict[str, str]:
        """MT SID -> the recording that should be writing the track now."""
        ...

    async def recording(self, sid: str) -> RecordingInfo | None: ...

    async def recordings(self, sids: Sequence[str]) -> list[RecordingInfo]:
        """The recordings among ``sids``, in that order (unknown ones left out)."""
        ...

    async def settings(self, account_sid: str) -> RecordingSettings | None: ...

    async def next_version(self, room_sid: str) -> int:
        """The version of the room's next RecordingCommand (staged: call once per decision)."""
        ...

    # Staged writes ------------------------------------------------------------------------------
    def mark_seen(self, event_id: str) -> None: ...

    def save_room(self, room: RoomInfo) -> None: ...

    def end_room(self, room: RoomInfo) -> None:
        """The room ended: keep its record (and rules) a while, forget its live tracks."""
        ...

    def save_rules(self, rules: RecordingRules) -> None: ...

    def add_live_track(self, live: LiveTrack) -> None: ...

    def remove_live_tracks(self, room_sid: str, track_sids: Sequence[str]) -> None: ...

    def activate(self, room_sid: str, track_sid: str, recording_sid: str) -> None: ...

    def deactivate(self, room_sid: str, track_sids: Sequence[str]) -> None: ...

    def add_recording(self, recording: RecordingInfo) -> None:
        """A new recording, with its place in every listing index."""
        ...

    def save_recording(self, recording: RecordingInfo, previous: RecordingInfo) -> None:
        """A changed recording (``previous``: as this transaction read it)."""
        ...

    def save_settings(self, settings: RecordingSettings) -> None: ...

    def emit(self, *events: DomainEvent) -> None:
        """Events committed with the writes, in this order."""
        ...


class RecordingQueries(Protocol):
    """Read-only lookups (no transaction, nothing watched)."""

    async def recording(self, sid: str) -> RecordingInfo | None: ...

    async def room(self, room_sid: str) -> RoomInfo | None: ...

    async def rules(self, room_sid: str) -> RecordingRules | None: ...

    async def settings(self, account_sid: str) -> RecordingSettings | None: ...

    async def processing(self) -> list[RecordingInfo]:
        """Every recording in ``processing``, for the sweep."""
        ...

    async def page(
        self,
        scope: IndexScope,
        request: ListRecordingsRequest,
        keep: Callable[[RecordingInfo], bool],
    ) -> RecordingPage:
        """One page, newest first, of the recordings of ``scope`` created in the request's date
        window for which ``keep`` is true; raises ValueError for a cursor this port did not
        issue."""
        ...


class RoomsPort(Protocol):
    """The room service, for a room this service has not heard ``room-created`` of."""

    async def fetch(self, account_sid: str, room_sid: str) -> RoomInfo | None:
        """The room, or None when the account has no such room (raises 503 when the room
        service cannot be reached)."""
        ...


class Publisher(Protocol):
    """Messages that are not domain events (those go through the outbox)."""

    async def command(self, command: RecordingCommand) -> None:
        """Tell every media worker what a room records now."""
        ...


class MediaStore(Protocol):
    """Where recordings' files are: the local folder, or an S3-compatible bucket."""

    async def delete(self, recording: RecordingInfo) -> None:
        """Remove the recording's file (nothing to do when it is not there)."""
        ...

    async def presign(self, recording: RecordingInfo, expires_in: int) -> str | None:
        """A URL the file downloads from for ``expires_in`` seconds; None when the gateway
        serves it itself (local storage)."""
        ...


class Workers(Protocol):
    async def is_live(self, worker_id: str) -> bool:
        """Whether the media worker still heartbeats (:mod:`atrium_shared.workers`)."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
