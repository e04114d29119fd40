"""Idle and slow calls must not starve the server; admission is counted and fair.

The numbers come from `bench/starvation_bench.py` (a real server process, 200
idle streams and 50 idle reflection calls); here they are asserted loosely.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

from audiodream_proto.v1 import audiodream_pb2 as pb
from conftest import start_server
from served import health_status, stub

BENCH = Path(__file__).resolve().parents[2] / "bench" / "starvation_bench.py"


def test_idle_calls_do_not_starve_health_or_authenticated_calls():
    out = subprocess.run([sys.executable, str(BENCH), "--json"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nstarvation: {result}")
    assert result["open_during_probe"] == 250  # every idle call held, none refused
    # Every probe had a 10 s deadline, so a starved one failed the bench above; how
    # fast they answered (targets 0.2 s and 0.5 s) is printed, not asserted: on a
    # shared machine the load, not the server, would decide a time limit.
    assert result["unauthenticated_reflection"] == "UNAUTHENTICATED"
    assert result["server_errors_logged"] == 0


def waiting_forever(release: threading.Event):
    release.wait()
    return
    yield  # pragma: no cover


def test_a_stream_counts_from_the_moment_it_opens_and_must_send_its_config(models):
    server, address = start_server(models, max_streams=2, stream_config_seconds=1.0)
    release = threading.Event()
    try:
        with grpc.insecure_channel(address) as channel:
            dream = stub(channel)
            idle = [dream.StreamDream(waiting_forever(release)) for _ in range(2)]
            hub = server.services.dream.streams
            assert hub.wait_active(lambda n: n == 2, timeout=30)  # both hold their slot
            # Refused at once, not left waiting until its deadline.
            with pytest.raises(grpc.RpcError) as info:
                list(dream.StreamDream(waiting_forever(release), timeout=10))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # The idle ones are ended once their config deadline passes.
            for call in idle:
                with pytest.raises(grpc.RpcError) as info:
                    list(call)
                assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert "StreamConfig" in info.value.details()
            assert health_status(channel) == "SERVING"
    finally:
        release.set()
        server.stop(None)


def test_honest_use_at_the_default_limits_leaves_health_answering(models):
    """16 streams + 1 dream + 16 queued used to take all 32 threads of the old server."""
    server, address = start_server(models)
    release = threading.Event()
    x = (0.1 * np.random.default_rng(0).standard_normal(44100)).astype("<f4")
    request = pb.DreamRequest(audio=pb.Audio(pcm=x.tobytes(), sample_rate=44100, channels=1),
                              params=pb.DreamParams(iterations=400))
    try:
        with grpc.insecure_channel(address) as channel:
            dream = stub(channel)
            streams = [dream.StreamDream(waiting_forever(release)) for _ in range(16)]
            dreams = [dream.Dream.future(request, timeout=120) for _ in range(17)]
            hub, gate = server.services.dream.streams, server.services.dream.gate
            assert hub.wait_active(lambda n: n == 16, timeout=60)
            assert gate.wait_until(lambda g: g.running + g.waiting == 17, timeout=60)
            # Both answer within their deadlines while every slot is taken.
            assert health_status(channel, timeout=5) == "SERVING"
            dream.ListModels(pb.ListModelsRequest(), timeout=5)
            for call in dreams + streams:
                call.cancel()
    finally:
        release.set()
        server.stop(None)


def test_queued_dreams_run_in_arrival_order(models):
    server, address = start_server(models, max_active=1, max_queued=16)
    x = (0.1 * np.random.default_rng(0).standard_normal(22050)).astype("<f4")
    order: list[int] = []
    lock = threading.Lock()

    def request(iterations):
        return pb.DreamRequest(audio=pb.Audio(pcm=x.tobytes(), sample_rate=44100, channels=1),
                               params=pb.DreamParams(iterations=iterations))

    def done(i):
        with lock:
            order.append(i)

    try:
        with grpc.insecure_channel(address) as channel:
            dream = stub(channel)
            gate = server.services.dream.gate
            first = dream.Dream.future(request(1000), timeout=300)  # holds the slot
            assert gate.wait_until(lambda g: g.running == 1, timeout=60)
            futures = []
            for i in range(8):
                future = dream.Dream.future(request(2), timeout=300)
                future.add_done_callback(lambda f, i=i: done(i))
                futures.append(future)
                # Queued before the next one is sent: the arrival order is known.
                assert gate.wait_until(lambda g, n=i + 1: g.waiting == n, timeout=60)
            first.cancel()  # frees the slot once its step ends; the queue drains
            queued = [f.result().timing.queue_seconds for f in futures]
        assert order == list(range(8)), order
        assert min(queued) > 0  # every one of them did wait its turn
    finally:
        server.stop(None)
