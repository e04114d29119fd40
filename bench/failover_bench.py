"""Failover between replicas: what a live stream and a batch of dreams lose when a replica goes.

Three `audiodream serve` processes on free loopback ports; the client is given
all three. Per run, fresh servers:
  - stream, drain / kill: a real-time stream (44.1 kHz mono, block 2048, 1 iteration
    per block, `reopen=True`); at block 40 its replica gets SIGTERM (drains: the
    stream is warned and moves) or SIGKILL (dies: the call fails and the stream
    moves). Printed: the reconnect time (noticing -> the new replica's
    StreamReady), the audible gap (longest run whose 64-frame RMS is under 5 % of
    the median; the input is a steady tone), the blocks sent again, and the worst
    extra delivery delay of a block against the median round trip (the stall a
    player's buffer must cover).
  - dreams, kill: 12 seeded dreams (2 s, 12 iterations) on 3 threads; one replica
    SIGKILLed while it computes one. Printed: calls lost, wall time against a
    run without the kill.
Run: python bench/failover_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import signal
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

from machine import cpu_model
from audiodream import Client  # noqa: E402
from test_replicas import _gap, by_port, everyone, start_replicas  # noqa: E402

RATE, BLOCK, BLOCKS, AT = 44100, 2048, 120, 40


def stop_all(replicas) -> None:
    for r in replicas:
        if r.proc.poll() is None:
            r.proc.kill()
        r.proc.wait(timeout=60)


def stream_run(how: signal.Signals) -> dict:
    replicas = start_replicas(metrics=False)
    try:
        t = np.arange(BLOCKS * BLOCK) / RATE
        x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        sent_at, got_at, out = {}, {}, {}
        with Client(everyone(replicas), timeout=300) as client:
            client.models()
            stream = client.stream(RATE, block_size=BLOCK, iterations=1, reopen=True)
            victim = by_port(replicas, stream.ready.replica)

            def sender():
                start = time.perf_counter()
                for i in range(BLOCKS):
                    delay = start + i * BLOCK / RATE - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)  # the pace of live audio
                    if i == AT:
                        victim.stop(how)
                    sent_at[i] = time.perf_counter()
                    stream.send(x[i * BLOCK:(i + 1) * BLOCK])

            thread = threading.Thread(target=sender)
            thread.start()
            for _ in range(BLOCKS):
                seq, block = stream.receive()
                got_at[seq], out[seq] = time.perf_counter(), block
            thread.join()
            stream.close()
        trips = np.array([got_at[i] - sent_at[i] for i in range(BLOCKS)])
        y = np.concatenate([out[i] for i in range(BLOCKS)])
        move = stream.moves[0]
        return {"reconnect_ms": move.seconds * 1000, "resent": move.resent,
                "gap_frames": _gap(y, stream.latency),
                "stall_ms": (trips.max() - np.median(trips)) * 1000,
                "moves": len(stream.moves)}
    finally:
        stop_all(replicas)


def dreams_run(kill: bool) -> dict:
    replicas = start_replicas(metrics=False)
    victim, killed, lock = replicas[1], threading.Event(), threading.Lock()

    def watch(update):
        if kill and update.stage == "dreaming" and update.iteration >= 1 and \
                by_port(replicas, update.replica) is victim:
            with lock:
                if not killed.is_set():
                    victim.stop(signal.SIGKILL)
                    killed.set()

    try:
        audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * RATE) / RATE)).astype(np.float32)
        with Client(everyone(replicas), timeout=300) as client:
            client.models()
            start = time.perf_counter()
            with ThreadPoolExecutor(3) as pool:
                outs = list(pool.map(lambda i: client.dream(audio, RATE, iterations=12, seed=3,
                                                            progress=watch), range(12)))
            wall = time.perf_counter() - start
        same = all(np.array_equal(o.audio, outs[0].audio) for o in outs)
        return {"done": len(outs), "identical": same, "wall_s": wall}
    finally:
        stop_all(replicas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average at start "
          f"{os.getloadavg()[0]:.1f}")
    for name, how in (("drain (SIGTERM)", signal.SIGTERM), ("kill (SIGKILL)", signal.SIGKILL)):
        runs = [stream_run(how) for _ in range(args.runs)]
        print(f"stream, {name}, {args.runs} runs, block {BLOCK} = {BLOCK / RATE * 1000:.1f} ms:")
        for key in ("reconnect_ms", "gap_frames", "stall_ms", "resent", "moves"):
            values = [r[key] for r in runs]
            print(f"  {key:13s} median {statistics.median(values):8.1f}   max {max(values):8.1f}")
    plain, failed = dreams_run(False), dreams_run(True)
    print(f"dreams: {failed['done']}/12 done with a replica killed mid-dream, identical to "
          f"each other: {failed['identical']}; wall {failed['wall_s']:.1f} s against "
          f"{plain['wall_s']:.1f} s without the kill")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
