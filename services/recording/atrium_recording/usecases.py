"""The recording service's use cases: what each room records, the records, their media.

Every room's decision runs through one path (:meth:`RecordingUseCases._apply`): its rules applied
to its live tracks, compared with the recordings writing now, give the recordings to start and to
stop; both are committed (records, the room's active set, the next command version) in one unit
of work, then the room's whole state is broadcast to the media workers as a RecordingCommand.
``track-added``, ``track-removed``, ``participant-disconnected``, ``room-ended`` and a
RecordingRules update all come down to it. A consumed event is applied once (its id is committed
with its effects).

The worker reports each recording's fate (``started``, ``completed``, ``failed``); the events
``recording-started`` / ``-completed`` / ``-failed`` are committed with those changes. The sweep
fails what no worker will ever finish: the recordings of a worker that stopped heartbeating, and a
recording that was stopped before any worker reported it started. It also repeats the command of
a room whose new recordings no worker has reported yet (a broadcast may have been missed).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from atrium_recording import domain
from atrium_recording.domain import LiveTrack
from atrium_recording.ports import (
    Clock,
    IndexScope,
    MediaStore,
    Publisher,
    RecordingQueries,
    RecordingTransaction,
    RoomsPort,
    Workers,
)
from atrium_shared import errors, sids
from atrium_shared.errors import AtriumError
from atrium_shared.events import (
    DomainEvent,
    ParticipantAnonymized,
    ParticipantDisconnected,
    RoomCreated,
    RoomEnded,
    TrackAdded,
    TrackRemoved,
)
from atrium_shared.models import RoomInfo
from atrium_shared.recording_api import (
    DeleteRecordingRequest,
    FailedOperation,
    FetchRecordingRequest,
    FetchRecordingRulesRequest,
    FetchRecordingSettingsRequest,
    ListRecordingsRequest,
    RecordingCommand,
    RecordingInfo,
    RecordingMediaLocation,
    RecordingMediaRequest,
    RecordingPage,
    RecordingReport,
    RecordingRule,
    RecordingRules,
    RecordingSettings,
    SetRecordingRulesRequest,
    SetRecordingSettingsRequest,
)
from atrium_shared.unit_of_work import UnitOfWork

log = logging.getLogger("atrium.recording")


@dataclass(frozen=True)
class Timing:
    """The sweep's patience. A stopped recording that no worker reported started within
    ``stop_grace`` fails (RecordingStart); a new recording no worker reported started has its
    room's command repeated every ``resend_every`` for ``resend_for``."""

    stop_grace: timedelta = timedelta(seconds=15)
    resend_every: timedelta = timedelta(seconds=2)
    resend_for: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class StorageDefaults:
    """The operator's bucket (``Settings.recordings_s3_url``), used when an account's
    RecordingSettings name none; local storage when unset. The region goes into every new S3
    target that names none."""

    s3_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None


def _recording_path(sid: str, room_sid: str | None) -> str:
    return f"/Rooms/{room_sid}/Recordings/{sid}" if room_sid else f"/Recordings/{sid}"


