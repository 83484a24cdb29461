"""The frame-number stamp of the media latency bench (bench/stamp.py)."""

from __future__ import annotations

import pytest

from bench.stamp import BAND_ROWS, HIGH, LOW, WIDTH, read_stamp, stamp_rows


@pytest.mark.parametrize("number", [0, 1, 0x5A5A, 0xFFFF, 70000])
def test_a_stamp_reads_back(number: int) -> None:
    rows = stamp_rows(number)
    assert len(rows) == BAND_ROWS * WIDTH
    assert read_stamp(rows, WIDTH) == number % (1 << 16)


def test_a_stamp_survives_padding_and_codec_noise() -> None:
    line = WIDTH + 32
    rows = stamp_rows(1234)
    padded = bytearray()
    for y in range(BAND_ROWS):
        row = bytearray(rows[y * WIDTH : (y + 1) * WIDTH])
        for x in range(0, WIDTH, 3):  # +-40 of blur, well inside the threshold
            row[x] = min(255, row[x] + 40) if row[x] == LOW else max(0, row[x] - 40)
        padded += row + b"\x00" * (line - WIDTH)
    padded += b"\x80" * line * 100  # the rest of the picture
    assert read_stamp(bytes(padded), line) == 1234


def test_an_unstamped_or_short_picture_reads_as_none() -> None:
    assert read_stamp(bytes([HIGH]) * WIDTH * BAND_ROWS, WIDTH) is None  # both bands white
    assert read_stamp(b"\x80" * WIDTH * BAND_ROWS, WIDTH) is None  # grey: bands agree
    assert read_stamp(stamp_rows(5)[:WIDTH], WIDTH) is None  # too short
    assert read_stamp(stamp_rows(5), WIDTH - 1) is None  # narrower than the stamp
