"""Sequence number / timestamp re-stamping for forwarding legs."""

from __future__ import annotations

from atrium_media.forwarding.rewrite import StreamRewriter, seq_add, seq_distance, ts_add


def test_modular_helpers() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert ts_add(2**32 - 10, 20) == 10
    assert seq_distance(1, 65535) == 2
    assert seq_distance(65535, 1) == -2
    assert seq_distance(100, 100) == 0
    assert seq_distance(40000, 7000) == -32536  # more than half apart: "older"


def test_first_epoch_starts_at_initial_values_and_keeps_offsets() -> None:
    rw = StreamRewriter(90000, initial_seq=1000, initial_ts=5000)
    assert not rw.in_epoch(42)
    rw.start_epoch(in_seq=42, in_ts=777_000, now=10.0)
    assert rw.map(42, 777_000, 10.0) == (1000, 5000)
    assert rw.map(43, 777_000, 10.0) == (1001, 5000)
    assert rw.map(44, 780_000, 10.03) == (1002, 8000)
    # An upstream gap stays a gap; a late (repaired) packet fills its place.
    assert rw.map(47, 783_000, 10.06) == (1005, 11000)
    assert rw.map(45, 780_000, 10.07) == (1003, 8000)
    assert rw.highest_out_seq == 1005
    assert rw.in_epoch(45)
    assert not rw.in_epoch(41)  # older than the epoch start


def test_wraparound_of_input_and_output() -> None:
    rw = StreamRewriter(90000, initial_seq=65534, initial_ts=2**32 - 1000)
    rw.start_epoch(in_seq=65535, in_ts=2**32 - 1, now=0.0)
    assert rw.map(65535, 2**32 - 1, 0.0) == (65534, 2**32 - 1000)
    assert rw.map(0, 2999, 0.033) == (65535, 2000)
    assert rw.map(1, 2999, 0.033) == (0, 2000)
    assert rw.in_epoch(1)
    assert rw.highest_out_seq == 0


def test_an_epoch_longer_than_half_the_sequence_space_keeps_every_packet() -> None:
    # 70,000 packets in a row (an audio track forwarded for 23 minutes): a comparison with the
    # epoch's first sequence number alone took packets 32768-65535 for "before the epoch".
    rw = StreamRewriter(48000, initial_seq=0, initial_ts=0)
    rw.start_epoch(in_seq=100, in_ts=0, now=0.0)
    kept = sum(1 for i in range(1, 70_000) if rw.in_epoch((100 + i) % 65536))
    assert kept == 69_999
    # Still: a packet from before the epoch's start is not forwarded ...
    fresh = StreamRewriter(48000, initial_seq=0, initial_ts=0)
    fresh.start_epoch(in_seq=100, in_ts=0, now=0.0)
    assert fresh.in_epoch(101) and not fresh.in_epoch(99)
    # ... and a late (reordered) packet of the epoch is.
    assert rw.in_epoch((100 + 69_990) % 65536)


def test_new_epoch_continues_sequence_and_advances_timestamp_by_elapsed_time() -> None:
    rw = StreamRewriter(90000, initial_seq=100, initial_ts=0)
    rw.start_epoch(in_seq=5000, in_ts=1_000_000, now=1.0)
    rw.map(5000, 1_000_000, 1.0)
    rw.map(5001, 1_003_000, 1.033)
    rw.stop_epoch()
    assert not rw.active and not rw.in_epoch(5002)
    # Resume 2 s later on a keyframe with an unrelated input sequence/timestamp.
    rw.start_epoch(in_seq=9, in_ts=42, now=3.033)
    seq, ts = rw.map(9, 42, 3.033)
    assert seq == 102
    assert ts == 3000 + 2 * 90000


def test_new_epoch_timestamp_strictly_increases_even_without_elapsed_time() -> None:
    rw = StreamRewriter(48000, initial_seq=0, initial_ts=10)
    rw.start_epoch(0, 0, now=5.0)
    rw.map(0, 0, 5.0)
    rw.start_epoch(700, 123, now=5.0)
    assert rw.map(700, 123, 5.0) == (1, 11)
