"""NATS entry points: the event consumer and the delivery-log RPC. Thin: parse, delegate, ack.

The consumer parses each message into its :data:`DomainEvent` here, once; the use cases and the
queue pass that object along.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.nats import ConsumerConfig, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from pydantic import ValidationError

from atrium_callback.usecases import DeliveryLog, Intake
from atrium_shared import subjects
from atrium_shared.callbacks import DeliveryList, DeliveryQuery
from atrium_shared.events import parse_event
from atrium_shared.rpc import reply_handler

log = logging.getLogger("atrium.callback")

DURABLE = "callback"
# One unacknowledged event at a time: JetStream then hands events over strictly in stream order,
# also after a crash (the unacked one is redelivered before any later one). Per-room order of
# callbacks rests on it. Recording takes about a millisecond, which bounds intake at roughly a
# thousand events per second for all replicas together.
MAX_ACK_PENDING = 1
# Unacknowledged events come back this soon after a crash (recording takes milliseconds).
ACK_WAIT_SECONDS = 3.0
# How long a failed recording (Redis down) waits before JetStream offers the event again.
REDELIVERY_DELAY_SECONDS = 1.0


def register(broker: NatsBroker, intake: Intake, deliveries: DeliveryLog) -> None:
    @broker.subscriber(
        subjects.EVENTS_SUBJECTS[0],
        stream=subjects.events_stream(),
        durable=DURABLE,
        pull_sub=PullSub(batch_size=1, timeout=1.0),
        config=ConsumerConfig(ack_wait=ACK_WAIT_SECONDS, max_ack_pending=MAX_ACK_PENDING),
        ack_policy=AckPolicy.MANUAL,
        title="callback.events",
    )
    async def on_event(message: NatsMessage) -> None:
        """Record the event's callback in its room's queue, then acknowledge it."""
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
            await intake.accept(event)
        except Exception:
            # Not stored: let JetStream offer it again rather than lose it.
            log.exception("recording event failed; it will be redelivered")
            await message.nack(delay=REDELIVERY_DELAY_SECONDS)
            return
        # Stored (or known already, or without a callback): this message is done.
        await message.ack()

    @broker.subscriber(
        subjects.CALLBACK_DELIVERIES,
        queue=subjects.queue_group("callback"),
        title="callback.deliveries",
    )
    @reply_handler
    async def list_deliveries(query: DeliveryQuery) -> DeliveryList:
        """The delivery log or the dead letters, newest first."""
        return await deliveries.query(query)
