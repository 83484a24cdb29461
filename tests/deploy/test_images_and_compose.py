"""The Dockerfile (parses, copies only what exists, per-service venvs from the lock file, non-root,
healthchecked, no compilers) and docker-compose.yml (Compose specification schema, wiring)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.deploy.manifests import (
    DEPLOY,
    ENV_EXAMPLE,
    ROOT,
    SERVICES,
    compose_environment,
    compose_raw,
    compose_resolved,
    dockerfile_stages,
    effective,
    image_cmd,
    read_env_file,
    stage_chain,
)

TARGETS = (*SERVICES, "cli")


def test_dockerfile_parses_and_has_every_target() -> None:
    stages = dockerfile_stages()
    for target in TARGETS:
        assert target in stages, target


def test_every_copied_path_exists() -> None:
    for stage in dockerfile_stages().values():
        for value in stage.of("COPY") + stage.of("ADD"):
            words = value.split()
            if any(w.startswith("--from=") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            assert sources, value
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"


@pytest.mark.parametrize("target", TARGETS)
def test_image_builds_only_its_own_package_as_non_root(target: str) -> None:
    chain = stage_chain(target)
    runtime = chain[-1]
    assert runtime.base.startswith("${PYTHON_IMAGE}") or "slim" in runtime.base
    (venv_copy,) = chain[0].of("COPY")
    assert venv_copy.split()[0] == f"--from=venv-{target}"
    venv_stage = dockerfile_stages()[f"venv-{target}"]
    (sync,) = venv_stage.of("RUN")
    assert "uv sync --frozen --no-dev --no-editable" in sync
    assert f"--package atrium-{target}" in sync
    assert effective(target, "USER") == "10001:10001"
    healthcheck = effective(target, "HEALTHCHECK")
    assert healthcheck is not None
    if target != "cli":
        assert "atrium_shared.probe" in healthcheck
    # No compilers anywhere in the final stages.
    for stage in chain:
        for run in stage.of("RUN"):
            assert not re.search(r"\b(gcc|g\+\+|build-essential|clang|make)\b", run), run


def test_the_build_args_default_to_slim_python() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)


@pytest.mark.parametrize("service", SERVICES)
def test_only_the_media_image_brings_aiortc(service: str) -> None:
    """What `uv sync --frozen --package atrium-X` installs, straight from uv.lock (offline)."""
    exported = subprocess.run(
        ["uv", "export", "--frozen", "--no-dev", "--no-hashes", "--package", f"atrium-{service}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    names = {
        re.split(r"[=<>; ]", line.strip())[0].lower()
        for line in exported.splitlines()
        if line and not line.startswith(("#", " "))
    }
    assert ("aiortc" in names) == (service == "media")
    assert ("av" in names) == (service == "media")
    assert "prometheus-client" in names
    assert ("fastapi" in names) == (service == "gateway")


def compose_schema() -> dict[str, object]:
    path = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    loaded = json.loads(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_compose_file_matches_the_compose_specification() -> None:
    schema = compose_schema()
    jsonschema.validate(compose_raw(), schema)
    jsonschema.validate(compose_resolved(), schema)  # with .env.example's values


def test_env_example_defines_every_required_variable() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required <= set(read_env_file(ENV_EXAMPLE)), required - set(read_env_file(ENV_EXAMPLE))


def test_compose_brings_up_the_whole_system() -> None:
    services = compose_resolved()["services"]
    assert {
        "nats",
        "redis",
        "bootstrap",
        "gateway-1",
        "gateway-2",
        "proxy",
        "room",
        "participant",
        "track",
        "recording",
        "callback",
        "media-1",
        "media-2",
        "otel-collector",
        "jaeger",
        "coturn",
    } <= set(services)
    assert "--jetstream" in services["nats"]["command"]
    assert any(v.endswith(":/data") for v in services["nats"]["volumes"])
    assert "--appendonly" in services["redis"]["command"]
    assert services["bootstrap"]["command"] == ["provision"]
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert build["target"] in dockerfile_stages(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"
    for media in ("media-1", "media-2"):
        env = compose_environment(media)
        assert (
            env["ATRIUM_MEDIA_ANNOUNCED_ADDRESS"] == read_env_file(ENV_EXAMPLE)["ATRIUM_PUBLIC_IP"]
        )
        (ports,) = services[media]["ports"]
        assert ports.endswith("/udp")
        low, high = services[media]["sysctls"]["net.ipv4.ip_local_port_range"].split()
        assert ports == f"{low}-{high}:{low}-{high}/udp"
    assert any("16686" in p for p in services["jaeger"]["ports"])
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "gateway-1:8080" in nginx and "gateway-2:8080" in nginx


def test_compose_services_use_the_image_entry_points() -> None:
    services = compose_resolved()["services"]
    for name, service in services.items():
        target = service.get("build", {}).get("target")
        if target in SERVICES:
            assert "command" not in service, f"{name} overrides the image CMD"
            assert image_cmd(target)[:2] == ["python", "-m"]


@pytest.mark.parametrize("target", ["room", "media"])
def test_build_stage_syncs_from_what_the_dockerfile_copies(target: str, tmp_path: Path) -> None:
    """Replay the build stage outside Docker: only the COPY'd paths, the venv stage's exact
    `uv sync` (offline, from uv's cache), then the image's CMD module imports."""
    src = tmp_path / "src"
    for value in dockerfile_stages()["build"].of("COPY"):
        *sources, _dest = value.split()
        for source in sources:
            origin = ROOT / source
            target_path = src / source
            if origin.is_dir():
                shutil.copytree(origin, target_path, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target_path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target_path)
    (run,) = dockerfile_stages()[f"venv-{target}"].of("RUN")
    sync = shlex.split(run[run.index("uv sync") :])
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_OFFLINE": "1",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
    }
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(sync, cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    module = image_cmd(target)[2]
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            f"import {module}, importlib.util as u; print(u.find_spec('aiortc') is not None)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == str(target == "media")
