"""In-memory fakes of the recording service's ports.

The state is laid out like the Redis adapter's keys (``recording:{RT}``, ``room:{RM}:tracks``,
``room:{RM}:active``...), one value a key, so the unit of work here can do what WATCH does there:
:class:`FakeRecordingUnitOfWork` reruns a decision when a key it read was committed by another
writer meanwhile, and commits only the keys a decision wrote. :meth:`~FakeRecordingUnitOfWork.
interleave` puts another use case between a decision and its commit, which is how a race is
written in a unit test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faststream.nats import NatsBroker

from atrium_recording.bootstrap import RecordingService, bootstrap
from atrium_recording.domain import LiveTrack
from atrium_recording.ports import IndexScope
from atrium_recording.usecases import Timing
from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo, TrackKind
from atrium_shared.paging import index_member, member_sid
from atrium_shared.recording_api import (
    ListRecordingsRequest,
    RecordingCommand,
    RecordingInfo,
    RecordingPage,
    RecordingRules,
    RecordingSettings,
)
from atrium_shared.settings import Settings
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.paging import page_members
from tests.support.fakes.unit_of_work import KeyedFakeTransaction, OptimisticFakeUnitOfWork

ACCOUNT = "AC" + "a" * 32
OTHER_ACCOUNT = "AC" + "b" * 32
ROOM = "RM" + "1" * 32
ALICE = "PA" + "a" * 32
BOB = "PA" + "b" * 32


def recording_key(sid: str) -> str:
    return f"recording:{sid}"


def room_key(sid: str, field: str = "") -> str:
    return f"room:{sid}:{field}" if field else f"room:{sid}"


PROCESSING = "processing"


class FakeRecordingTransaction(KeyedFakeTransaction):
    """RecordingTransaction on the working copy."""

    # Reads --------------------------------------------------------------------------------------
    async def seen(self, event_id: str) -> bool:
        return self._read(f"seen:{event_id}", False)

    async def room(self, room_sid: str) -> RoomInfo | None:
        return self._read(room_key(room_sid), None)

    async def rules(self, room_sid: str) -> RecordingRules | None:
        return self._read(room_key(room_sid, "rules"), None)

    async def live_tracks(self, room_sid: str) -> dict[str, LiveTrack]:
        return self._read(room_key(room_sid, "tracks"), {})

    async def active(self, room_sid: str) -> dict[str, str]:
        return self._read(room_key(room_sid, "active"), {})

    async def recording(self, sid: str) -> RecordingInfo | None:
        return self._read(recording_key(sid), None)

    async def recordings(self, sids: Sequence[str]) -> list[RecordingInfo]:
        found = [await self.recording(sid) for sid in sids]
        return [r for r in found if r is not None]

    async def settings(self, account_sid: str) -> RecordingSettings | None:
        return self._read(f"settings:{account_sid}", None)

    async def next_version(self, room_sid: str) -> int:
        version = self._read(room_key(room_sid, "version"), 0) + 1
        self._put(room_key(room_sid, "version"), version)
        return version

    # Staged writes (here: on the working copy, committed by the unit of work) -------------------
    def mark_seen(self, event_id: str) -> None:
        self._put(f"seen:{event_id}", True)

    def save_room(self, room: RoomInfo) -> None:
        self._put(room_key(room.sid), room)

    def end_room(self, room: RoomInfo) -> None:
        self._put(room_key(room.sid), room)
        self._delete(room_key(room.sid, "tracks"), room_key(room.sid, "active"))

    def save_rules(self, rules: RecordingRules) -> None:
        self._put(room_key(rules.room_sid, "rules"), rules)

    def add_live_track(self, live: LiveTrack) -> None:
        key = room_key(live.track.room_sid, "tracks")
        self._put(key, {**self.state.get(key, {}), live.track.sid: live})

    def remove_live_tracks(self, room_sid: str, track_sids: Sequence[str]) -> None:
        key = room_key(room_sid, "tracks")
        self._put(key, {k: v for k, v in self.state.get(key, {}).items() if k not in track_sids})

    def activate(self, room_sid: str, track_sid: str, recording_sid: str) -> None:
        key = room_key(room_sid, "active")
        self._put(key, {**self.state.get(key, {}), track_sid: recording_sid})

    def deactivate(self, room_sid: str, track_sids: Sequence[str]) -> None:
        key = room_key(room_sid, "active")
        self._put(key, {k: v for k, v in self.state.get(key, {}).items() if k not in track_sids})

    def add_recording(self, recording: RecordingInfo) -> None:
        self._put(recording_key(recording.sid), recording)
        if recording.status == "processing":
            self._put(PROCESSING, self.state.get(PROCESSING, set()) | {recording.sid})

    def save_recording(self, recording: RecordingInfo, previous: RecordingInfo) -> None:
        # The Redis transaction writes over the record it read: fail here the same way.
        assert recording_key(recording.sid) in self.read_keys, "not read"
        self._put(recording_key(recording.sid), recording)
        if recording.status != "processing" and previous.status == "processing":
            self._put(PROCESSING, self.state.get(PROCESSING, set()) - {recording.sid})

    def save_settings(self, settings: RecordingSettings) -> None:
        self._put(f"settings:{settings.account_sid}", settings)


class FakeRecordingUnitOfWork(OptimisticFakeUnitOfWork[FakeRecordingTransaction]):
    def __init__(self) -> None:
        super().__init__(FakeRecordingTransaction)


class FakeRecordingStore:
    """The recording service's storage in memory: ``uow``, and the query port on its state."""

    def __init__(self) -> None:
        self.uow = FakeRecordingUnitOfWork()
        self.queries = FakeRecordingQueries(self)

    @property
    def view(self) -> FakeRecordingTransaction:
        """The committed state, for reading (and for arranging a test's starting point)."""
        return FakeRecordingTransaction(self.uow.state)

    def recordings(self) -> list[RecordingInfo]:
        """Every recording, oldest first."""
        found = [v for k, v in self.uow.state.items() if k.startswith("recording:")]
        return sorted(found, key=lambda r: (r.date_created, r.sid))

    def active(self, room_sid: str = ROOM) -> dict[str, str]:
        active: dict[str, str] = self.uow.state.get(room_key(room_sid, "active"), {})
        return dict(active)

    def live(self, room_sid: str = ROOM) -> set[str]:
        return set(self.uow.state.get(room_key(room_sid, "tracks"), {}))


