"""The two-tier example manifests (deploy/kubernetes/two-tier) agree with the sidecar and with each other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sidecar.config import load

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "two-tier"


def documents() -> dict[tuple[str, str], dict[str, Any]]:
    """Every document, by (kind, name)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(FOLDER.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict) and "kind" in document, path
            found[(document["kind"], document.get("metadata", {}).get("name", ""))] = document
    return found


def test_gateway_and_edge_settings_are_valid_and_point_at_each_other() -> None:
    """Both ConfigMaps load (the gateway only with its token: it listens beyond loopback); the edges forward to the
    headless Service's name and port; the gateways' fleet size is their replica count; one Secret holds the token
    both tiers read."""
    docs = documents()
    kustomization = docs[("Kustomization", "")]
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in FOLDER.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    secret = docs[("Secret", "segment-sidecar-tiers")]["stringData"]
    gateway_data = docs[("ConfigMap", "segment-gateway")]["data"]
    edge_data = docs[("ConfigMap", "segment-sidecar-edge")]["data"]
    gateway, warnings = load(
        {**gateway_data, "SIDECAR_AUTH_TOKEN": secret["token"], "SIDECAR_REDIS_URL": secret["redis-url"]}
    )
    assert warnings == []
    edge, warnings = load({**edge_data, "SIDECAR_FORWARD_TOKEN": secret["token"]})
    assert warnings == [] and edge.redis_url is None
    service = docs[("Service", "segment-gateway")]
    assert service["spec"]["clusterIP"] == "None"
    port = service["spec"]["ports"][0]["port"]
    assert edge.forward_to == (f"dns:///{service['metadata']['name']}:{port}",)
    assert gateway.listen.endswith(f":{port}") and edge.integration_name == gateway.integration_name

    stateful = docs[("StatefulSet", "segment-gateway")]["spec"]
    assert stateful["serviceName"] == service["metadata"]["name"]
    assert stateful["replicas"] == gateway.fleet_size
    pod = stateful["template"]["spec"]
    container = pod["containers"][0]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert secrets["SIDECAR_AUTH_TOKEN"] == {"name": "segment-sidecar-tiers", "key": "token"}
    assert secrets["SIDECAR_REDIS_URL"]["key"] in secret
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["spool"] == str(gateway.spool_dir)
    assert [t["metadata"]["name"] for t in stateful["volumeClaimTemplates"]] == ["spool"], "a volume per replica"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["segment-sidecar", "healthcheck"] and command[-1] == f"127.0.0.1:{port}", probe
    assert pod["terminationGracePeriodSeconds"] >= gateway.shutdown_grace + 10
