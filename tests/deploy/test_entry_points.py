"""Each image's CMD, started as the image would start it (same module and arguments, the compose
file's environment, local NATS and Redis), answers its health endpoints and /metrics, drains, and
exits 0 on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
from redis.asyncio import Redis

from atrium_cli.embedded import free_port
from atrium_shared.workers import WorkerRegistry
from tests.deploy.manifests import SERVICES, compose_environment, image_cmd
from tests.support.ready import wait_ready
from tests.support.stack import Servers
from tests.support.waiting import eventually_sync

COMPOSE_SERVICE = {s: s for s in SERVICES} | {"gateway": "gateway-1", "media": "media-1"}


def get(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


class Started:
    def __init__(self, name: str, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.name, self.process, self.port, self.log = name, process, port, log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 60) -> None:
        wait_ready(
            self.process,
            self.url("/readyz"),
            name=self.name,
            timeout=timeout,
            log=lambda: self.log.read_text()[-3000:],
            error=AssertionError,
            interval=0.1,
        )

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise


class StartImage(Protocol):
    def __call__(self, service: str, **overrides: str) -> Started: ...


@pytest.fixture
def start(servers: Servers, tmp_path: Path) -> Iterator[StartImage]:
    started: list[Started] = []

    def run(service: str, **overrides: str) -> Started:
        env = dict(os.environ)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        env.update(compose_environment(COMPOSE_SERVICE[service]))
        # The compose network's host names become this machine's servers; the ports are free ones.
        env.update(NATS_URL=servers.nats.url, REDIS_URL=servers.redis.url)
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        port = free_port()
        if service == "gateway":
            env["ATRIUM_HTTP_PORT"] = str(port)
            env["ATRIUM_HEALTH_PORT"] = ""  # as the gateway image sets it
        else:
            env["ATRIUM_HEALTH_PORT"] = str(port)
        if service == "media":
            env["ATRIUM_MEDIA_HOST_ADDRESSES"] = "127.0.0.1"
        env.update(overrides)
        command = image_cmd(service)
        assert command[0] == "python"
        log = tmp_path / f"{service}.log"
        process = subprocess.Popen(
            [sys.executable, *command[1:]],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(Started(service, process, port, log))
        return started[-1]

    yield run
    for item in started:
        if item.process.poll() is None:
            os.killpg(item.process.pid, signal.SIGKILL)
            item.process.wait(10)


@pytest.mark.integration
@pytest.mark.parametrize("service", SERVICES)
def test_image_command_answers_health_and_metrics(service: str, start: StartImage) -> None:
    proc = start(service)
    proc.wait_ready()
    assert get(proc.url("/livez"))[0] == 200
    status, metrics = get(proc.url("/metrics"))
    assert status == 200
    assert "process_resident_memory_bytes" in metrics
    if service == "media":
        assert 'atrium_media_load{worker_id="media-1"} 0.0' in metrics
        assert 'atrium_media_capacity{worker_id="media-1"} 200.0' in metrics
    assert proc.terminate() == 0, proc.log.read_text()[-3000:]


@pytest.mark.integration
async def test_media_worker_drains_on_request_then_exits_cleanly(
    start: StartImage, servers: Servers
) -> None:
    proc = start("media", ATRIUM_DRAIN_TIMEOUT_SECONDS="30")
    proc.wait_ready()
    redis = Redis.from_url(servers.redis.url, decode_responses=True)
    try:
        registry = WorkerRegistry(redis)
        assert (await registry.least_loaded()) is not None

        # preStop's request: no session here, so the drain is over at once (or on the next poll).
        def drained() -> tuple[int, str] | None:
            answer = get(proc.url("/drain"), "POST")
            assert answer[0] in (200, 202), answer  # 202: still draining
            return answer if answer[0] == 200 else None

        answer = eventually_sync(drained, interval=0.2, retry_on=(), message="POST /drain: 200")
        assert answer is not None and answer[1] == "drained"
        assert get(proc.url("/readyz"))[0] == 503  # out of rotation while draining
        info = await registry.get("media-1")
        assert info is not None and info.draining
        assert await registry.least_loaded() is None  # no new room goes there
        assert await registry.is_live("media-1")  # but the rooms it hosts stay on it
        _, metrics = get(proc.url("/metrics"))
        assert 'atrium_media_draining{worker_id="media-1"} 1.0' in metrics
        assert get(proc.url("/drain"))[0] == 405  # only POST drains
        assert proc.terminate() == 0, proc.log.read_text()[-3000:]
        assert await registry.get("media-1") is None  # left the registry on exit
    finally:
        await redis.aclose()


@pytest.mark.integration
def test_bootstrap_provisions_the_configured_credentials(servers: Servers) -> None:
    """The compose one-shot / Kubernetes Job: `atrium provision` with .env's credentials."""
    env = dict(os.environ)
    env.update(compose_environment("bootstrap"))
    env["REDIS_URL"] = servers.redis.url
    env["ATRIUM_ACCOUNT_SID"] = "AC" + "ab" * 16
    env["ATRIUM_API_KEY_SID"] = "SK" + "cd" * 16
    command = [sys.executable, "-m", "atrium_cli.main", "provision"]
    for _ in range(2):  # idempotent: every deploy runs it
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "AC" + "ab" * 16 in done.stdout and env["ATRIUM_AUTH_TOKEN"] not in done.stdout
    env.pop("ATRIUM_API_KEY_SECRET")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "ATRIUM_API_KEY_SECRET" in done.stderr
