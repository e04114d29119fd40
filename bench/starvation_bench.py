"""Starvation: do idle calls keep a server from answering? Prints the numbers.

Starts `audiodream serve` (token from a file, room for 256 streams), opens 200
StreamDream calls that never send their config and 50 reflection calls that
never send a request, all authenticated and left idle, then times health
checks and authenticated ListModels calls while they stay open. Also opens 50
unauthenticated reflection calls (refused at once when a token is set).

    python bench/starvation_bench.py [--streams 200] [--reflections 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from audiodream_proto.v1 import audiodream_pb2 as pb
from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc

TOKEN = "starvation-bench-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
CALLS_PER_CHANNEL = 50


def start_server(folder: Path) -> tuple[subprocess.Popen, str, Path]:
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    log = folder / "server.log"
    env = {**os.environ, "AUDIODREAM_THREADS": "1", "AUDIODREAM_MAX_STREAMS": "256",
           "AUDIODREAM_STREAM_CONFIG_SECONDS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "audiodream.cli", "serve", "--port", "0",
                             "--token-file", str(token_file)],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"listening on (\S+:\d+)", log.read_text())
        if found:
            return proc, found.group(1), log
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start:\n" + log.read_text())


def idle_requests(release: threading.Event):
    release.wait()  # never sends anything until the bench ends
    return
    yield  # pragma: no cover


def open_idle(address: str, streams: int, reflections: int, unauthenticated: int,
              release: threading.Event) -> tuple[list, list]:
    channels, calls = [], []

    def channel():
        if not channels or len(calls) % CALLS_PER_CHANNEL == 0:
            channels.append(grpc.insecure_channel(address))
        return channels[-1]

    for _ in range(streams):
        calls.append(pb_grpc.DreamServiceStub(channel()).StreamDream(
            idle_requests(release), metadata=AUTH))
    for i in range(reflections + unauthenticated):
        calls.append(reflection_pb2_grpc.ServerReflectionStub(channel()).ServerReflectionInfo(
            idle_requests(release), metadata=AUTH if i < reflections else None))
    return channels, calls


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure(address: str, streams: int, reflections: int, repeats: int = 20) -> dict:
    release = threading.Event()
    channels, calls = open_idle(address, streams, reflections, reflections, release)
    time.sleep(2.0)  # let every call reach the server
    probe = grpc.insecure_channel(address)
    health = health_pb2_grpc.HealthStub(probe)
    dream = pb_grpc.DreamServiceStub(probe)
    try:
        health_s = timed(lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=10),
                         repeats)
        list_s = timed(lambda: dream.ListModels(pb.ListModelsRequest(), metadata=AUTH,
                                                timeout=10), repeats)
        # A fresh reflection call without the token is refused.
        refused = reflection_pb2_grpc.ServerReflectionStub(probe).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        try:
            list(refused)
            reflection_code = "OK"
        except grpc.RpcError as exc:
            reflection_code = exc.code().name
        still_open = sum(1 for call in calls if not call.done())
    finally:
        release.set()
        for call in calls:
            call.cancel()
        for channel in channels + [probe]:
            channel.close()
    return {"idle_streams": streams, "idle_reflections": reflections,
            "open_during_probe": still_open,
            "health_median_s": statistics.median(health_s), "health_max_s": max(health_s),
            "list_models_median_s": statistics.median(list_s), "list_models_max_s": max(list_s),
            "unauthenticated_reflection": reflection_code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--reflections", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="one JSON line, for tests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        proc, address, log = start_server(Path(folder))
        try:
            result = measure(address, args.streams, args.reflections)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
        result["server_errors_logged"] = len(errors)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['idle_streams']} idle streams + {result['idle_reflections']} idle "
          f"reflection calls open ({result['open_during_probe']} still open while probing)")
    print(f"health check: median {result['health_median_s'] * 1e3:.1f} ms, "
          f"max {result['health_max_s'] * 1e3:.1f} ms")
    print(f"authenticated ListModels: median {result['list_models_median_s'] * 1e3:.1f} ms, "
          f"max {result['list_models_max_s'] * 1e3:.1f} ms")
    print(f"reflection without the token: {result['unauthenticated_reflection']}; "
          f"server ERROR lines: {result['server_errors_logged']}")


if __name__ == "__main__":
    main()
