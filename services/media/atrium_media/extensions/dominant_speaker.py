"""Dominant speaker identification from RFC 6464 audio levels.

A pure, clock-free implementation of the approach of I. Volfin and I. Cohen, "Dominant Speaker
Identification for Multipoint Videoconferencing" (Computer Speech & Language, 2013), which is
also what Jitsi Videobridge uses. Nothing is decoded: the only input is the 7-bit level of the
``urn:ietf:params:rtp-hdrext:ssrc-audio-level`` header extension (0 = 0 dBov, the loudest,
127 = -127 dBov or digital silence) plus its voice-activity bit.

How it works
------------
Time is cut into 20 ms *frames* (from the timestamps the caller passes). For each participant:

1. **Immediate** (per frame). The packet's loudness above the participant's noise floor is
   quantised into 0..13 "active sub-bands" (4 dB each), standing in for the paper's count of
   active frequency sub-bands. A frame without a packet (DTX, muted, loss) counts 0. A frame is
   *active* when it reaches 5 sub-bands, i.e. 20 dB above the floor. The noise floor follows the
   quietest non-silent level: it drops at once, rises by half the gap every 10 s, and stays
   between -80 and -55 dBov. If the sender ever set the voice-activity bit, frames without it
   are not counted active.
2. **Medium**: the number of active frames among the last 10 frames (200 ms).
3. **Long**: the number of active 200 ms blocks (at least 5 active frames) among the last 10
   blocks (2 s).

Each count k out of n is scored as the log-likelihood ratio between a speech model
(binomial, p = 0.5) and a non-speech model (exponential with rate lambda), floored at a tiny
positive value: ``score(k) = max(1e-10, log C(n, k) + n log 0.5 - log lambda + lambda k)``, with
lambda = 3 (immediate, which makes the score grow with loudness), 24 (medium) and 47 (long).

Every 300 ms (:meth:`DominantSpeakerDetector.tick`) a decision is made. Each other participant
challenges the current dominant speaker on the three time scales with
``delta_i = log(score_challenger / score_dominant)``; it wins only if
``delta_immediate > 3``, ``delta_medium > 2`` and ``delta_long > 0`` all hold, and among several
winners the one with the largest medium delta is taken. In practice that means: the dominant
speaker keeps the floor while talking, a challenger takes it once the dominant has paused and
the challenger has been talking for longer than the dominant did over the last 2 s (about 1 s
into a clean hand-over), a cough or a short interjection is outweighed by the dominant's long
term activity, and silence changes nothing. With no dominant speaker yet (room start, or the
dominant left) the participant with the most activity (long, then medium, then immediate) who
is talking right now is nominated.

Cost: :meth:`DominantSpeakerDetector.observe` is O(1) per packet (it advances the frame ring by
the frames elapsed since the participant's previous packet, amortised O(1), bounded by a reset
after a long gap); :meth:`DominantSpeakerDetector.decide` is O(participants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "SILENCE_DBOV",
    "DominantSpeakerConfig",
    "DominantSpeakerDetector",
    "SpeakerActivity",
    "parse_audio_level",
]

#: The RFC 6464 level of digital silence (-127 dBov).
SILENCE_DBOV = 127

_MIN_SCORE = 1e-10


def parse_audio_level(value: int) -> tuple[int, bool]:
    """Split the one-byte RFC 6464 payload into ``(level_dbov, voice_activity)``."""
    return value & 0x7F, bool(value & 0x80)


@dataclass(frozen=True, slots=True)
class DominantSpeakerConfig:
    """Tuning of :class:`DominantSpeakerDetector` (the defaults are the documented ones)."""

    frame_seconds: float = 0.020
    subbands: int = 13
    subband_db: float = 4.0
    active_subbands: int = 5
    immediate_frames: int = 3
    medium_frames: int = 10
    active_frames_per_block: int = 5
    long_blocks: int = 10
    immediate_lambda: float = 3.0
    medium_lambda: float = 24.0
    long_lambda: float = 47.0
    speech_probability: float = 0.5
    immediate_threshold: float = 3.0
    medium_threshold: float = 2.0
    long_threshold: float = 0.0
    decision_interval: float = 0.300
    floor_min_dbov: int = 80
    floor_max_dbov: int = 55
    floor_window_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.frame_seconds <= 1:
            raise ValueError("frame_seconds must be in (0, 1]")
        if not 1 <= self.immediate_frames <= self.medium_frames:
            raise ValueError("immediate_frames must be in 1..medium_frames")
        if not 1 <= self.active_subbands <= self.subbands:
            raise ValueError("active_subbands must be in 1..subbands")
        if not 1 <= self.active_frames_per_block <= self.medium_frames:
            raise ValueError("active_frames_per_block must be in 1..medium_frames")
        if self.long_blocks < 1 or self.subband_db <= 0 or self.decision_interval < 0:
            raise ValueError("long_blocks, subband_db and decision_interval must be positive")
        if not 0 <= self.floor_max_dbov <= self.floor_min_dbov <= SILENCE_DBOV:
            raise ValueError("need 0 <= floor_max_dbov <= floor_min_dbov <= 127")
        if not 0 < self.speech_probability < 1:
            raise ValueError("speech_probability must be in (0, 1)")


def _log_scores(n: int, lam: float, p: float) -> tuple[float, ...]:
    """``log(score(k))`` for k = 0..n (see the module docstring)."""
    out = []
    for k in range(n + 1):
        llr = (
            math.log(math.comb(n, k))
            + k * math.log(p)
            + (n - k) * math.log(1 - p)
            - math.log(lam)
            + lam * k
        )
        out.append(math.log(max(llr, _MIN_SCORE)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SpeakerActivity:
    """A participant's activity counts at a decision (for logs and tests)."""

    immediate: int
    medium: int
    long: int


