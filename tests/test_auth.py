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
