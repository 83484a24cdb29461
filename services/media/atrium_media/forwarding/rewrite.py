"""RTP sequence number and timestamp re-stamping for one forwarding leg (pure arithmetic).

A leg forwards one publisher stream to one subscriber under the leg's own SSRC. Forwarding runs in
*epochs*: an epoch starts when the leg opens on a keyframe (first join, or resume after a pause)
and lasts until the leg is paused or re-gated. Within an epoch output = input + constant offset
(mod 2^16 for sequence numbers, mod 2^32 for timestamps), so upstream gaps stay gaps (the
subscriber NACKs them) and repaired packets land in their place. Across epochs the output continues
where it stopped: the first sequence number of a new epoch follows the highest one sent, and the
timestamp advances by the wall-clock time that passed, so the subscriber sees one continuous,
monotonic stream.
"""

from __future__ import annotations

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
_SEQ_HALF = 1 << 15


def seq_add(seq: int, delta: int) -> int:
    return (seq + delta) % SEQ_MOD


def ts_add(ts: int, delta: int) -> int:
    return (ts + delta) % TS_MOD


def seq_distance(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers (RFC 1982), in [-2^15, 2^15)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= _SEQ_HALF else d


class StreamRewriter:
    """Per-leg mapping from the publisher's (seq, ts) space to the subscriber's."""

    __slots__ = (
        "_clock_rate",
        "_epoch_newest_seq",
        "_epoch_progress",
        "_highest_out_seq",
        "_last_out_time",
        "_last_out_ts",
        "_next_seq",
        "_seq_offset",
        "_ts_offset",
        "_ts_origin",
        "active",
    )

    def __init__(self, clock_rate: int, initial_seq: int, initial_ts: int) -> None:
        self._clock_rate = clock_rate
        self._next_seq = initial_seq % SEQ_MOD
        self._ts_origin = initial_ts % TS_MOD
        self._highest_out_seq: int | None = None
        self._last_out_ts: int | None = None
        self._last_out_time = 0.0
        self._seq_offset = 0
        self._ts_offset = 0
        # The newest input of the epoch and how many sequence numbers it is past the epoch's
        # start (unbounded): 16-bit distances alone would call every packet more than 32767
        # past the start "older than the epoch" and drop half of every 65536.
        self._epoch_newest_seq = 0
        self._epoch_progress = 0
        self.active = False

    def continuation(self, now: float) -> tuple[int, int]:
        """The (seq, ts) the output would continue with at monotonic time ``now``: after the
        highest sequence number sent, the timestamp advanced by the time that passed."""
        if self._highest_out_seq is None:
            first_seq = self._next_seq
        else:
            first_seq = seq_add(self._highest_out_seq, 1)
        if self._last_out_ts is None:
            first_ts = self._ts_origin
        else:
            elapsed = max(0.0, now - self._last_out_time)
            first_ts = ts_add(self._last_out_ts, max(1, round(elapsed * self._clock_rate)))
        return first_seq, first_ts

    def start_epoch(self, in_seq: int, in_ts: int, now: float) -> None:
        """Begin forwarding at input packet (in_seq, in_ts), received at monotonic time now."""
        first_seq, first_ts = self.continuation(now)
        self._seq_offset = (first_seq - in_seq) % SEQ_MOD
        self._ts_offset = (first_ts - in_ts) % TS_MOD
        self._epoch_newest_seq = in_seq
        self._epoch_progress = 0
        self.active = True

    def stop_epoch(self) -> None:
        self.active = False

    def in_epoch(self, in_seq: int) -> bool:
        """Whether an input packet belongs to the current epoch (not older than its start);
        a newer packet than any before moves the epoch's newest input forward."""
        if not self.active:
            return False
        ahead = seq_distance(in_seq, self._epoch_newest_seq)
        if self._epoch_progress + ahead < 0:
            return False  # sent before the epoch started
        if ahead > 0:
            self._epoch_newest_seq = in_seq
            self._epoch_progress += ahead
        return True

    def map(self, in_seq: int, in_ts: int, now: float) -> tuple[int, int]:
        """Output (seq, ts) for an input packet of the current epoch; records what was sent."""
        out_seq = (in_seq + self._seq_offset) % SEQ_MOD
        out_ts = (in_ts + self._ts_offset) % TS_MOD
        if self._highest_out_seq is None or seq_distance(out_seq, self._highest_out_seq) > 0:
            self._highest_out_seq = out_seq
            self._last_out_ts = out_ts
            self._last_out_time = now
        return out_seq, out_ts

    @property
    def highest_out_seq(self) -> int | None:
        return self._highest_out_seq
