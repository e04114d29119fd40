"""Kubernetes manifests: valid against the Kubernetes schemas, and scaling on metrics that exist.

`kubernetes-validate` (dev extras) carries the Kubernetes JSON schemas inside its
package, so validation runs without a cluster or a network. `--strict` also
refuses fields the schema does not know (a typo such as `minReplica`).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml
from prometheus_client import generate_latest

ROOT = pathlib.Path(__file__).resolve().parents[1]
K8S = ROOT / "docker" / "k8s"
MANIFESTS = sorted(K8S.glob("*.yaml"))
VALIDATE = [sys.executable, "-m", "kubernetes_validate", "--strict"]


def validate(path) -> subprocess.CompletedProcess:
    return subprocess.run([*VALIDATE, str(path)], capture_output=True, text=True, timeout=120)


def documents(name: str) -> dict:
    return {d["kind"]: d for d in yaml.safe_load_all((K8S / name).read_text())}


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_manifest_validates_against_the_kubernetes_schemas(path):
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout + result.stderr


@pytest.mark.parametrize("breakage", [("maxReplicas: 8", 'maxReplicas: "eight"'),
                                      ("minReplicas: 2", "minReplica: 2"),
                                      ("maxUnavailable: 1", "maxUnavailable: [1]")])
def test_a_broken_manifest_fails_validation(tmp_path, breakage):
    old, new = breakage
    text = (K8S / "autoscaling.yaml").read_text()
    assert old in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(old, new))
    result = validate(broken)
    assert result.returncode != 0
    assert "did not validate" in result.stdout + result.stderr


def test_the_autoscaler_scales_on_metrics_the_server_exports_through_the_adapter(models):
    from audiodream_server.service.config import ServerConfig
    from audiodream_server.service.server import create_server

    server, _, services = create_server(ServerConfig(port=0), models)
    try:
        exported = generate_latest(services.dream.metrics.registry).decode()
    finally:
        server.stop(None)
    hpa = documents("autoscaling.yaml")["HorizontalPodAutoscaler"]
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
    assert wanted == {"audiodream_streams_active", "audiodream_queue_depth"}
    rules = yaml.safe_load(documents("prometheus-adapter-rules.yaml")["ConfigMap"]["data"]
                           ["config.yaml"])["rules"]
    served = {rule["name"]["as"] for rule in rules}
    assert wanted <= served
    for name in wanted:  # a gauge the server really exports
        assert f"# TYPE {name} gauge" in exported


def test_the_deployment_exports_metrics_and_drains_within_its_grace_period():
    deployment = documents("audiodream.yaml")["Deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(env["AUDIODREAM_METRICS_PORT"])
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == env["AUDIODREAM_METRICS_PORT"]
    # The server's grace ends before Kubernetes' kill.
    assert float(env["AUDIODREAM_GRACE_SECONDS"]) < pod["spec"]["terminationGracePeriodSeconds"]
    pdb = documents("autoscaling.yaml")["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
