"""How much video the worker may send one subscriber: the budget the layer allocation spends.

What the worker learns of a subscriber's downlink comes from the subscriber's RTCP: its
receiver reports (the fraction of the worker's packets lost since the last report) and, where
the receiver negotiated ``goog-remb``, its REMB estimate. Neither can be used as it comes:

* A receive-side estimate (Chrome's and aiortc's) only grows to about 1.5 times what actually
  arrives, and slowly (some 8 % a second). Taken as a limit, an estimate made while a subscriber
  receives its lowest layer never covers the next layer up, however fast its link: a subscriber
  that was congested once would stay on its lowest layer for good, and one that joins would
  start there.
* Loss says the link is full, after the fact, and says nothing of how much more would fit.

So the budget is decided by congestion, and the estimate bounds a cut:

* **Unconstrained** (no congestion seen yet): no budget; only ``maxSubscriptionBitrate`` limits
  what the subscriber gets, as with no feedback at all.
* **Congested**: at least :data:`CONGESTION_LOSS` of the packets were lost (NACKed, or in its
  receiver reports), or its estimate fell sharply (it saw queuing delay grow). The budget
  becomes what got through (what was sent, less what was lost) or, on a fall of the estimate,
  the estimate, times :data:`CUT_FACTOR`; the allocation then picks smaller layers, or switches
  tracks off. Congestion reported while the cut has not taken effect yet (the worker still sends
  more than the budget: a layer switch waits for a key frame) does not cut again.
* **Holding**: for ``hold`` seconds after a cut, the budget stays (or follows further cuts,
  each keeping at least :data:`FURTHER_CUT_LIMIT` of it).
* **Probing**: after the hold, the budget is lifted (:data:`PROBE_FACTOR` times the budget or
  what is sent, plus :data:`PROBE_FLOOR`) until :data:`PROBE_SECONDS` after it took effect
  (more is sent than before: a larger layer started). Congestion during the
  probe (NACKs or reports of loss) puts back the budget that held before it and doubles the hold
  (up to :data:`MAX_HOLD_SECONDS`); a probe that passes keeps its budget and resets the hold,
  and the next probe climbs from it, until the subscriber has all it wants (a probe beyond that
  changes nothing: the allocation never gives more than wanted).

Pure and clock-free: the caller passes ``now`` (seconds, monotonic) and what it measured.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONGESTION_LOSS",
    "CUT_FACTOR",
    "CUT_GRACE_SECONDS",
    "FURTHER_CUT_LIMIT",
    "MAX_HOLD_SECONDS",
    "MIN_HOLD_SECONDS",
    "PROBE_FACTOR",
    "PROBE_FLOOR",
    "PROBE_SECONDS",
    "LinkBudget",
    "LinkFeedback",
]

CONGESTION_LOSS = 0.08
"""A receiver report with this share (or more) of the interval's packets lost means congestion
(links lose a percent or two for other reasons; NACK repairs those)."""

ESTIMATE_DROP = 0.8
"""An estimate below this share of the previous one is a cut by the receiver (its delay-based
detector found the link overused)."""

CUT_FACTOR = 0.9
"""Share of what got through that a cut leaves: room for the queue to drain (the allocation's
``predicted`` switch-off mode keeps its own headroom on top)."""

OVER_BUDGET = 1.2
"""Sending more than this times the budget means the cut has not taken effect yet."""

CUT_GRACE_SECONDS = 3.0
"""After a cut, reports of loss are not counted again for this long: the smaller layers start
at their next key frame, and the link's queue drains meanwhile."""

PROBE_FACTOR = 2.0
PROBE_FLOOR = 100_000.0
"""A probe's budget: twice the budget (or what is sent, if more), plus a floor. Simulcast
layers are 3 to 4 times the one below: one probe seldom reaches the next layer, two that pass
do, three never reach two layers up. A subscriber climbs a layer in about two holds."""

PROBE_SECONDS = 5.0
"""How long a probe lasts before it counts as passed: time for the new layer's key frame, and
for the receiver to report loss if the link cannot take it."""

FURTHER_CUT_LIMIT = 0.5
"""A cut of a budget already cut keeps at least this share of it."""

MIN_HOLD_SECONDS = 4.0
MAX_HOLD_SECONDS = 60.0