def _in_scope(recording: RecordingInfo, scope: IndexScope) -> bool:
    kind, sid = scope
    return {
        "account": recording.account_sid,
        "room": recording.room_sid,
        "participant": recording.participant_sid,
        "track": recording.source_sid,
    }[kind] == sid


class FakeRecordingQueries:
    def __init__(self, store: FakeRecordingStore) -> None:
        self.store = store
        self.pages: list[IndexScope] = []

    async def recording(self, sid: str) -> RecordingInfo | None:
        return await self.store.view.recording(sid)

    async def room(self, room_sid: str) -> RoomInfo | None:
        return await self.store.view.room(room_sid)

    async def rules(self, room_sid: str) -> RecordingRules | None:
        return await self.store.view.rules(room_sid)

    async def settings(self, account_sid: str) -> RecordingSettings | None:
        return await self.store.view.settings(account_sid)

    async def processing(self) -> list[RecordingInfo]:
        sids = sorted(self.store.uow.state.get(PROCESSING, set()))
        return await self.store.view.recordings(sids)

    async def page(
        self,
        scope: IndexScope,
        request: ListRecordingsRequest,
        keep: Callable[[RecordingInfo], bool],
    ) -> RecordingPage:
        self.pages.append(scope)
        by_member = {
            index_member(r.date_created, r.sid): r
            for r in self.store.recordings()
            if _in_scope(r, scope) and keep(r)
        }
        found, next_cursor, prev_cursor = page_members(
            by_member,
            created_on_or_after=request.created_after,
            created_before=request.created_before,
            page_size=request.page_size,
            cursor=request.cursor,
        )
        items = [by_member[m] for m in found]
        assert all(member_sid(m) == r.sid for m, r in zip(found, items, strict=True))
        return RecordingPage(items=items, next_cursor=next_cursor, previous_cursor=prev_cursor)


