"""NATS entry points of the recording service: the event consumer, the REST-facing RPCs and the
workers' reports. Thin: parse, call the use case, reply or acknowledge."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, DeliverPolicy, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from pydantic import ValidationError

from atrium_recording.usecases import RecordingUseCases
from atrium_shared import recording_api, subjects
from atrium_shared.events import parse_event
from atrium_shared.rpc import reply_handler

log = logging.getLogger("atrium.recording")

DURABLE = "recording"
# One unacknowledged event at a time: JetStream hands events over in stream order, also after a
# crash, so a room's track-added is always applied before its track-removed.
MAX_ACK_PENDING = 1
ACK_WAIT_SECONDS = 5.0
# How long an event that could not be applied (Redis or the room service down) waits before
# JetStream offers it again.
REDELIVERY_DELAY_SECONDS = 1.0


def register(broker: NatsBroker, recordings: RecordingUseCases) -> None:
    queue = subjects.queue_group("recording")

    @broker.subscriber(
        subjects.EVENTS_SUBJECTS[0],
        stream=subjects.events_stream(),
        durable=DURABLE,
        pull_sub=PullSub(batch_size=1, timeout=1.0),
        # A consumer created now starts with the events from now: the stream's history is not
        # a list of tracks to record.
        config=ConsumerConfig(
            ack_wait=ACK_WAIT_SECONDS,
            max_ack_pending=MAX_ACK_PENDING,
            deliver_policy=DeliverPolicy.NEW,
        ),
        ack_policy=AckPolicy.MANUAL,
        title="recording.events",
    )
    async def on_event(message: NatsMessage) -> None:
        """Rooms and tracks come and go: start and stop recordings by the rooms' rules."""
        try:
            event = parse_event(message.body)
        except ValidationError as exc:
            # No redelivery can make it readable; holding it would stop the stream behind it.
            log.error(
                "dropping unreadable event",
                extra={"fields": {"errors": exc.error_count(), "detail": str(exc)[:500]}},
            )
            await message.ack()
            return
        try:
            await recordings.on_event(event)
        except Exception:
            log.exception("applying %s failed; it will be redelivered", event.event_type)
            await message.nack(delay=REDELIVERY_DELAY_SECONDS)
            return
        await message.ack()

    @broker.subscriber(subjects.RECORDING_REPORT, queue=queue, title="recording.report")
    @reply_handler
    async def report(request: recording_api.RecordingReport) -> recording_api.RecordingInfo:
        """A media worker's news of a recording: started, completed or failed."""
        return await recordings.report(request)

    @broker.subscriber(subjects.RECORDING_LIST, queue=queue, title="recording.list")
    @reply_handler
    async def list_recordings(
        request: recording_api.ListRecordingsRequest,
    ) -> recording_api.RecordingPage:
        """One page of an account's (or a room's) recordings, newest first, filtered."""
        return await recordings.list_recordings(request)

    @broker.subscriber(subjects.RECORDING_FETCH, queue=queue, title="recording.fetch")
    @reply_handler
    async def fetch(request: recording_api.FetchRecordingRequest) -> recording_api.RecordingInfo:
        """A recording by RT SID (within a room when ``room_sid`` is given)."""
        return await recordings.fetch(request)

    @broker.subscriber(subjects.RECORDING_DELETE, queue=queue, title="recording.delete")
    @reply_handler
    async def delete(request: recording_api.DeleteRecordingRequest) -> recording_api.RecordingInfo:
        """Remove a recording's media; its record stays, ``deleted``."""
        return await recordings.delete(request)

    @broker.subscriber(subjects.RECORDING_MEDIA, queue=queue, title="recording.media")
    @reply_handler
    async def media(
        request: recording_api.RecordingMediaRequest,
    ) -> recording_api.RecordingMediaLocation:
        """Where a completed recording's file downloads from."""
        return await recordings.media_location(request)

    @broker.subscriber(subjects.RECORDING_RULES_GET, queue=queue, title="recording.rules.get")
    @reply_handler
    async def get_rules(
        request: recording_api.FetchRecordingRulesRequest,
    ) -> recording_api.RecordingRules:
        """A room's RecordingRules (its initial ones until set)."""
        return await recordings.get_rules(request)

    @broker.subscriber(subjects.RECORDING_RULES_SET, queue=queue, title="recording.rules.set")
    @reply_handler
    async def set_rules(
        request: recording_api.SetRecordingRulesRequest,
    ) -> recording_api.RecordingRules:
        """Validate (53120) and store a room's RecordingRules; its live tracks start or stop
        being recorded (``atrium.media.recordings``) before the reply."""
        return await recordings.set_rules(request)

    @broker.subscriber(subjects.RECORDING_SETTINGS_GET, queue=queue, title="recording.settings.get")
    @reply_handler
    async def get_settings(
        request: recording_api.FetchRecordingSettingsRequest,
    ) -> recording_api.RecordingSettings:
        """An account's RecordingSettings (the defaults until set)."""
        return await recordings.get_settings(request)

    @broker.subscriber(subjects.RECORDING_SETTINGS_SET, queue=queue, title="recording.settings.set")
    @reply_handler
    async def set_settings(
        request: recording_api.SetRecordingSettingsRequest,
    ) -> recording_api.RecordingSettings:
        """Validate and store an account's RecordingSettings (no secrets in them)."""
        return await recordings.set_settings(request)
