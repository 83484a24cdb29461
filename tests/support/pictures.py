"""What a screenshot shows: its pixels (decoded with PyAV, which the media stack brings anyway)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True)
class Picture:
    width: int
    height: int
    rgb: bytes  # rows of width * 3 bytes, top to bottom

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        offset = (y * self.width + x) * 3
        r, g, b = self.rgb[offset : offset + 3]
        return r, g, b

    def colors(
        self,
        left: float = 0,
        top: float = 0,
        right: float | None = None,
        bottom: float | None = None,
        step: int = 4,
    ) -> set[tuple[int, int, int]]:
        """The distinct colours of every ``step``-th pixel of the box (the whole picture by
        default), clipped to the picture."""
        x0, y0 = max(0, int(left)), max(0, int(top))
        x1 = min(self.width, int(self.width if right is None else right))
        y1 = min(self.height, int(self.height if bottom is None else bottom))
        return {self.pixel(x, y) for y in range(y0, y1, step) for x in range(x0, x1, step)}


def read_png(path: Path) -> Picture:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).reformat(format="rgb24")
    plane = frame.planes[0]
    data, stride, row = bytes(plane), plane.line_size, frame.width * 3
    rgb = b"".join(data[y * stride : y * stride + row] for y in range(frame.height))
    return Picture(frame.width, frame.height, rgb)
