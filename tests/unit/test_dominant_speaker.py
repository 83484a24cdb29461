"""Dominant speaker identification on synthetic RFC 6464 level sequences."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from atrium_media.extensions.dominant_speaker import (
    SILENCE_DBOV,
    DominantSpeakerConfig,
    DominantSpeakerDetector,
    parse_audio_level,
)

FRAME = 0.020
NOISE_DBOV = 75  # background after noise suppression: -75 dBov

# A schedule maps (participant, frame number, rng) to the packet level in dBov, or None when
# the participant sends no packet in that frame (Opus DTX, muted).
Schedule = Callable[[str, int, random.Random], int | None]


def speech(rng: random.Random, loud: int = 25) -> int:
    """One frame of running speech: mostly voiced frames around -``loud`` dBov, some dips."""
    if rng.random() < 0.8:
        return max(0, loud + rng.randint(-6, 8))
    return 60 + rng.randint(0, 10)


def silence(frame: int) -> int | None:
    """DTX: a comfort-noise packet every 400 ms, nothing in between."""
    return NOISE_DBOV if frame % 20 == 0 else None


def in_span(frame: int, spans: list[tuple[float, float]]) -> bool:
    t = frame * FRAME
    return any(start <= t < end for start, end in spans)


def talker(spans: list[tuple[float, float]], loud: int = 25) -> Callable[..., int | None]:
    def level(frame: int, rng: random.Random) -> int | None:
        return speech(rng, loud) if in_span(frame, spans) else silence(frame)

    return level


def cougher(spans: list[tuple[float, float]]) -> Callable[..., int | None]:
    def level(frame: int, rng: random.Random) -> int | None:
        return 12 if in_span(frame, spans) else silence(frame)

    return level


def run(
    detector: DominantSpeakerDetector,
    people: dict[str, Callable[..., int | None]],
    start: float,
    end: float,
    seed: int = 7,
) -> list[tuple[float, str]]:
    """Play the schedule frame by frame, ticking the detector; return its changes."""
    rng = random.Random(seed)
    changes: list[tuple[float, str]] = []
    first = round(start / FRAME)
    last = round(end / FRAME)
    for frame in range(first, last):
        t = frame * FRAME
        for sid, schedule in people.items():
            level = schedule(frame, rng)
            if level is not None:
                # Arrival jitter inside the frame.
                detector.observe(sid, level, t + rng.uniform(0.0, 0.015))
        change = detector.tick(t)
        if change is not None:
            changes.append((round(t, 3), change))
    return changes


def test_parse_audio_level_splits_the_vad_bit() -> None:
    assert parse_audio_level(0x80 | 30) == (30, True)
    assert parse_audio_level(30) == (30, False)
    assert parse_audio_level(0xFF) == (127, True)


def test_one_speaker_becomes_dominant_quickly_and_stays() -> None:
    det = DominantSpeakerDetector()
    changes = run(det, {"PA": talker([(1.0, 6.0)]), "PB": talker([])}, 0.0, 10.0)
    assert [sid for _, sid in changes] == ["PA"]
    assert 1.0 < changes[0][0] <= 1.7
    assert det.dominant == "PA"


def test_silent_room_has_no_dominant_speaker() -> None:
    det = DominantSpeakerDetector()
    changes = run(det, {"PA": talker([]), "PB": talker([]), "PC": talker([])}, 0.0, 8.0)
    assert changes == []
    assert det.dominant is None
    # Nobody counts as active in silence.
    activity = det.activity("PA", 8.0)
    assert activity is not None
    assert (activity.immediate, activity.medium, activity.long) == (0, 0, 0)


def test_silence_keeps_the_last_speaker() -> None:
    det = DominantSpeakerDetector()
    changes = run(det, {"PA": talker([]), "PB": talker([(0.5, 3.0)])}, 0.0, 15.0)
    assert [sid for _, sid in changes] == ["PB"]
    assert det.dominant == "PB"


def test_alternating_speakers_switch_with_bounded_delay() -> None:
    turns = [("PA", 0.0, 4.0), ("PB", 4.0, 8.0), ("PA", 8.0, 12.0), ("PB", 12.0, 16.0)]
    people = {sid: talker([(s, e) for who, s, e in turns if who == sid]) for sid in ("PA", "PB")}
    det = DominantSpeakerDetector()
    changes = run(det, people, 0.0, 17.0)
    assert [sid for _, sid in changes] == ["PA", "PB", "PA", "PB"]
    for (at, sid), (who, start, _end) in zip(changes, turns, strict=True):
        assert sid == who
        delay = at - start
        # Never before the turn starts; never more than 2 s into it.
        assert 0.0 < delay <= 2.0, (sid, start, at)
    # The hand-overs are not instantaneous: the long window makes the newcomer prove itself.
    assert all(
        at - start >= 0.6 for (at, _), (_, start, _) in zip(changes[1:], turns[1:], strict=True)
    )


def test_a_cough_while_the_speaker_talks_does_not_switch() -> None:
    det = DominantSpeakerDetector()
    people = {"PA": talker([(0.0, 10.0)]), "PB": cougher([(3.0, 3.3), (6.0, 6.4)])}
    changes = run(det, people, 0.0, 10.0)
    assert [sid for _, sid in changes] == ["PA"]


def test_a_cough_in_the_speakers_pause_does_not_switch() -> None:
    det = DominantSpeakerDetector()
    people = {
        "PA": talker([(0.0, 4.0), (4.7, 9.0)]),
        "PB": cougher([(4.1, 4.4)]),
    }
    changes = run(det, people, 0.0, 9.0)
    assert [sid for _, sid in changes] == ["PA"]


def test_a_short_interjection_does_not_switch_but_a_real_turn_does() -> None:
    det = DominantSpeakerDetector()
    people = {
        "PA": talker([(0.0, 5.0)]),
        # "Yes, right" over the speaker, then a real turn after the speaker stops.
        "PB": talker([(2.0, 2.5), (6.0, 9.0)]),
    }
    changes = run(det, people, 0.0, 9.0)
    assert [sid for _, sid in changes] == ["PA", "PB"]
    assert 6.0 < changes[1][0] <= 8.0


def test_a_speaker_who_leaves() -> None:
    det = DominantSpeakerDetector()
    assert run(det, {"PA": talker([(0.0, 3.0)]), "PB": talker([])}, 0.0, 3.5) == [(0.3, "PA")]
    assert det.remove("PB") is False
    assert det.dominant == "PA"
    assert det.remove("PA") is True
    assert det.dominant is None
    assert det.participants == frozenset()
    # Nobody talks: still nobody; then PB comes back and talks.
    changes = run(det, {"PB": talker([(5.0, 7.0)])}, 3.5, 8.0, seed=3)
    assert [sid for _, sid in changes] == ["PB"]
    assert 5.0 < changes[0][0] <= 5.7


def test_the_dominant_speaker_leaving_mid_sentence_hands_over_to_the_next_talker() -> None:
    det = DominantSpeakerDetector()
    people = {"PA": talker([(0.0, 6.0)]), "PB": talker([(3.0, 6.0)])}
    assert [sid for _, sid in run(det, people, 0.0, 4.0)] == ["PA"]
    det.remove("PA")
    changes = run(det, {"PB": people["PB"]}, 4.0, 6.0)
    assert [sid for _, sid in changes] == ["PB"]
    assert changes[0][0] <= 4.4


def test_the_louder_of_two_simultaneous_starters_is_nominated() -> None:
    def steady(dbov: int) -> Callable[..., int | None]:
        return lambda frame, rng: dbov if frame * FRAME >= 1.0 else silence(frame)

    det = DominantSpeakerDetector()
    changes = run(det, {"PQUIET": steady(45), "PLOUD": steady(20)}, 0.0, 5.0)
    assert [sid for _, sid in changes] == ["PLOUD"]


def test_the_more_active_of_two_challengers_wins() -> None:
    def sparse(spans: list[tuple[float, float]]) -> Callable[..., int | None]:
        def level(frame: int, rng: random.Random) -> int | None:
            if in_span(frame, spans) and rng.random() < 0.35:
                return 20
            return silence(frame)

        return level

    det = DominantSpeakerDetector()
    people = {
        "PA": talker([(0.0, 3.0)]),
        "PB": sparse([(3.0, 8.0)]),
        "PC": talker([(3.0, 8.0)]),
    }
    changes = run(det, people, 0.0, 8.0)
    assert [sid for _, sid in changes] == ["PA", "PC"]


def test_voice_activity_bit_is_trusted_once_seen() -> None:
    det = DominantSpeakerDetector()
    t = 0.0
    for _ in range(100):  # PA talks, with its VAD bit set
        det.observe("PA", 25, t, voice_activity=True)
        t += FRAME
    assert det.decide(t) == "PA"
    # PB's sender has a VAD: it flagged speech once, and now flags its loud frames as non-speech
    # (music, typing). Those frames are not speech, whatever their level.
    det.observe("PB", 25, t, voice_activity=True)
    for _ in range(300):
        t += FRAME
        det.observe("PB", 20, t, voice_activity=False)
        if round(t / FRAME) % 15 == 0:
            assert det.decide(t) is None
    assert det.dominant == "PA"
    activity = det.activity("PB", t)
    assert activity is not None and activity.medium == 0
    # A sender that never sets the bit (Chromium) is judged on its levels alone.
    for _ in range(150):
        t += FRAME
        det.observe("PC", 20, t, voice_activity=False)
    assert det.decide(t) == "PC"


def test_steady_background_noise_stops_counting_as_speech() -> None:
    det = DominantSpeakerDetector()
    noisy = {"PNOISE": lambda frame, rng: 60 + rng.randint(-2, 2)}  # -60 dBov hum, no DTX
    changes = run(det, noisy, 0.0, 40.0)
    # Before the floor has adapted the hum looks like speech (it is the only sound)...
    assert [sid for _, sid in changes] == ["PNOISE"]
    activity = det.activity("PNOISE", 40.0)
    assert activity is not None
    # ...but after 30 s of it, it no longer counts as active at all.
    assert (activity.medium, activity.long) == (0, 0)
    people = {**noisy, "PA": talker([(40.0, 45.0)])}
    changes = run(det, people, 40.0, 45.0, seed=11)
    assert [sid for _, sid in changes] == ["PA"]
    assert changes[0][0] <= 40.7


def test_levels_out_of_range_late_packets_and_digital_silence() -> None:
    det = DominantSpeakerDetector()
    t = 100.0
    for _ in range(60):
        det.observe("PA", -5, t)  # below 0 dBov: clamped to the loudest level
        t += FRAME
    assert det.decide(t) == "PA"
    activity = det.activity("PA", t)
    assert activity is not None and activity.immediate == 13
    # Packets from long ago and "digital silence" (127, or out-of-range values) add nothing.
    for level in (0, 10, 20):
        det.observe("PB", level, t - 10.0)
    for _ in range(100):
        det.observe("PB", SILENCE_DBOV, t)
        det.observe("PB", 300, t)
        t += FRAME
    activity = det.activity("PB", t)
    assert activity is not None
    assert (activity.immediate, activity.medium, activity.long) == (0, 0, 0)


def test_tick_decides_at_most_every_decision_interval() -> None:
    det = DominantSpeakerDetector()
    assert det.tick(0.0) is None  # first tick decides (nothing to decide yet)
    for frame in range(16):  # PA talks from 0.00 to 0.30
        det.observe("PA", 20, frame * FRAME)
        if frame == 13:
            assert det.tick(0.26) is None  # not due: no decision is made
            assert det.dominant is None
    assert det.tick(0.30) == "PA"
    assert det.tick(0.35) is None


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        DominantSpeakerConfig(immediate_frames=20)
    with pytest.raises(ValueError):
        DominantSpeakerConfig(floor_min_dbov=40, floor_max_dbov=60)
    with pytest.raises(ValueError):
        DominantSpeakerConfig(frame_seconds=0)
