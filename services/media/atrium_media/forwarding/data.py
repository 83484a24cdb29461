"""Fan-out of one publisher data channel ("data track") to subscriber data channels.

Messages keep their type (``str`` stays ``str``, ``bytes`` stays ``bytes``) and their order per
subscriber. ``RTCDataChannel.send`` never blocks and queues without bound, so back-pressure is
applied per subscriber: while a subscriber's ``bufferedAmount`` is above the high-water mark,
messages for it are dropped and counted, and the publisher and the other subscribers are unaffected.
Runs on the event loop thread that owns the channels; not thread-safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiortc import RTCDataChannel

logger = logging.getLogger(__name__)

DEFAULT_HIGH_WATER = 1 << 20  # 1 MiB


def should_drop(buffered_amount: int, message_size: int, high_water: int) -> bool:
    """Back-pressure policy: drop when queuing the message would exceed the high-water mark.

    An empty buffer always accepts one message, so a message larger than the mark still goes out
    when the subscriber keeps up.
    """
    return buffered_amount > 0 and buffered_amount + message_size > high_water


def message_size(message: str | bytes) -> int:
    return len(message.encode("utf-8")) if isinstance(message, str) else len(message)


@dataclass
class DataSubscriberStats:
    delivered: int = 0
    dropped_backpressure: int = 0
    dropped_not_open: int = 0
    dropped_errors: int = 0


@dataclass
class DataFanoutStats:
    track_id: str
    received: int
    delivered: int
    dropped: int
    subscribers: dict[str, DataSubscriberStats] = field(default_factory=dict)


class DataFanout:
    """Delivers every message of one source channel to the channels of its subscribers."""

    def __init__(
        self,
        track_id: str,
        source: RTCDataChannel | None = None,
        *,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self.track_id = track_id
        self.high_water = high_water
        self.received = 0
        self._channels: dict[str, RTCDataChannel] = {}
        self._stats: dict[str, DataSubscriberStats] = {}
        self._source: RTCDataChannel | None = None
        self._removed_delivered = 0
        self._removed_dropped = 0
        if source is not None:
            self.attach_source(source)

    def attach_source(self, channel: RTCDataChannel) -> None:
        self.detach_source()
        self._source = channel
        channel.on("message", self.publish)

    def detach_source(self) -> None:
        if self._source is not None:
            self._source.remove_listener("message", self.publish)
            self._source = None

    def add_subscriber(self, subscriber_id: str, channel: RTCDataChannel) -> None:
        self.remove_subscriber(subscriber_id)
        self._channels[subscriber_id] = channel
        self._stats[subscriber_id] = DataSubscriberStats()

        def on_close() -> None:
            if self._channels.get(subscriber_id) is channel:
                self.remove_subscriber(subscriber_id)

        channel.once("close", on_close)

    def remove_subscriber(self, subscriber_id: str) -> None:
        self._channels.pop(subscriber_id, None)
        stats = self._stats.pop(subscriber_id, None)
        if stats is not None:
            self._removed_delivered += stats.delivered
            self._removed_dropped += _dropped(stats)

    @property
    def subscriber_ids(self) -> list[str]:
        return list(self._channels)

    def publish(self, message: str | bytes) -> int:
        """Send ``message`` to every subscriber that can take it; returns how many got it."""
        self.received += 1
        size = message_size(message)
        delivered = 0
        for subscriber_id, channel in tuple(self._channels.items()):
            stats = self._stats[subscriber_id]
            state = channel.readyState
            if state in ("closing", "closed"):
                self.remove_subscriber(subscriber_id)
                continue
            if state != "open":
                stats.dropped_not_open += 1
                continue
            if should_drop(channel.bufferedAmount, size, self.high_water):
                stats.dropped_backpressure += 1
                continue
            try:
                channel.send(message)
            except Exception as exc:  # ValueError (too large), InvalidStateError
                stats.dropped_errors += 1
                logger.debug(
                    "data track %s: send to %s failed: %s", self.track_id, subscriber_id, exc
                )
                continue
            stats.delivered += 1
            delivered += 1
        return delivered

    def close(self) -> None:
        self.detach_source()
        for subscriber_id in list(self._channels):
            self.remove_subscriber(subscriber_id)

    def stats(self) -> DataFanoutStats:
        subscribers = {k: DataSubscriberStats(**vars(v)) for k, v in self._stats.items()}
        return DataFanoutStats(
            track_id=self.track_id,
            received=self.received,
            delivered=self._removed_delivered + sum(s.delivered for s in subscribers.values()),
            dropped=self._removed_dropped + sum(_dropped(s) for s in subscribers.values()),
            subscribers=subscribers,
        )


def _dropped(stats: DataSubscriberStats) -> int:
    return stats.dropped_backpressure + stats.dropped_not_open + stats.dropped_errors