MIN_BUDGET = 50_000.0
"""A cut never goes below this: the lowest layer of a track is about 100 kbit/s, and a budget
of nothing would switch every track off on one bad report."""


@dataclass(frozen=True, slots=True)
class LinkFeedback:
    """What the worker measured of a subscriber's downlink since the previous sample.

    ``sent_bitrate``: video bits per second the worker sent it; ``fraction_lost``: the worst
    fresh receiver report's loss (0..1), None without a fresh report; ``estimate``: its REMB
    (bits per second, audio deducted), None without a fresh one.
    """

    sent_bitrate: float
    fraction_lost: float | None = None
    estimate: float | None = None


class LinkBudget:
    """One subscriber's budget over time (see the module docstring). Call :meth:`update` on each
    allocation tick; :attr:`budget` is None while unconstrained."""

    def __init__(self) -> None:
        self.budget: float | None = None
        self.state = "unconstrained"
        self._hold = MIN_HOLD_SECONDS
        self._since = 0.0  # when the current state began
        self._held_budget: float | None = None  # the budget before a probe
        self._upgraded_at: float | None = None  # when the probe took effect
        self._last_estimate: float | None = None

    def update(self, now: float, feedback: LinkFeedback) -> float | None:
        """The budget after this sample (bits per second, or None: no limit)."""
        # After a cut, congestion counts again once the smaller layers flow: the grace has
        # passed and what is sent is within the budget (a switch waits for a key frame).
        settling = self.state == "holding" and (
            now - self._since < CUT_GRACE_SECONDS
            or (self.budget is not None and feedback.sent_bitrate > self.budget * OVER_BUDGET)
        )
        if settling:
            pass
        elif self._congested(feedback):
            self._on_congestion(now, feedback)
        elif self.state == "probing" and self._probe_passed(now, feedback):
            self._hold = MIN_HOLD_SECONDS
            self._enter("holding", now)
        elif self.state == "holding" and now - self._since >= self._hold:
            self._probe(now, feedback)
        if feedback.estimate is not None:
            self._last_estimate = feedback.estimate
        return self.budget

    def _congested(self, feedback: LinkFeedback) -> bool:
        if feedback.fraction_lost is not None and feedback.fraction_lost >= CONGESTION_LOSS:
            return True
        previous, estimate = self._last_estimate, feedback.estimate
        return previous is not None and estimate is not None and estimate < previous * ESTIMATE_DROP

    def _on_congestion(self, now: float, feedback: LinkFeedback) -> None:
        if self.state == "probing" and self._held_budget is not None:
            # The step up did not fit: back to what held, and wait longer before the next.
            self._hold = min(self._hold * 2, MAX_HOLD_SECONDS)
            self.budget = self._held_budget
        else:
            lost = feedback.fraction_lost
            if lost is not None and lost >= CONGESTION_LOSS:
                through = feedback.sent_bitrate * (1.0 - lost)  # what got through
            else:
                through = feedback.estimate or feedback.sent_bitrate  # the receiver's cut
            cut = max(MIN_BUDGET, through * CUT_FACTOR)
            if self.budget is not None:
                # A further cut at most halves the budget: loss reported just after a switch
                # down still counts packets of the larger layer.
                cut = min(self.budget, max(cut, self.budget * FURTHER_CUT_LIMIT))
            self.budget = cut
        self._enter("holding", now)

    def _probe_passed(self, now: float, feedback: LinkFeedback) -> bool:
        """A probe passes PROBE_SECONDS after it took effect (more is sent than the budget it
        lifted: the larger layers start at their next key frame) without congestion; one that
        takes no effect in twice that (nothing larger fits the lifted budget yet, or nothing
        larger is wanted) passes too, so that the next probe climbs from it."""
        held = self._held_budget
        if self._upgraded_at is None and (held is None or feedback.sent_bitrate > held):
            self._upgraded_at = now
        if self._upgraded_at is not None:
            return now - self._upgraded_at >= PROBE_SECONDS
        return now - self._since >= 2 * PROBE_SECONDS

    def _probe(self, now: float, feedback: LinkFeedback) -> None:
        self._held_budget = self.budget
        base = max(feedback.sent_bitrate, self.budget or 0.0)
        self.budget = base * PROBE_FACTOR + PROBE_FLOOR
        self._upgraded_at = None
        self._enter("probing", now)

    def _enter(self, state: str, now: float) -> None:
        self.state = state
        self._since = now
