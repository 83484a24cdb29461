"""A frame number drawn into the top of a picture's luma plane, and read back after VP8.

Two bands of ``BITS`` cells (``CELL`` px square) span the picture's width: the first carries the
number's bits (white = 1, black = 0), the second their complement, so a picture without a stamp,
or one the codec smeared, reads as None rather than as a wrong number. Pure: bytes in, bytes out.
"""

from __future__ import annotations

BITS = 16
CELL = 40
WIDTH = BITS * CELL  # 640
BAND_ROWS = 2 * CELL  # rows the stamp occupies
HIGH, LOW = 235, 16  # video-range white and black
_THRESHOLD = (HIGH + LOW) // 2
_SAMPLE = range(CELL // 4, CELL - CELL // 4 + 1, 4)  # the middle half of a cell, every 4 px


def _band(bits: list[bool]) -> bytes:
    row = b"".join(bytes([HIGH if bit else LOW]) * CELL for bit in bits)
    return row * CELL


def stamp_rows(number: int) -> bytes:
    """``BAND_ROWS`` rows of ``WIDTH`` luma bytes encoding ``number`` modulo 2**BITS."""
    bits = [bool((number >> i) & 1) for i in range(BITS)]
    return _band(bits) + _band([not bit for bit in bits])


def _cell_bit(luma: bytes | memoryview, line_size: int, band: int, cell: int) -> bool:
    total = count = 0
    top = band * CELL
    for y in _SAMPLE:
        start = (top + y) * line_size + cell * CELL
        for x in _SAMPLE:
            total += luma[start + x]
            count += 1
    return total / count > _THRESHOLD


def read_stamp(luma: bytes | memoryview, line_size: int) -> int | None:
    """The number stamped into ``luma`` (rows of ``line_size`` bytes), or None if unreadable."""
    if line_size < WIDTH or len(luma) < BAND_ROWS * line_size:
        return None
    number = 0
    for cell in range(BITS):
        bit = _cell_bit(luma, line_size, 0, cell)
        if bit == _cell_bit(luma, line_size, 1, cell):
            return None  # the complement band disagrees
        number |= int(bit) << cell
    return number