class FakeRooms:
    """The room service: the rooms it knows; ``fail`` makes it unreachable (503)."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomInfo] = {}
        self.calls: list[str] = []
        self.fail: AtriumError | None = None

    def add(self, room: RoomInfo) -> RoomInfo:
        self.rooms[room.sid] = room
        return room

    async def fetch(self, account_sid: str, room_sid: str) -> RoomInfo | None:
        self.calls.append(room_sid)
        if self.fail is not None:
            raise self.fail
        for room in self.rooms.values():
            if room.account_sid == account_sid and room_sid in (room.sid, room.unique_name):
                return room
        return None


class FakePublisher:
    """Records what would go to the media workers."""

    def __init__(self) -> None:
        self.commands: list[RecordingCommand] = []

    async def command(self, command: RecordingCommand) -> None:
        self.commands.append(command)

    @property
    def last(self) -> RecordingCommand:
        return self.commands[-1]


class FakeMediaStore:
    """Deletes by recording SID; presigns S3 recordings; ``fail`` makes it unavailable."""

    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.fail: AtriumError | None = None

    async def delete(self, recording: RecordingInfo) -> None:
        if self.fail is not None:
            raise self.fail
        self.deleted.append(recording.sid)

    async def presign(self, recording: RecordingInfo, expires_in: int) -> str | None:
        if self.fail is not None:
            raise self.fail
        if recording.storage.kind != "s3":
            return None
        return f"https://{recording.storage.bucket}.example/{recording.media_key}?e={expires_in}"


class FakeWorkers:
    def __init__(self, *live: str) -> None:
        self.live = set(live)

    async def is_live(self, worker_id: str) -> bool:
        return worker_id in self.live


STORAGE_DOWN = AtriumError(errors.SERVICE_UNAVAILABLE, "Recording storage unavailable", 503)


@dataclass
class RecordingFakes:
    """Every port of the recording service in memory; ``service()`` wires one replica."""

    store: FakeRecordingStore = field(default_factory=FakeRecordingStore)
    rooms: FakeRooms = field(default_factory=FakeRooms)
    publisher: FakePublisher = field(default_factory=FakePublisher)
    media: FakeMediaStore = field(default_factory=FakeMediaStore)
    workers: FakeWorkers = field(default_factory=lambda: FakeWorkers("worker-1"))
    clock: FakeClock = field(default_factory=FakeClock)
    timing: Timing = field(default_factory=Timing)

    def service(
        self,
        settings: Settings | None = None,
        *,
        broker: NatsBroker | None = None,
        publisher: bool = True,
    ) -> RecordingService:
        """``publisher=False``: the real NATS publisher (handler tests listen for it)."""
        return bootstrap(
            settings if settings is not None else Settings(),
            broker=broker if broker is not None else NatsBroker(),
            uow=self.store.uow,
            queries=self.store.queries,
            rooms=self.rooms,
            publisher=self.publisher if publisher else None,
            media=self.media,
            workers=self.workers,
            clock=self.clock,
            timing=self.timing,
        )

    @property
    def committed_types(self) -> list[str]:
        return [event.event_type for event in self.store.uow.committed]


# Records as the other services' events carry them ----------------------------------------------
def room_info(
    clock: FakeClock,
    *,
    sid: str = ROOM,
    account_sid: str = ACCOUNT,
    record: bool = False,
    rules: list[dict[str, Any]] | None = None,
    status_callback: str | None = "https://app.example.com/status",
) -> RoomInfo:
    at = clock.now()
    return RoomInfo(
        sid=sid,
        account_sid=account_sid,
        unique_name=f"room-{sid[-4:]}",
        date_created=at,
        date_updated=at,
        record_participants_on_connect=record,
        recording_rules=rules if rules is not None else [],
        status_callback=status_callback,
        version=1,
    )


def participant_info(
    clock: FakeClock, sid: str, identity: str, *, room_sid: str = ROOM, account_sid: str = ACCOUNT
) -> ParticipantInfo:
    at = clock.now()
    return ParticipantInfo(
        sid=sid,
        room_sid=room_sid,
        account_sid=account_sid,
        identity=identity,
        date_created=at,
        date_updated=at,
        start_time=at,
    )


def track_info(
    clock: FakeClock,
    sid: str,
    participant: ParticipantInfo,
    name: str,
    kind: TrackKind,
    at: datetime | None = None,
) -> TrackInfo:
    at = at if at is not None else clock.now()
    return TrackInfo(
        sid=sid,
        room_sid=participant.room_sid,
        account_sid=participant.account_sid,
        participant_sid=participant.sid,
        name=name,
        kind=kind,
        date_created=at,
        date_updated=at,
    )
