"""The install says what it does and which torch it takes; the image matches `make serve`."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import start_server

ROOT = pathlib.Path(__file__).resolve().parents[1]


def make_dry_run(*args: str) -> str:
    return subprocess.run(["make", "-n", "-B", "install", *args], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=60).stdout


@pytest.mark.skipif(not shutil.which("make"), reason="make not installed")
def test_install_names_the_torch_build_and_takes_a_cpu_index():
    plain = make_dry_run()
    assert "--quiet" not in plain and "--index-url" not in plain
    assert "the CUDA build" in plain and "TORCH_INDEX" in plain
    cpu = make_dry_run("TORCH_INDEX=https://wheels.invalid/cpu")
    assert "--index-url https://wheels.invalid/cpu \"torch==2.13.0\"" in cpu
    assert "installed torch" in cpu  # the build actually installed is printed


def test_image_serves_what_make_serves():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "torchcrepe==0.0.24" in dockerfile and "torchcrepe==0.0.24" in makefile
    assert "--format docker" in dockerfile  # buildah keeps the HEALTHCHECK only then


def healthcheck(address: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUDIODREAM_")}
    return subprocess.run([sys.executable, "-m", "audiodream_server.healthcheck", address],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl (Debian package) not installed")
def test_health_check_speaks_tls_when_the_server_does(models, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    server, address = start_server(models, tls_cert=str(cert), tls_key=str(key))
    try:
        ok = healthcheck(address, AUDIODREAM_TLS_CERT=str(cert))
        assert ok.returncode == 0 and ok.stdout.strip() == "serving", ok.stderr
        plain = healthcheck(address)  # a plaintext probe cannot talk to a TLS-only server
        assert plain.returncode == 1 and "unhealthy" in plain.stderr
        wrong = healthcheck(address, AUDIODREAM_TLS_CERT=str(cert),
                            AUDIODREAM_HEALTHCHECK_NAME="elsewhere")
        assert wrong.returncode == 1
    finally:
        server.stop(None)


def test_health_check_plaintext(server_address):
    result = healthcheck(server_address)
    assert result.returncode == 0 and result.stdout.strip() == "serving"
