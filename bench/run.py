"""`make bench`: ``uv run python bench/run.py [--levels 1,8,32] [--requests N] ...``.

Run as a script, Python puts ``bench/`` itself first on ``sys.path``; swap it for the repository
root so ``bench`` is imported as the package (and its modules cannot shadow anything).
"""

from __future__ import annotations

import sys
from pathlib import Path


def _main() -> int:
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    from bench.main import main

    return main()


if __name__ == "__main__":
    raise SystemExit(_main())
