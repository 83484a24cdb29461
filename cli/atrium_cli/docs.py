"""`make docs`: write the services' generated API documents into docs/generated/.

- ``<service>.asyncapi.json``: AsyncAPI 3.0 of each FastStream service, from the broker its
  ``atrium_<service>.app:build_broker()`` returns (subscribers registered, nothing connected);
- ``gateway.openapi.json``: the gateway's OpenAPI, from ``atrium_gateway.app:create_app()``.

A service that is not importable yet (or has no such function) is skipped with a note, so the
target works while the services are being written. Usage: ``python -m atrium_cli.docs [DIR]``.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ASYNCAPI_SERVICES = ("room", "participant", "track", "recording", "callback", "media")
DEFAULT_OUTPUT = Path("docs/generated")


def _factory(module_name: str, attribute: str) -> Callable[[], Any] | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"skip {module_name}: not importable ({exc})", file=sys.stderr)
        return None
    factory: object = getattr(module, attribute, None)
    if not callable(factory):
        print(f"skip {module_name}: no {attribute}()", file=sys.stderr)
        return None
    return factory


def asyncapi_document(service: str) -> dict[str, Any] | None:
    build_broker = _factory(f"atrium_{service}.app", "build_broker")
    if build_broker is None:
        return None
    from faststream.specification import AsyncAPI

    specification = AsyncAPI(
        build_broker(), title=f"Atrium {service} service", version="1.0"
    ).to_specification()
    document: dict[str, Any] = specification.to_jsonable()
    return document


def openapi_document() -> dict[str, Any] | None:
    create_app = _factory("atrium_gateway.app", "create_app")
    if create_app is None:
        return None
    document: dict[str, Any] = create_app().openapi()
    return document


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    output = Path(arguments[0]) if arguments else DEFAULT_OUTPUT
    output.mkdir(parents=True, exist_ok=True)
    for service in ASYNCAPI_SERVICES:
        document = asyncapi_document(service)
        if document is not None:
            _write(output / f"{service}.asyncapi.json", document)
    gateway = openapi_document()
    if gateway is not None:
        _write(output / "gateway.openapi.json", gateway)
    return 0


if __name__ == "__main__":
    sys.exit(main())
