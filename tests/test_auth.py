"""Token authentication and TLS on a real server."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audiodream import Client, ServerError
from conftest import start_server

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(models):
    server, address = start_server(models, token=TOKEN)
    yield address
    server.stop(None)


@pytest.mark.parametrize("token", ["", "wrong"])
def test_calls_without_the_right_token_are_refused(guarded, token):
    with Client(guarded, token=token) as c:
        for call in (c.models, lambda: c.layers("model2"),
                     lambda: c.dream(np.zeros(4410, np.float32), 44100, iterations=0),
                     lambda: c.stream(44100, 1, 1024)):
            with pytest.raises(ServerError) as info:
                call()
            assert info.value.code == "UNAUTHENTICATED" and "token" in info.value.message


def test_the_right_token_opens_every_call(guarded):
    with Client(guarded, token=TOKEN) as c:
        assert c.models()
        x = np.full(4410, 0.1, np.float32)
        assert np.array_equal(c.dream(x, 44100, iterations=0).audio, x)
        with c.stream(44100, 1, 1024, iterations=0) as s:
            s.send(np.zeros(1024, np.float32))
            assert s.receive()[0] == 0


def test_health_stays_open_for_probes(guarded):
    with grpc.insecure_channel(guarded) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl (Debian package) not installed")
def test_tls_with_a_self_signed_certificate(models, tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    server, address = start_server(models, host="localhost", tls_cert=str(cert),
                                   tls_key=str(key))
    try:
        address = address.replace("127.0.0.1", "localhost")
        with Client(address, tls_ca=str(cert)) as c:
            assert c.models()
        with Client(address, timeout=5) as plain:  # no TLS: cannot talk to it
            with pytest.raises(ServerError) as info:
                plain.models()
            assert info.value.code == "UNAVAILABLE"
    finally:
        server.stop(None)


def test_reflection_needs_the_token_when_one_is_set(guarded):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    ask = [reflection_pb2.ServerReflectionRequest(list_services="")]
    with grpc.insecure_channel(guarded) as channel:
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo
        with pytest.raises(grpc.RpcError) as info:
            list(reflect(iter(ask)))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        (reply,) = reflect(iter(ask), metadata=(("authorization", f"Bearer {TOKEN}"),))
    names = {s.name for s in reply.list_services_response.service}
    assert "audiodream.v1.DreamService" in names


def test_token_from_a_file_or_the_environment(tmp_path, monkeypatch):
    from audiodream_server.service.config import ServerConfig

    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    monkeypatch.setenv("AUDIODREAM_TOKEN_FILE", str(token_file))
    assert ServerConfig.from_env().resolve_token().token == "from-a-file"
    monkeypatch.delenv("AUDIODREAM_TOKEN_FILE")
    monkeypatch.setenv("AUDIODREAM_TOKEN", "from-the-env")
    assert ServerConfig.from_env().resolve_token().token == "from-the-env"
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="empty"):
        ServerConfig(token_file=str(tmp_path / "empty")).resolve_token()


def test_serving_beyond_loopback_without_a_token_warns():
    from audiodream_server.service.config import ServerConfig
    from audiodream_server.service.server import exposure_warning

    assert exposure_warning(ServerConfig(host="0.0.0.0")) is not None
    assert exposure_warning(ServerConfig(host="::")) is not None
    assert exposure_warning(ServerConfig(host="0.0.0.0", token="t")) is None
    for host in ("127.0.0.1", "localhost", "::1", "[::1]"):
        assert exposure_warning(ServerConfig(host=host)) is None


def test_serve_reads_the_token_file_and_keeps_it_out_of_argv(tmp_path):
    """A real `audiodream serve` process: the token works and never appears in its argv."""
    import os
    import sys

    from watch import Output

    token_file = tmp_path / "token"
    token_file.write_text("file-token-123\n")
    proc = subprocess.Popen([sys.executable, "-m", "audiodream.cli", "serve", "--port", "0",
                             "--token-file", str(token_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "AUDIODREAM_THREADS": "1"})
    output = Output(proc.stdout)
    try:
        found = output.wait_for(r"listening on \S+:(\d+)")
        assert found, output.text()
        port = found.group(1)
        assert "file-token-123" not in open(f"/proc/{proc.pid}/cmdline").read()
        with Client(f"127.0.0.1:{port}", token="file-token-123") as c:
            assert c.models()
        with Client(f"127.0.0.1:{port}") as c, pytest.raises(ServerError):
            c.models()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