class _Speaker:
    """Per-participant frame history; all times are frame indexes."""

    __slots__ = (
        "blocks",
        "floor",
        "frames",
        "head",
        "medium_active",
        "vad_seen",
        "window_end",
        "window_min",
    )

    def __init__(self, cfg: DominantSpeakerConfig, floor: float) -> None:
        self.frames = [0] * cfg.medium_frames  # sub-band count per frame, ring by frame index
        self.blocks = [0] * cfg.long_blocks  # active frames per block, ring by block index
        self.head: int | None = None  # newest frame index in the ring
        self.medium_active = 0  # active frames currently in ``frames``
        self.floor = floor  # noise floor, as loudness (127 - dBov)
        self.window_min = math.inf
        self.window_end: int | None = None
        self.vad_seen = False


class DominantSpeakerDetector:
    """Decides which participant is the dominant speaker. Not thread-safe; no clock reads.

    Feed every audio level with :meth:`observe`, call :meth:`tick` (or :meth:`decide`) on a
    timer, tell it about departures with :meth:`remove`. Timestamps are seconds on any
    monotonic clock, the same one for ``observe`` and ``decide``.
    """

    def __init__(self, config: DominantSpeakerConfig | None = None) -> None:
        cfg = config or DominantSpeakerConfig()
        self._cfg = cfg
        self._inv_frame = 1.0 / cfg.frame_seconds
        self._ring = cfg.medium_frames
        self._nblocks = cfg.long_blocks
        self._active = cfg.active_subbands
        self._block_active = cfg.active_frames_per_block
        self._reset_gap = cfg.medium_frames * (cfg.long_blocks + 1)
        self._floor_window = max(1, round(cfg.floor_window_seconds * self._inv_frame))
        self._floor_lo = float(SILENCE_DBOV - cfg.floor_min_dbov)
        self._floor_hi = float(SILENCE_DBOV - cfg.floor_max_dbov)
        self._inv_subband = 1.0 / cfg.subband_db
        p = cfg.speech_probability
        self._imm_scores = _log_scores(cfg.subbands, cfg.immediate_lambda, p)
        self._med_scores = _log_scores(cfg.medium_frames, cfg.medium_lambda, p)
        self._long_scores = _log_scores(cfg.long_blocks, cfg.long_lambda, p)
        self._speakers: dict[str, _Speaker] = {}
        self._dominant: str | None = None
        self._last_decision: float | None = None

    # Inputs -----------------------------------------------------------------------------------

    @property
    def dominant(self) -> str | None:
        """The current dominant speaker, or ``None`` before anyone has spoken."""
        return self._dominant

    @property
    def participants(self) -> frozenset[str]:
        return frozenset(self._speakers)

    def add(self, participant_sid: str) -> None:
        """Start tracking a participant (optional: :meth:`observe` does it on first level)."""
        if participant_sid not in self._speakers:
            self._speakers[participant_sid] = _Speaker(self._cfg, self._floor_lo)

    def remove(self, participant_sid: str) -> bool:
        """Forget a participant (left, or unpublished its audio). True if it was dominant.

        Removing the dominant speaker leaves no dominant speaker until somebody talks; clients
        clear ``room.dominantSpeaker`` themselves when that participant disconnects.
        """
        self._speakers.pop(participant_sid, None)
        if self._dominant == participant_sid:
            self._dominant = None
            return True
        return False

    def observe(
        self,
        participant_sid: str,
        level_dbov: int,
        timestamp: float,
        voice_activity: bool | None = None,
    ) -> None:
        """One audio packet's RFC 6464 level (0 loudest .. 127 silence) at ``timestamp``.

        ``voice_activity`` is the extension's V bit if the caller has it. Packets older than the
        medium window behind the newest one seen for the participant are ignored.
        """
        sp = self._speakers.get(participant_sid)
        if sp is None:
            sp = self._speakers[participant_sid] = _Speaker(self._cfg, self._floor_lo)
        frame = math.floor(timestamp * self._inv_frame)
        head = sp.head
        if head is None or frame > head:
            self._advance(sp, frame)
        elif head - frame >= self._ring:
            return  # too late to place

        level = SILENCE_DBOV if level_dbov > SILENCE_DBOV else max(level_dbov, 0)
        if level == SILENCE_DBOV:
            return  # digital silence: an empty frame, and no evidence about the noise floor
        loudness = float(SILENCE_DBOV - level)
        self._track_floor(sp, loudness, frame)
        above = loudness - sp.floor
        if above <= 0.0:
            return
        bands = int(above * self._inv_subband)
        if bands > self._cfg.subbands:
            bands = self._cfg.subbands
        if voice_activity:
            sp.vad_seen = True
        elif voice_activity is not None and sp.vad_seen and bands >= self._active:
            bands = self._active - 1  # the sender's VAD says this is not speech

        i = frame % self._ring
        old = sp.frames[i]
        if bands > old:
            sp.frames[i] = bands
            if old < self._active <= bands:
                sp.medium_active += 1
                sp.blocks[(frame // self._ring) % self._nblocks] += 1

    def _track_floor(self, sp: _Speaker, loudness: float, frame: int) -> None:
        if loudness < sp.floor:
            sp.floor = max(loudness, self._floor_lo)
        if sp.window_end is None:
            sp.window_end = frame + self._floor_window
        elif frame >= sp.window_end:
            if sp.window_min > sp.floor and math.isfinite(sp.window_min):
                sp.floor = min(sp.floor + (sp.window_min - sp.floor) * 0.5, self._floor_hi)
            sp.window_min = math.inf
            sp.window_end = frame + self._floor_window
        if loudness < sp.window_min:
            sp.window_min = loudness

    def _advance(self, sp: _Speaker, frame: int) -> None:
        """Move the speaker's newest frame to ``frame``, emptying the frames in between."""
        head = sp.head
        ring = self._ring
        if head is None or frame - head >= self._reset_gap:
            sp.frames = [0] * ring
            sp.blocks = [0] * self._nblocks
            sp.medium_active = 0
            # Start the block of ``frame`` clean even if it began before the first frame.
            sp.head = frame
            return
        frames = sp.frames
        blocks = sp.blocks
        active = self._active
        for t in range(head + 1, frame + 1):
            i = t % ring
            if frames[i] >= active:
                sp.medium_active -= 1
            frames[i] = 0
            if i == 0:  # first frame of a new block
                blocks[(t // ring) % self._nblocks] = 0
        sp.head = frame

    # Decision ---------------------------------------------------------------------------------

    def activity(self, participant_sid: str, now: float) -> SpeakerActivity | None:
        """The participant's immediate / medium / long counts as of ``now``."""
        sp = self._speakers.get(participant_sid)
        if sp is None:
            return None
        return self._activity(sp, math.floor(now * self._inv_frame))

    def _activity(self, sp: _Speaker, frame: int) -> SpeakerActivity:
        if sp.head is None or frame > sp.head:
            self._advance(sp, frame)
        head = sp.head if sp.head is not None else frame
        frames = sp.frames
        ring = self._ring
        immediate = max(frames[(head - j) % ring] for j in range(self._cfg.immediate_frames))
        threshold = self._block_active
        long = sum(1 for count in sp.blocks if count >= threshold)
        return SpeakerActivity(immediate, sp.medium_active, long)

    def tick(self, now: float) -> str | None:
        """:meth:`decide` if a decision interval (300 ms) has passed since the last one."""
        last = self._last_decision
        if last is not None and now - last < self._cfg.decision_interval:
            return None
        return self.decide(now)

    def decide(self, now: float) -> str | None:
        """Make a decision now. Returns the new dominant speaker if it changed, else ``None``."""
        self._last_decision = now
        if not self._speakers:
            return None
        frame = math.floor(now * self._inv_frame)
        activity = {sid: self._activity(sp, frame) for sid, sp in self._speakers.items()}
        imm, med, lng = self._imm_scores, self._med_scores, self._long_scores
        current = self._dominant
        if current is None or current not in activity:
            best: tuple[float, float, float] | None = None
            chosen: str | None = None
            for sid, act in activity.items():
                if act.medium == 0 or act.long == 0 or act.immediate < self._active:
                    continue  # not talking right now
                key = (lng[act.long], med[act.medium], imm[act.immediate])
                if best is None or key > best:
                    best, chosen = key, sid
            if chosen is None:
                return None
            self._dominant = chosen
            return chosen

        dom = activity[current]
        cfg = self._cfg
        winner: str | None = None
        winner_medium = cfg.medium_threshold
        for sid, act in activity.items():
            if sid == current:
                continue
            d_imm = imm[act.immediate] - imm[dom.immediate]
            d_med = med[act.medium] - med[dom.medium]
            d_long = lng[act.long] - lng[dom.long]
            # ``winner_medium`` starts at the medium threshold, so this also demands
            # d_med > medium_threshold; among several challengers the largest d_med wins.
            if (
                d_imm > cfg.immediate_threshold
                and d_long > cfg.long_threshold
                and d_med > winner_medium
            ):
                winner, winner_medium = sid, d_med
        if winner is None:
            return None
        self._dominant = winner
        return winner