class RecordingUseCases:
    def __init__(
        self,
        uow: UnitOfWork[RecordingTransaction],
        queries: RecordingQueries,
        rooms: RoomsPort,
        publisher: Publisher,
        media: MediaStore,
        workers: Workers,
        clock: Clock,
        storage: StorageDefaults | None = None,
        timing: Timing | None = None,
        new_sid: Callable[[], str] = lambda: sids.new_sid(sids.RECORDING),
    ) -> None:
        self.uow = uow
        self.queries = queries
        self.rooms = rooms
        self.publisher = publisher
        self.media = media
        self.workers = workers
        self.clock = clock
        self.storage = storage if storage is not None else StorageDefaults()
        self.timing = timing if timing is not None else Timing()
        self._new_sid = new_sid
        # Room SID -> when the sweep last repeated its command (this replica).
        self._resent: dict[str, float] = {}

    # Events -------------------------------------------------------------------------------------
    async def on_event(self, event: DomainEvent) -> None:
        """Apply a consumed event (others are not this service's concern)."""
        if isinstance(event, RoomCreated):
            await self._room_created(event)
        elif isinstance(event, TrackAdded):
            await self._track_added(event)
        elif isinstance(event, TrackRemoved):
            await self._changed(event, lambda live: [event.track.sid])
        elif isinstance(event, ParticipantDisconnected):
            await self._changed(
                event, lambda live: domain.participant_tracks(live, event.participant)
            )
        elif isinstance(event, RoomEnded):
            await self._room_ended(event)
        elif isinstance(event, ParticipantAnonymized):
            await self._anonymized(event)

    async def _room_created(self, event: RoomCreated) -> None:
        async def decide(tx: RecordingTransaction) -> None:
            if await tx.room(event.room_sid) is None:
                tx.save_room(event.room)

        await self.uow.run(decide)

    async def _track_added(self, event: TrackAdded) -> None:
        fetched = await self._find_room(event.account_sid, event.room_sid)
        if fetched is None:
            log.warning(
                "track-added in room %s, which the room service does not know", event.room_sid
            )
            return
        live = LiveTrack(track=event.track, identity=event.participant.identity)

        async def decide(tx: RecordingTransaction) -> RecordingCommand | None:
            if await tx.seen(event.event_id):
                return None
            tx.mark_seen(event.event_id)
            room = await self._room_in(tx, fetched)
            if room.status != "in-progress":
                return None
            tracks = await tx.live_tracks(room.sid)
            tracks[live.track.sid] = live
            tx.add_live_track(live)
            return await self._apply(tx, room, tracks)

        await self._broadcast(await self.uow.run(decide))

    async def _changed(
        self,
        event: TrackRemoved | ParticipantDisconnected,
        gone: Callable[[dict[str, LiveTrack]], list[str]],
    ) -> None:
        """Tracks left the room: those of them being recorded stop."""

        async def decide(tx: RecordingTransaction) -> RecordingCommand | None:
            if await tx.seen(event.event_id):
                return None
            room = await tx.room(event.room_sid)
            if room is None or room.account_sid != event.account_sid:
                return None  # never heard of: none of its tracks is recorded
            tx.mark_seen(event.event_id)
            tracks = await tx.live_tracks(room.sid)
            removed = [sid for sid in gone(tracks) if sid in tracks]
            if not removed:
                return None
            tx.remove_live_tracks(room.sid, removed)
            for sid in removed:
                del tracks[sid]
            return await self._apply(tx, room, tracks)

        await self._broadcast(await self.uow.run(decide))

    async def _anonymized(self, event: ParticipantAnonymized) -> None:
        """REST Anonymize: the participant's recordings keep its SID where they kept its
        identity (what their ``recording-*`` callbacks name). Idempotent: a redelivered event
        finds nothing left to change."""
        sid = event.participant.sid
        request = ListRecordingsRequest(
            account_sid=event.account_sid, grouping_sids=[sid], page_size=100
        )
        while True:
            page = await self.queries.page(
                ("participant", sid), request, lambda r: r.participant_identity != sid
            )
            for found in page.items:

                async def decide(tx: RecordingTransaction, recording_sid: str = found.sid) -> None:
                    current = await tx.recording(recording_sid)
                    if current is None or current.participant_identity == sid:
                        return
                    tx.save_recording(
                        current.model_copy(update={"participant_identity": sid}), current
                    )

                await self.uow.run(decide)
            if page.next_cursor is None:
                return
            request = request.model_copy(update={"cursor": page.next_cursor})

    async def _room_ended(self, event: RoomEnded) -> None:
        async def decide(tx: RecordingTransaction) -> RecordingCommand | None:
            if await tx.seen(event.event_id):
                return None
            tx.mark_seen(event.event_id)
            known = await tx.room(event.room_sid)
            room = (
                event.room
                if known is None
                else known.model_copy(
                    update={"status": event.room.status, "end_time": event.room.end_time}
                )
            )
            stop = await self._apply(tx, room, {})
            tx.end_room(room)
            return stop

        await self._broadcast(await self.uow.run(decide))

    # The one decision -----------------------------------------------------------------------------
    async def _apply(
        self,
        tx: RecordingTransaction,
        room: RoomInfo,
        live: dict[str, LiveTrack],
        rules: list[RecordingRule] | None = None,
    ) -> RecordingCommand | None:
        """Start and stop recordings so that exactly the live tracks the rules select are being
        recorded; the command for the workers, or None when nothing changes."""
        if rules is None:
            rules = domain.room_rules(room, await tx.rules(room.sid)).rules
        active = await tx.active(room.sid)
        plan = domain.plan(live, active, rules)
        if plan.empty:
            return None
        now = self.clock.now()
        for recording in await tx.recordings(list(plan.stop.values())):
            if recording.status == "processing":
                tx.save_recording(domain.stop_requested(recording, now), recording)
        tx.deactivate(room.sid, list(plan.stop))
        started: list[RecordingInfo] = []
        if plan.start:
            target = domain.storage_target(
                await tx.settings(room.account_sid),
                self.storage.s3_url,
                self.storage.s3_endpoint_url,
                self.storage.s3_region,
            )
            for track in plan.start:
                recording = domain.new_recording(self._new_sid(), track, room, target, now)
                tx.add_recording(recording)
                tx.activate(room.sid, track.track.sid, recording.sid)
                started.append(recording)
        kept = [sid for track, sid in active.items() if track not in plan.stop]
        running = [*await tx.recordings(kept), *started]
        return domain.command(room, await tx.next_version(room.sid), running, plan.stop.values())

    async def _broadcast(self, command: RecordingCommand | None) -> None:
        if command is not None:
            await self.publisher.command(command)

    # Rooms ----------------------------------------------------------------------------------------
    async def _find_room(self, account_sid: str, room: str) -> RoomInfo | None:
        """A room by SID (or, for REST, unique name) as this service knows it, else as the room
        service does; None when the account has no such room."""
        found = await self.queries.room(room) if sids.is_sid(room, sids.ROOM) else None
        if found is None:
            found = await self.rooms.fetch(account_sid, room)
        if found is None or found.account_sid != account_sid:
            return None
        return found

    @staticmethod
    async def _room_in(tx: RecordingTransaction, fetched: RoomInfo) -> RoomInfo:
        """The room as committed, or ``fetched`` (from the room service) saved now."""
        room = await tx.room(fetched.sid)
        if room is None:
            tx.save_room(fetched)
            return fetched
        return room

    async def _rest_room(self, account_sid: str, room: str) -> RoomInfo:
        found = await self._find_room(account_sid, room)
        if found is None:
            raise errors.not_found(f"/Rooms/{room}/RecordingRules")
        return found

    # RecordingRules -------------------------------------------------------------------------------
    async def get_rules(self, request: FetchRecordingRulesRequest) -> RecordingRules:
        room = await self._rest_room(request.account_sid, request.room_sid)
        return domain.room_rules(room, await self.queries.rules(room.sid))

    async def set_rules(self, request: SetRecordingRulesRequest) -> RecordingRules:
        """Validate (53120 changes nothing) and store the room's rules; the live tracks start or
        stop being recorded accordingly before this returns."""
        rules = domain.parse_rules(request.rules)
        fetched = await self._rest_room(request.account_sid, request.room_sid)

        async def decide(
            tx: RecordingTransaction,
        ) -> tuple[RecordingRules, RecordingCommand | None]:
            room = await self._room_in(tx, fetched)
            if room.status != "in-progress":
                raise AtriumError(errors.ROOM_COMPLETED, "Room completed", 400)
            current = domain.room_rules(room, await tx.rules(room.sid))
            changed = domain.set_rules(current, rules, self.clock.now())
            tx.save_rules(changed)
            return changed, await self._apply(tx, room, await tx.live_tracks(room.sid), rules)

        changed, command = await self.uow.run(decide)
        await self._broadcast(command)
        return changed

    # Worker reports -------------------------------------------------------------------------------
    async def report(self, report: RecordingReport) -> RecordingInfo:
        """A worker's news of a recording. A report that changes nothing (repeated, or about a
        recording that is already completed, failed or deleted) answers the record as it is."""
        if report.outcome == "failed":
            log.warning(
                "recording %s failed on worker %s (%s): %s",
                report.recording_sid,
                report.worker_id,
                report.failed_operation,
                report.reason,
            )

        async def decide(tx: RecordingTransaction) -> RecordingInfo:
            recording = await tx.recording(report.recording_sid)
            if (
                recording is None
                or recording.account_sid != report.account_sid
                or recording.room_sid != report.room_sid
            ):
                raise errors.not_found(_recording_path(report.recording_sid, None))
            now = self.clock.now()
            change: tuple[RecordingInfo, list[DomainEvent]] | None = None
            if report.outcome == "started":
                began = domain.started(recording, report, now)
                if began is not None:
                    change = (began[0], [began[1]])
            elif report.outcome == "completed":
                done = domain.completed(recording, report, now)
                if done is not None:
                    change = (done[0], [*done[1]])
            else:
                lost = domain.failed(recording, report.failed_operation, now)
                if lost is not None:
                    change = (lost[0], [lost[1]])
            if change is None:
                return recording
            changed, events = change
            await self._finish(tx, changed, recording)
            tx.emit(*events)
            return changed

        return await self.uow.run(decide)

    @staticmethod
    async def _finish(
        tx: RecordingTransaction, changed: RecordingInfo, previous: RecordingInfo
    ) -> None:
        """Save a changed recording. A completed one keeps its track's place among the room's
        active recordings until the track goes (track-removed) or the rules drop it: the
        worker often finishes a recording (its track went away there) before this service has
        heard the track-removed event, and the track must not look unrecorded meanwhile, or a
        new recording would start for it. A failed one gives its place up, so a live track is
        recorded again (e.g. on another worker)."""
        tx.save_recording(changed, previous)
        if changed.status not in ("processing", "completed"):
            active = await tx.active(changed.room_sid)
            if active.get(changed.source_sid) == changed.sid:
                tx.deactivate(changed.room_sid, [changed.source_sid])

    # The sweep ------------------------------------------------------------------------------------
    async def sweep(self) -> None:
        """Fail what no worker will finish; repeat commands no worker acted on yet."""
        now = self.clock.now()
        by_worker: dict[str, list[RecordingInfo]] = defaultdict(list)
        unstarted: list[RecordingInfo] = []
        for recording in await self.queries.processing():
            if recording.worker_id is not None:
                by_worker[recording.worker_id].append(recording)
            else:
                unstarted.append(recording)
        for worker_id, recordings in sorted(by_worker.items()):
            if await self.workers.is_live(worker_id):
                continue
            log.warning(
                "media worker %s is gone with %d recordings in progress; they failed",
                worker_id,
                len(recordings),
            )
            for recording in recordings:
                await self._fail_if(recording.sid, "RecordingComplete", worker_id=worker_id)
        resend: set[str] = set()
        for recording in unstarted:
            age = now - recording.date_created
            if now - recording.date_updated >= self.timing.stop_grace:
                await self._fail_if(recording.sid, "RecordingStart", stopped=True)
            elif self.timing.resend_every <= age < self.timing.resend_for:
                resend.add(recording.room_sid)
        stamp = now.timestamp()
        self._resent = {
            room: at
            for room, at in self._resent.items()
            if stamp - at < self.timing.resend_for.total_seconds()
        }
        for room_sid in sorted(resend):
            last = self._resent.get(room_sid)
            if last is not None and stamp - last < self.timing.resend_every.total_seconds():
                continue
            self._resent[room_sid] = stamp
            await self._repeat(room_sid)

    async def _fail_if(
        self,
        sid: str,
        operation: FailedOperation,
        *,
        worker_id: str | None = None,
        stopped: bool = False,
    ) -> None:
        """Fail a processing recording that is still as the sweep saw it: written by the gone
        ``worker_id``, or (``stopped``) never started and no longer recording its track."""

        async def decide(tx: RecordingTransaction) -> None:
            recording = await tx.recording(sid)
            if recording is None or recording.worker_id != worker_id:
                return
            now = self.clock.now()
            if stopped:
                active = await tx.active(recording.room_sid)
                if active.get(recording.source_sid) == sid:
                    return  # still wanted: its track may simply not have sent media yet
                if now - recording.date_updated < self.timing.stop_grace:
                    return
            lost = domain.failed(recording, operation, now)
            if lost is None:
                return
            changed, event = lost
            await self._finish(tx, changed, recording)
            tx.emit(event)

        await self.uow.run(decide)

    async def _repeat(self, room_sid: str) -> None:
        """Broadcast the room's current command again, under a new version."""

        async def decide(tx: RecordingTransaction) -> RecordingCommand | None:
            room = await tx.room(room_sid)
            if room is None:
                return None
            active = await tx.active(room_sid)
            if not active:
                return None
            running = await tx.recordings(list(active.values()))
            return domain.command(room, await tx.next_version(room_sid), running, ())

        await self._broadcast(await self.uow.run(decide))

    # Recordings ----------------------------------------------------------------------------------
    async def _owned(self, account_sid: str, sid: str, room_sid: str | None) -> RecordingInfo:
        recording = await self.queries.recording(sid) if sids.is_sid(sid, sids.RECORDING) else None
        if (
            recording is None
            or recording.account_sid != account_sid
            or (room_sid is not None and recording.room_sid != room_sid)
        ):
            raise errors.not_found(_recording_path(sid, room_sid))
        return recording

    async def fetch(self, request: FetchRecordingRequest) -> RecordingInfo:
        return await self._owned(request.account_sid, request.recording_sid, request.room_sid)

    async def list_recordings(self, request: ListRecordingsRequest) -> RecordingPage:
        try:
            return await self.queries.page(
                _scope(request), request, lambda r: domain.matches(r, request)
            )
        except ValueError as exc:
            raise AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400) from exc

    async def delete(self, request: DeleteRecordingRequest) -> RecordingInfo:
        """Remove the media, then mark the recording deleted (its metadata stays listed). A
        repeated delete answers the deleted record."""
        recording = await self._owned(request.account_sid, request.recording_sid, request.room_sid)
        if recording.status == "deleted":
            return recording
        domain.check_deletable(recording)
        await self.media.delete(recording)

        async def decide(tx: RecordingTransaction) -> RecordingInfo:
            current = await tx.recording(recording.sid)
            assert current is not None  # recordings are never removed
            if current.status == "deleted":
                return current
            domain.check_deletable(current)
            changed = domain.deleted(current, self.clock.now())
            tx.save_recording(changed, current)
            return changed

        return await self.uow.run(decide)

    async def media_location(self, request: RecordingMediaRequest) -> RecordingMediaLocation:
        """Where a completed recording's file downloads from: a presigned URL (S3), or its key
        for the gateway to serve through its own signed URL (local)."""
        recording = await self._owned(request.account_sid, request.recording_sid, request.room_sid)
        if recording.status != "completed":
            raise errors.not_found(_recording_path(recording.sid, request.room_sid) + "/Media")
        url = await self.media.presign(recording, request.expires_in)
        if url is None:
            return RecordingMediaLocation(recording=recording, media_key=recording.media_key)
        return RecordingMediaLocation(recording=recording, url=url)

    # RecordingSettings ---------------------------------------------------------------------------
    async def get_settings(self, request: FetchRecordingSettingsRequest) -> RecordingSettings:
        stored = await self.queries.settings(request.account_sid)
        return stored if stored is not None else domain.default_settings(request.account_sid)

    async def set_settings(self, request: SetRecordingSettingsRequest) -> RecordingSettings:
        """Validate and store (an invalid update changes nothing); recordings started from now
        on go where the new settings say."""

        async def decide(tx: RecordingTransaction) -> RecordingSettings:
            current = await tx.settings(request.account_sid)
            if current is None:
                current = domain.default_settings(request.account_sid)
            changed = domain.updated_settings(current, request)
            tx.save_settings(changed)
            return changed

        return await self.uow.run(decide)


def _scope(request: ListRecordingsRequest) -> IndexScope:
    """The narrowest index the filters allow; the others are applied to what it holds."""
    if request.source_sid is not None:
        return ("track", request.source_sid)
    participants = [s for s in request.grouping_sids if sids.is_sid(s, sids.PARTICIPANT)]
    if participants:
        return ("participant", participants[0])
    rooms = [s for s in request.grouping_sids if sids.is_sid(s, sids.ROOM)]
    if request.room_sid is not None:
        return ("room", request.room_sid)
    if rooms:
        return ("room", rooms[0])
    return ("account", request.account_sid)
