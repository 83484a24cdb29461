"""NATS subject names and the JetStream stream: the one place they are spelled."""

from __future__ import annotations

from faststream.nats import JStream, NatsBroker, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

# Request/reply (NATS core). Replicas of a service share a queue group: one serves each request.
ROOM_CREATE = "atrium.rpc.room.create"
ROOM_FETCH = "atrium.rpc.room.fetch"
ROOM_LIST = "atrium.rpc.room.list"
ROOM_UPDATE = "atrium.rpc.room.update"
ROOM_JOIN = "atrium.rpc.room.join"
PARTICIPANT_ADMIT = "atrium.rpc.participant.admit"
PARTICIPANT_DISCONNECT = "atrium.rpc.participant.disconnect"
PARTICIPANT_DISCONNECT_ROOM = "atrium.rpc.participant.disconnect-room"
PARTICIPANT_FETCH = "atrium.rpc.participant.fetch"
PARTICIPANT_LIST = "atrium.rpc.participant.list"
PARTICIPANT_UPDATE = "atrium.rpc.participant.update"
PARTICIPANT_SET_STATE = "atrium.rpc.participant.set-state"
PARTICIPANT_ANONYMIZE = "atrium.rpc.participant.anonymize"
CALLBACK_DELIVERIES = "atrium.rpc.callback.deliveries"

EVENTS_PREFIX = "atrium.events"
EVENTS_STREAM_NAME = "ATRIUM_EVENTS"
EVENTS_SUBJECTS = [f"{EVENTS_PREFIX}.>"]
# JetStream drops a re-published event whose Nats-Msg-Id it saw within this window, so a relay
# that crashed between publishing and trimming the outbox duplicates nothing.
EVENTS_DUPLICATE_WINDOW_SECONDS = 600.0


def events_stream() -> JStream:
    """The durable event stream, for ``stream=`` of a subscriber.

    A new object per call: FastStream marks a JStream as declared after the first broker starts,
    and every broker (one per service, several in one test process) must be able to declare it.
    """
    return JStream(
        name=EVENTS_STREAM_NAME,
        subjects=list(EVENTS_SUBJECTS),
        duplicate_window=EVENTS_DUPLICATE_WINDOW_SECONDS,
        declare=True,
    )


def event_subject(account_sid: str, room_sid: str, event_type: str) -> str:
    return f"{EVENTS_PREFIX}.{account_sid}.{room_sid}.{event_type}"


def queue_group(service: str) -> str:
    return f"atrium-{service}"


async def ensure_events_stream(broker: NatsBroker) -> None:
    """Create the event stream if it is missing (idempotent: any service may go first)."""
    jetstream = broker.config.connection_state.stream
    config = StreamConfig(
        name=EVENTS_STREAM_NAME,
        subjects=list(EVENTS_SUBJECTS),
        duplicate_window=EVENTS_DUPLICATE_WINDOW_SECONDS,
        storage=StorageType.FILE,
    )
    try:
        await jetstream.stream_info(EVENTS_STREAM_NAME)
    except NotFoundError:
        try:
            await jetstream.add_stream(config=config)
        except BadRequestError:
            # Another process created it between our look and our add.
            await jetstream.stream_info(EVENTS_STREAM_NAME)


# Track service RPCs (request/reply, queue group "atrium-track"); see atrium_shared.track_api.
TRACK_PUBLISH = "atrium.rpc.track.publish"
TRACK_UNPUBLISH = "atrium.rpc.track.unpublish"
TRACK_SET_ENABLED = "atrium.rpc.track.set-enabled"
TRACK_SET_PRIORITY = "atrium.rpc.track.set-priority"
TRACK_JOIN = "atrium.rpc.track.join"
TRACK_LEAVE = "atrium.rpc.track.leave"
TRACK_SUBSCRIPTION = "atrium.rpc.track.subscription"
TRACK_PUBLISHED_LIST = "atrium.rpc.track.published.list"
TRACK_PUBLISHED_FETCH = "atrium.rpc.track.published.fetch"
TRACK_SUBSCRIBED_LIST = "atrium.rpc.track.subscribed.list"
TRACK_SUBSCRIBED_FETCH = "atrium.rpc.track.subscribed.fetch"
TRACK_RULES_GET = "atrium.rpc.track.rules.get"
TRACK_RULES_SET = "atrium.rpc.track.rules.set"
# Core NATS (no queue group): every media worker hears it, the one hosting the participant acts.
MEDIA_SUBSCRIPTIONS = "atrium.media.subscriptions"

# Recording service RPCs (queue group "atrium-recording"); see atrium_shared.recording_api.
RECORDING_LIST = "atrium.rpc.recording.list"
RECORDING_FETCH = "atrium.rpc.recording.fetch"
RECORDING_DELETE = "atrium.rpc.recording.delete"
RECORDING_MEDIA = "atrium.rpc.recording.media"
RECORDING_RULES_GET = "atrium.rpc.recording.rules.get"
RECORDING_RULES_SET = "atrium.rpc.recording.rules.set"
RECORDING_SETTINGS_GET = "atrium.rpc.recording.settings.get"
RECORDING_SETTINGS_SET = "atrium.rpc.recording.settings.set"
# Worker -> recording service: started / completed / failed (request/reply, so it is acked).
RECORDING_REPORT = "atrium.rpc.recording.report"
# Recording service -> every media worker (core NATS broadcast, versioned per room).
MEDIA_RECORDINGS = "atrium.media.recordings"


def worker_subject(worker_id: str) -> str:
    """Where the gateway sends RSP bodies for sessions hosted by this media worker."""
    return f"atrium.media.{worker_id}.rsp"


def worker_control_subject(worker_id: str, action: str) -> str:
    """Requests to one media worker from the room service: ``ping`` (is it alive?) and ``adopt``
    (host a room whose worker died, with its sessions)."""
    return f"atrium.media.{worker_id}.{action}"


def gateway_subject(gateway_id: str, connection_id: str = "*") -> str:
    """Where a gateway replica hears what workers send its connections (``*``: all of them)."""
    return f"atrium.signal.gateway.{gateway_id}.{connection_id}"
