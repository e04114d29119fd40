"""StreamDream cost: real-time factor, transport overhead, and batching of streams.

Default model, 48 kHz mono, block 2048, a real server on a free loopback port.
Prints:
  - real-time factor (server processing time per block / block duration) at
    K = 1, 4, 10 iterations per block (offline streams: nothing is skipped)
  - transport: client round trip minus server processing, per block (K = 0)
  - 1, 2, 4 concurrent streams at K = 4: wall time per block round, and the cost
    of N streams relative to one (target: 4 streams <= 2x one)
Run: python bench/stream_bench.py [--blocks 60]
"""

from __future__ import annotations

import argparse
import os
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from audiodream import Client
from audiodream_server import runtime
from audiodream_server.models.catalog import build_registry
from audiodream_server.service.config import ServerConfig
from audiodream_server.service.server import create_server

RATE, BLOCK, WINDOW = 48000, 2048, 0


def signal(blocks: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(blocks * BLOCK) / RATE
    x = 0.3 * np.sin(2 * np.pi * (110 + 50 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    return [b.astype(np.float32) for b in np.split(x, blocks)]


def ping_pong(address: str, blocks: list[np.ndarray], iterations: int) -> dict:
    """One block in flight at a time; returns server and round-trip seconds per block."""
    rtts = []
    with Client(address) as c, c.stream(RATE, 1, BLOCK, iterations=iterations,
                                        offline=True, window=WINDOW) as s:
        for block in blocks:
            start = time.perf_counter()
            s.send(block)
            s.receive()
            rtts.append(time.perf_counter() - start)
        served = [st.mean_block_seconds for st in s.stats[1:]] or [s.stats[0].mean_block_seconds]
    skip = min(5, len(rtts) // 4)  # warm-up
    return {"rtt": float(np.median(rtts[skip:])), "server": float(np.median(served))}


def concurrent(address: str, streams: int, blocks: int, iterations: int) -> float:
    """Wall seconds per block round with `streams` ping-pong streams at once."""
    barrier = threading.Barrier(streams + 1)
    done = []

    def run(k):
        data = signal(blocks, seed=k)
        with Client(address) as c, c.stream(RATE, 1, BLOCK, iterations=iterations,
                                            offline=True, window=WINDOW) as s:
            s.send(data[0])
            s.receive()
            barrier.wait()
            for block in data[1:]:
                s.send(block)
                s.receive()
        done.append(time.perf_counter())

    threads = [threading.Thread(target=run, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return (max(done) - start) / (blocks - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=60)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rate", type=int, default=48000, help="client rate, Hz [48000]")
    parser.add_argument("--window", type=int, default=0,
                        help="context frames per block [0 = the model's window]")
    args = parser.parse_args()
    global RATE, WINDOW
    RATE, WINDOW = args.rate, args.window

    threads = runtime.configure_threads(args.threads)
    models = build_registry(pretrained=False).load(runtime.pick_device("auto"))
    server, port, services = create_server(ServerConfig(port=0), models)
    server.start()
    address = f"127.0.0.1:{port}"
    block_seconds = BLOCK / RATE
    print(f"model {models.default} on {next(iter(models)).device}, {threads} threads; "
          f"{RATE} Hz mono, block {BLOCK} ({block_seconds * 1e3:.1f} ms), "
          f"context {WINDOW or 'the model window'}")
    try:
        idle = ping_pong(address, signal(args.blocks), 0)
        print(f"transport (K=0): round trip {idle['rtt'] * 1e3:.2f} ms per block, "
              f"server {idle['server'] * 1e3:.3f} ms, transport overhead "
              f"{(idle['rtt'] - idle['server']) * 1e3:.2f} ms")
        for k in (1, 4, 10):
            r = ping_pong(address, signal(args.blocks), k)
            print(f"K={k:<2}: server {r['server'] * 1e3:6.1f} ms per block, real-time factor "
                  f"{r['server'] / block_seconds:.3f}, round trip {r['rtt'] * 1e3:6.1f} ms")
        base = None
        for n in (1, 2, 4):
            per_round = concurrent(address, n, args.blocks // 2, 4)
            base = base or per_round
            print(f"{n} stream(s), K=4: {per_round * 1e3:6.1f} ms per block round "
                  f"(real-time factor {per_round / block_seconds:.3f}), "
                  f"cost {per_round / base:.2f}x one stream")
        scheduler = services.dream.streams.scheduler(models.get())
        print(f"largest batch seen: {scheduler.largest_batch} streams in one pass")
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
