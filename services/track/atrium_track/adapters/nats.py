"""The track service's publishes that are not domain events."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_shared import subjects
from atrium_shared.track_api import SubscriptionsChanged


class NatsTrackPublisher:
    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def subscriptions_changed(self, change: SubscriptionsChanged) -> None:
        # A broadcast, not a queue group: only the worker hosting the subscriber acts on it.
        await self._broker.publish(change, subjects.MEDIA_SUBSCRIPTIONS)
