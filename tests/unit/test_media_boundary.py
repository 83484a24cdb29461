"""The media worker's two halves talk through one typed boundary.

Signaling (RSP sessions, rooms, SDP) may use forwarding only through the names that
``atrium_media.forwarding`` exports; forwarding never reaches back into signaling; benchmark code
does not ship in the media package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import atrium_media

PACKAGE = Path(atrium_media.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def modules_of(subpackage: str) -> list[Path]:
    paths = sorted((PACKAGE / subpackage).glob("*.py"))
    assert paths, f"atrium_media.{subpackage} has no modules"
    return paths


def test_signaling_uses_forwarding_only_through_its_package_api() -> None:
    for path in modules_of("signaling"):
        internal = {
            name for name in imported_modules(path) if name.startswith("atrium_media.forwarding.")
        }
        assert not internal, f"{path.name} reaches into forwarding internals: {sorted(internal)}"


def test_forwarding_never_imports_signaling() -> None:
    for path in modules_of("forwarding"):
        back = {
            name for name in imported_modules(path) if name.startswith("atrium_media.signaling")
        }
        assert not back, f"{path.name} imports signaling: {sorted(back)}"


def test_forwarding_exports_are_importable() -> None:
    from atrium_media import forwarding

    for name in forwarding.__all__:
        assert getattr(forwarding, name) is not None


def test_no_benchmark_code_in_the_media_package() -> None:
    assert not [p.name for p in PACKAGE.rglob("*.py") if "bench" in p.name]
