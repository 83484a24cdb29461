"""NATS handlers of the media worker: client frames from gateways, participant events."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_media.signaling.worker import MediaWorker
from atrium_shared import subjects
from atrium_shared.events import ParticipantDisconnected
from atrium_shared.recording_api import RecordingCommand
from atrium_shared.rpc import reply_handler
from atrium_shared.signaling_api import AdoptedRoom, AdoptRoom, ClientFrame, WorkerPing
from atrium_shared.track_api import SubscriptionsChanged


def register(broker: NatsBroker, worker: MediaWorker) -> None:
    @broker.subscriber(subjects.worker_subject(worker.worker_id), title="media.rsp")
    async def client_frame(frame: ClientFrame) -> None:
        """An RSP body (or socket news) for a session this worker hosts."""
        worker.accept(frame)

    @broker.subscriber(
        subjects.worker_control_subject(worker.worker_id, "ping"), title="media.ping"
    )
    @reply_handler
    async def ping(request: WorkerPing) -> WorkerPing:
        """The room service asks whether this worker is alive (its heartbeat looks stale)."""
        return WorkerPing(worker_id=worker.worker_id)

    @broker.subscriber(
        subjects.worker_control_subject(worker.worker_id, "adopt"), title="media.adopt"
    )
    @reply_handler
    async def adopt(request: AdoptRoom) -> AdoptedRoom:
        """Host a room whose worker died, resuming its sessions from their records."""
        sessions = await worker.adopt(request.room, request.from_worker)
        return AdoptedRoom(room_sid=request.room.sid, sessions=sessions)

    # A plain (non-durable) subscription: every worker hears every room's departures and keeps
    # the ones of its own sessions; a worker that is down has no session to tell.
    @broker.subscriber(
        subjects.event_subject("*", "*", "participant-disconnected"),
        title="media.participant-disconnected",
    )
    async def participant_disconnected(event: ParticipantDisconnected) -> None:
        """A participant was removed by the control plane: tell its client, drop its media."""
        await worker.participant_disconnected(event)

    # Core NATS, no queue group: the worker hosting the room acts, the others ignore it.
    @broker.subscriber(subjects.MEDIA_RECORDINGS, title="media.recordings")
    async def recordings(command: RecordingCommand) -> None:
        """What a room should be recording now: start and finish recorders to match."""
        await worker.recordings.apply(command)

    # Core NATS, no queue group: the worker hosting the participant acts, the others ignore it.
    @broker.subscriber(subjects.MEDIA_SUBSCRIPTIONS, title="media.subscriptions")
    async def subscriptions_changed(change: SubscriptionsChanged) -> None:
        """A participant's SubscribeRules changed: add and remove its forwarding legs."""
        worker.subscriptions_changed(change)
