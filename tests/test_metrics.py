"""The metrics endpoint, the drain and the client's address forms, on a real server."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import pytest
from conftest import start_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_replicas import metric

from audiodream import Client, ServerError
from audiodream_server.service.server import SERVICE_NAME

RATE = 44100


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return reply.read().decode()


@pytest.fixture()
def served(models):
    server, address = start_server(models, max_active=1)
    port = server.serve_metrics("127.0.0.1", 0)
    yield server, address, port
    server.stop(None)


def test_metrics_count_calls_codes_dreams_streams_and_rejections(served, make_tone):
    server, address, port = served
    with Client(address, timeout=120) as client:
        client.models()
        model = client.dream(make_tone(1.0, RATE), RATE, iterations=2).model
        client.dream(make_tone(0.5, RATE), RATE, iterations=1, progress=lambda update: None)
        with pytest.raises(ServerError):
            client.layers("no-such-model")
        with pytest.raises(ServerError):
            client.dream(np.full(RATE, np.nan, np.float32), RATE)
        with client.stream(RATE, block_size=2048, iterations=1, offline=True) as stream:
            blocks = [make_tone(2048 / RATE, RATE)[:2048]] * 3
            assert len(list(stream.process(blocks))) == 3
            text = scrape(port)
            assert metric(text, "audiodream_streams_active") == 1
    text = scrape(port)
    assert metric(text, "audiodream_rpc_handled_total", method="ListModels", code="OK") == 1
    assert metric(text, "audiodream_rpc_handled_total", method="Dream", code="OK") == 1
    # The client reads DreamProgress to its end: OK on the server, not CANCELLED.
    assert metric(text, "audiodream_rpc_handled_total", method="DreamProgress", code="OK") == 1
    assert metric(text, "audiodream_rpc_handled_total", method="ListLayers",
                  code="NOT_FOUND") == 1
    assert metric(text, "audiodream_rpc_handled_total", method="Dream",
                  code="INVALID_ARGUMENT") == 1
    assert metric(text, "audiodream_rejections_total", reason="not_found") == 1
    assert metric(text, "audiodream_rejections_total", reason="invalid_argument") == 1
    assert metric(text, "audiodream_rpc_duration_seconds_count", method="Dream") == 2
    assert metric(text, "audiodream_dream_audio_seconds_total",
                  model=model) == pytest.approx(1.5)
    assert metric(text, "audiodream_dream_compute_seconds_total", model=model) > 0
    assert metric(text, "audiodream_stream_blocks_total", model=model) == 3
    assert metric(text, "audiodream_stream_block_real_time_factor_count",
                  model=model) == 3
    assert metric(text, "audiodream_streams_active") == 0
    assert metric(text, "audiodream_rpc_in_flight", method="Dream") == 0
    assert metric(text, "audiodream_queue_depth") == 0


def test_a_draining_server_says_not_serving_and_refuses_new_work_unavailable(served,
                                                                               make_tone):
    server, address, port = served
    server.drain(5.0)
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    with Client(address, timeout=60) as client:
        assert client.models()  # cheap questions are still answered
        with pytest.raises(ServerError) as refused:
            client.dream(make_tone(0.5, RATE), RATE, iterations=1)
        assert refused.value.code == "UNAVAILABLE" and "another replica" in refused.value.message
        with pytest.raises(ServerError) as refused:
            client.stream(RATE, block_size=2048)
        assert refused.value.code == "UNAVAILABLE"
    text = scrape(port)
    assert metric(text, "audiodream_draining") == 1
    # The client's retry policy tried the one replica it has twice; both counted.
    assert metric(text, "audiodream_rejections_total", reason="draining") >= 2


def test_a_running_stream_is_told_to_move_when_its_server_drains(served, make_tone):
    server, address, _ = served
    block = make_tone(2048 / RATE, RATE)[:2048]
    with Client(address, timeout=60) as client, \
            client.stream(RATE, block_size=2048, iterations=1, offline=True) as stream:
        stream.send(block)
        stream.receive()
        assert stream.ready.replica.endswith(":" + address.rsplit(":", 1)[1])
        server.drain(7.0)
        stream.send(block)
        stream.receive()
        assert [w.code for w in stream.warnings] == ["draining"]
        assert "another replica" in stream.warnings[0].message
        stream.send(block)
        stream.receive()  # it goes on until the grace ends; warned once
        assert len(stream.warnings) == 1


def test_wrong_tokens_are_counted_as_rejections(models):
    server, address = start_server(models, token="sesame")
    port = server.serve_metrics("127.0.0.1", 0)
    try:
        with Client(address, token="wrong", timeout=30) as client:
            with pytest.raises(ServerError):
                client.models()
        assert metric(scrape(port), "audiodream_rejections_total", reason="unauthenticated") == 1
    finally:
        server.stop(None)


def test_a_dns_name_and_a_list_with_host_names_reach_the_server(served, make_tone):
    server, address, port = served
    grpc_port = address.rsplit(":", 1)[1]
    for given in (f"dns:///localhost:{grpc_port}", f"localhost:{grpc_port},{address}"):
        with Client(given, timeout=60) as client:
            out = client.dream(make_tone(0.25, RATE), RATE, iterations=1)
        assert out.replica.endswith(":" + grpc_port)
    with pytest.raises(ValueError, match="HOST:PORT"):
        Client("127.0.0.1:1,no-port-here")
