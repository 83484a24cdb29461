"""What the deployment tests read: the Dockerfile's stages, the compose file, kustomize output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.32.0"
SERVICES = ("gateway", "room", "participant", "track", "recording", "callback", "media")
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/prod")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == kind]


@cache
def dockerfile_stages() -> dict[str, Stage]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            parts = instruction["value"].split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else f"#{len(stages)}"
            current = stages[name] = Stage(name, parts[0])
        elif current is not None:
            current.instructions.append(instruction)
    return stages


def stage_chain(name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    stages = dockerfile_stages()
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def effective(name: str, kind: str) -> str | None:
    """The last CMD/USER/HEALTHCHECK/ENTRYPOINT in force for a target."""
    for stage in stage_chain(name):
        values = stage.of(kind)
        if values:
            return values[-1]
    return None


def image_cmd(target: str) -> list[str]:
    value = effective(target, "CMD")
    assert value is not None, f"target {target} has no CMD"
    parsed = json.loads(value)
    assert isinstance(parsed, list)
    return [str(x) for x in parsed]


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$\$")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, recursively."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if op in (":-", "-"):
            return current if current else (arg or "")
        if op in (":?", "?"):
            if not current:
                raise KeyError(f"{name}: {arg}")
            return current
        return current or ""

    return _VARIABLE.sub(substitute, value)


@cache
def compose_raw() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def compose_resolved() -> dict[str, Any]:
    resolved = interpolate(compose_raw(), read_env_file(ENV_EXAMPLE))
    assert isinstance(resolved, dict)
    return resolved


def compose_environment(service: str) -> dict[str, str]:
    env = compose_resolved()["services"][service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def kubectl() -> str | None:
    return shutil.which("kubectl")


@cache
def kustomize(path: str) -> tuple[dict[str, Any], ...]:
    binary = kubectl()
    assert binary is not None
    result = subprocess.run(
        [binary, "kustomize", str(K8S / path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def base_files() -> list[Path]:
    return sorted(p for p in (K8S / "base").glob("*.yaml") if p.name != "kustomization.yaml")


def docs_of(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
        spec: dict[str, Any] = doc["spec"]["template"]["spec"]
        return spec
    return None


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"{kind}/{name} not rendered")
