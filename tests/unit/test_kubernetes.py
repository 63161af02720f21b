"""The example Kubernetes manifests agree with the sidecar: settings, ports, probes, grace period, spool volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sidecar.config import Settings, load, variable_name

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
HEALTH_SERVICE = "segment.sidecar.v1.SidecarService"


def documents() -> dict[str, dict[str, Any]]:
    """Every manifest document, by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict) and "kind" in document and "apiVersion" in document, path
            found[document["kind"]] = document
    return found


def sidecar_container(pod: dict[str, Any]) -> dict[str, Any]:
    """The segment-sidecar container of a pod spec (a native sidecar in initContainers, or a plain container)."""
    for container in pod.get("initContainers", []) + pod["containers"]:
        if container["name"] == "segment-sidecar":
            return container
    raise AssertionError("no segment-sidecar container")


def port_of(listen: str) -> int:
    """The port of a host:port setting."""
    return int(listen.rpartition(":")[2])


def test_manifests_parse_and_hold_the_expected_objects() -> None:
    """The folder holds a ConfigMap, a Deployment and a kustomization listing both."""
    kinds = documents()
    assert {"ConfigMap", "Deployment", "Kustomization"} <= set(kinds)
    assert sorted(kinds["Kustomization"]["resources"]) == ["configmap.yaml", "deployment.yaml"]


def test_config_map_holds_only_valid_sidecar_settings() -> None:
    """Every ConfigMap key is a SIDECAR_* setting and the whole map passes the sidecar's own validation."""
    data = documents()["ConfigMap"]["data"]
    known = {variable_name(name) for name in Settings.model_fields}
    assert set(data) <= known, set(data) - known
    settings, warnings = load(data)
    assert warnings == []
    assert settings.spool == "disk"


def test_deployment_wires_the_sidecar_like_the_image_expects() -> None:
    """envFrom the ConfigMap, no Secret, exec health probes (the listener is loopback), metrics port, spool emptyDir."""
    kinds = documents()
    data = kinds["ConfigMap"]["data"]
    settings, _ = load(data)
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    container = sidecar_container(pod)
    assert container.get("restartPolicy") == "Always", "a native sidecar, so it stops after the app"
    assert container["envFrom"] == [{"configMapRef": {"name": kinds["ConfigMap"]["metadata"]["name"]}}]
    assert "Secret" not in str(kinds["Deployment"]) and "secretKeyRef" not in str(kinds["Deployment"])

    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["grpc"] == port_of(settings.listen)
    assert settings.metrics_listen is not None and ports["metrics"] == port_of(settings.metrics_listen)
    # The kubelet's own gRPC probe dials the pod IP, which a loopback listener never answers: probes run inside.
    assert settings.listen.startswith("127.0.0.1:")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "grpc" not in container[probe], probe
        assert container[probe]["exec"]["command"][:2] == ["segment-sidecar", "healthcheck"], probe
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > settings.shutdown_grace, (
        "liveness must not kill a draining sidecar"
    )

    assert pod["terminationGracePeriodSeconds"] >= settings.shutdown_grace + 10
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    spool_volume = next(name for name, path in mounts.items() if path == str(settings.spool_dir))
    assert "emptyDir" in volumes[spool_volume]
    size_limit = volumes[spool_volume]["emptyDir"]["sizeLimit"]
    assert size_limit.endswith("Mi") and int(size_limit[:-2]) * 2**20 > settings.spool_max_bytes

    requests = container["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    app = next(c for c in pod["containers"] if c["name"] != "segment-sidecar")
    address = {e["name"]: e["value"] for e in app["env"]}["SEGMENT_SIDECAR_ADDRESS"]
    assert port_of(address) == ports["grpc"]
