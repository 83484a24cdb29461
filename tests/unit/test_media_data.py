"""Data-track fan-out: type and order preservation, back-pressure policy, dead subscribers."""

from __future__ import annotations

from typing import Any

from atrium_media.forwarding.data import DataFanout, message_size, should_drop


def test_should_drop_policy() -> None:
    high = 1 << 20
    assert not should_drop(0, 10, high)
    assert not should_drop(0, 5 * high, high)  # an empty buffer always takes one message
    assert not should_drop(high - 10, 10, high)
    assert should_drop(high - 10, 11, high)
    assert should_drop(high + 1, 1, high)


def test_message_size_counts_utf8_bytes() -> None:
    assert message_size("ü") == 2
    assert message_size(b"\x00\x01") == 2


class StubChannel:
    """Just the surface of RTCDataChannel that DataFanout uses (a unit test of the policy)."""

    def __init__(self, state: str = "open") -> None:
        self.readyState = state
        self.bufferedAmount = 0
        self.sent: list[str | bytes] = []
        self._handlers: dict[str, Any] = {}

    def send(self, message: str | bytes) -> None:
        self.sent.append(message)
        self.bufferedAmount += message_size(message)

    def on(self, event: str, handler: Any) -> None:
        self._handlers[event] = handler

    once = on

    def remove_listener(self, event: str, handler: Any) -> None:
        self._handlers.pop(event, None)

    def emit(self, event: str, *args: Any) -> None:
        handler = self._handlers.get(event)
        if handler is not None:
            handler(*args)


def test_fanout_preserves_type_and_order_and_applies_backpressure_per_subscriber() -> None:
    source = StubChannel()
    fast, slow, connecting = StubChannel(), StubChannel(), StubChannel("connecting")
    fanout = DataFanout("MT1", source, high_water=100)  # type: ignore[arg-type]
    fanout.add_subscriber("fast", fast)  # type: ignore[arg-type]
    fanout.add_subscriber("slow", slow)  # type: ignore[arg-type]
    fanout.add_subscriber("connecting", connecting)  # type: ignore[arg-type]

    messages: list[str | bytes] = ["a", b"\x00b", "c" * 60, b"d" * 60, "e"]
    for message in messages:
        fast.bufferedAmount = 0  # this one drains instantly
        source.emit("message", message)

    assert fast.sent == messages
    # slow never drains: "c"*60 fits (3+60 <= 100), b"d"*60 does not, "e" still fits.
    assert slow.sent == ["a", b"\x00b", "c" * 60, "e"]
    assert connecting.sent == []
    stats = fanout.stats()
    assert stats.received == 5
    assert stats.subscribers["slow"].dropped_backpressure == 1
    assert stats.subscribers["connecting"].dropped_not_open == 5
    assert stats.delivered == 9


def test_closed_subscribers_are_removed() -> None:
    fanout = DataFanout("MT1", high_water=100)
    gone, closed_later = StubChannel(), StubChannel()
    fanout.add_subscriber("gone", gone)  # type: ignore[arg-type]
    fanout.add_subscriber("later", closed_later)  # type: ignore[arg-type]
    gone.emit("close")
    assert fanout.subscriber_ids == ["later"]
    closed_later.readyState = "closed"
    assert fanout.publish("x") == 0
    assert fanout.subscriber_ids == []


def test_send_errors_are_counted_not_raised() -> None:
    class TooSmall(StubChannel):
        def send(self, message: str | bytes) -> None:
            raise ValueError("message too large")

    fanout = DataFanout("MT1")
    fanout.add_subscriber("s", TooSmall())  # type: ignore[arg-type]
    assert fanout.publish(b"x" * 10) == 0
    assert fanout.stats().subscribers["s"].dropped_errors == 1
