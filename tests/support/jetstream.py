"""Read what reached the event stream, straight from JetStream."""

from __future__ import annotations

import nats
from nats.errors import TimeoutError as NatsTimeout

from atrium_shared.events import DomainEvent, parse_event
from atrium_shared.subjects import EVENTS_STREAM_NAME


async def stream_events(nats_url: str, limit: int = 10_000) -> list[DomainEvent]:
    """Every event in the stream, in stream order (empty if the stream does not exist yet)."""
    connection = await nats.connect(nats_url)
    try:
        jetstream = connection.jetstream()
        try:
            info = await jetstream.stream_info(EVENTS_STREAM_NAME)
        except nats.js.errors.NotFoundError:
            return []
        events: list[DomainEvent] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if len(events) >= limit:
                break
            try:
                message = await jetstream.get_msg(EVENTS_STREAM_NAME, seq)
            except (nats.js.errors.NotFoundError, NatsTimeout):
                continue
            assert message.data is not None
            events.append(parse_event(message.data))
        return events
    finally:
        await connection.close()
