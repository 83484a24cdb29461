"""Container-side probes, with nothing but the Python standard library (the images have no curl).

``python -m atrium_shared.probe health [PATH]``
    GET ``PATH`` (default ``/livez``) on this process's health port: ``ATRIUM_HEALTH_PORT``, or
    ``ATRIUM_HTTP_PORT`` for the gateway. Exit 0 on 200. The images' ``HEALTHCHECK``.
``python -m atrium_shared.probe drain``
    ``POST /drain`` on the health port, then poll until the service answers ``drained`` or
    ``ATRIUM_DRAIN_TIMEOUT_SECONDS`` passed. Kubernetes' preStop hook of the media workers: the
    worker takes no new rooms at once and the hook returns when its rooms are empty, so the SIGTERM
    that follows finds nothing left to drop. Exit 0 in every case: a failing preStop hook only
    delays the SIGTERM, which drains too.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from atrium_shared.settings import get_settings

POLL_SECONDS = 2.0


def health_port() -> int:
    settings = get_settings()
    return settings.health_port or settings.http_port


def request(path: str, method: str = "GET", timeout: float = 3.0) -> int:
    url = f"http://127.0.0.1:{health_port()}{path}"
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def health(path: str) -> int:
    try:
        status = request(path)
    except OSError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    return 0 if status == 200 else 1


def drain(timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = request("/drain", method="POST")
        except OSError as exc:
            print(f"drain: {exc}", file=sys.stderr)
            return 0
        if status != 202:  # 200 drained; anything else: nothing to wait for here
            return 0
        if time.monotonic() >= deadline:
            print("drain: timed out; SIGTERM takes over", file=sys.stderr)
            return 0
        time.sleep(POLL_SECONDS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atrium_shared.probe")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("health", help="GET a health path; exit 0 on 200")
    check.add_argument("path", nargs="?", default="/livez")
    wait = commands.add_parser("drain", help="start draining and wait until drained")
    wait.add_argument(
        "--timeout",
        type=float,
        default=get_settings().drain_timeout_seconds,
    )
    args = parser.parse_args(argv)
    if args.command == "health":
        return health(args.path)
    return drain(args.timeout)


if __name__ == "__main__":
    sys.exit(main())
