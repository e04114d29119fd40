"""Stream capacity: how many live performers one server holds in real time.

Adds real-time streams (48 kHz mono, block 2048, the default stream settings,
each fed at the pace of live audio by its own thread) to a real server on a
free loopback port, n = 1, 2, ... each for --seconds, until blocks go late
(the server's own count: a reply that left after the client's budget) or
degraded (fewer iterations run than asked). Prints for each n the late and
degraded blocks, the server's capacity_used, and what one stream-iteration
cost against n = 1 (target: each additional stream <= 1.05x a single
stream's share), then the number of streams held with zero late blocks.
Finally, with admission control on (the server's default limit), opens live
streams one after another until the server refuses one, and prints how many it
admitted and its reason. CPU model and load average are printed with the
figures: the machine may be shared.

Run: python bench/capacity_bench.py [--seconds 60] [--most 8] [--busy]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from audiodream import Client
from audiodream.client import ServerError
from audiodream_server import runtime
from audiodream_server.models.catalog import build_registry
from audiodream_server.service.config import ServerConfig
from audiodream_server.service.server import create_server
from audiodream_server.stream import scheduler as scheduler_module
from audiodream_server.stream.capacity import DEFAULT_LIMIT
from machine import load, machine
from stream_bench import Timers, busy_core, signal

RATE, BLOCK = 48000, 2048


class Live:
    """One live stream: sends a block every block period, receives on its own."""

    def __init__(self, address: str, seed: int):
        self.client = Client(address)
        self.stream = self.client.stream(RATE, 1, BLOCK)
        self.iterations = self.stream.ready.config.params.iterations
        self.data = signal(64, seed)
        self.stop = threading.Event()
        self.received = 0
        self.sender = threading.Thread(target=self._send, daemon=True)
        self.receiver = threading.Thread(target=self._receive, daemon=True)
        self.sender.start()
        self.receiver.start()

    def _send(self):
        start, i = time.perf_counter(), 0
        while not self.stop.is_set():
            self.stream.send(self.data[i % len(self.data)])
            i += 1
            wait = start + i * BLOCK / RATE - time.perf_counter()
            if wait > 0:
                self.stop.wait(wait)

    def _receive(self):
        with contextlib.suppress(ServerError):
            while not self.stop.is_set():
                self.stream.receive()
                self.received += 1

    def counts(self) -> tuple[int, int, float, float]:
        """(blocks, late, mean iterations run, capacity used) from the last stats."""
        if not self.stream.stats:
            return 0, 0, float("nan"), float("nan")
        last = self.stream.stats[-1]
        runs = [s.iterations_run for s in self.stream.stats]
        return last.blocks, last.late_blocks, float(np.mean(runs)), last.capacity_used

    def close(self):
        self.stop.set()
        self.sender.join(5)
        self.stream.close()
        self.client.close()


def stage(address: str, n: int, seconds: float, timers: Timers) -> dict:
    streams = [Live(address, k) for k in range(n)]
    try:
        time.sleep(2.0)  # warm-up: the first blocks measure the cost of a step
        before = [s.counts() for s in streams]
        timers.seconds.clear()
        time.sleep(seconds)
        after = [s.counts() for s in streams]
        steps = timers.seconds.get("step", 0.0)
    finally:
        for s in streams:
            s.close()
    blocks = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    late = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    iterations = float(np.mean([a[2] for a in after]))
    wanted = streams[0].iterations
    return {"blocks": blocks, "late": late, "iterations": iterations, "wanted": wanted,
            "degraded": iterations < wanted - 1e-6, "used": after[0][3],
            # compute per stream-block-iteration (the step's cost, batched or not)
            "per_iteration": steps / max(1e-9, blocks * iterations)}


def admitted(address: str, most: int) -> tuple[int, str]:
    """Opens live streams (each running a little) until the server refuses one."""
    streams: list[Live] = []
    try:
        for _ in range(most):
            try:
                streams.append(Live(address, len(streams)))
            except ServerError as exc:
                return len(streams), f"{exc.code}: {exc.message}"
            time.sleep(2.0)  # its blocks measure the cost before the next asks
        return len(streams), f"all {most} admitted"
    finally:
        for s in streams:
            s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--most", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--busy", action="store_true", help="one core kept busy throughout")
    args = parser.parse_args()

    threads = runtime.configure_threads(args.threads)
    models = build_registry(pretrained=False).load(runtime.pick_device("auto"))
    timers = Timers()
    scheduler_module.step = timers.wrap("step", scheduler_module.step)
    print(f"# {machine()}; {threads} threads; model {models.default}; {RATE} Hz mono, "
          f"block {BLOCK}, default stream settings, {args.seconds:g} s per stage; {load()}")
    with busy_core() if args.busy else contextlib.nullcontext():
        server, port, _ = create_server(ServerConfig(port=0, stream_capacity=0), models)
        server.start()
        address = f"127.0.0.1:{port}"
        held, base = 0, None
        try:
            for n in range(1, args.most + 1):
                r = stage(address, n, args.seconds, timers)
                base = base or r["per_iteration"]
                print(f"{n} live stream(s): {r['blocks']} blocks, {r['late']} late, "
                      f"iterations run {r['iterations']:.2f} of {r['wanted']}, capacity used "
                      f"{r['used']:.2f}, cost per stream-iteration "
                      f"{r['per_iteration'] * 1e3:.2f} ms = {r['per_iteration'] / base:.2f}x "
                      f"one stream's ({load()})", flush=True)
                if r["late"] or r["degraded"]:
                    break
                held = n
        finally:
            server.stop(None)
        print(f"held in real time with zero late and no degraded blocks over "
              f"{args.seconds:g} s: {held} stream(s)")

        server, port, _ = create_server(ServerConfig(port=0, stream_capacity=DEFAULT_LIMIT),
                                        models)
        server.start()
        try:
            count, why = admitted(f"127.0.0.1:{port}", args.most)
            print(f"admission control (limit {DEFAULT_LIMIT}): {count} live stream(s) "
                  f"admitted; then {why} ({load()})")
        finally:
            server.stop(None)


if __name__ == "__main__":
    main()
