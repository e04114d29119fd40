"""StreamDream cost: per-block breakdown, overhead, real-time factor, batching.

Default model, 48 kHz mono, block 2048, the default stream settings unless
told otherwise. Prints, with the CPU model and the load average:
  - the per-block cost breakdown, in process (the session and the server's
    scheduler, no network): resampling, forward, backward, update (the rest of
    the step: shaping, update rule, low-pass), other session work (context
    bookkeeping, crossfade, bound), scheduler hand-off; and the overhead
    against an offline dream of the same context and iterations (resample in,
    K steps, resample back), a machine-independent ratio (target <= 1.15x), and
    the share of the block that is not the model's forward and backward
    (target <= 15 %)
  - transport: client round trip minus server processing, per block (K = 0)
  - the real-time factor (server time per block / block duration) at the
    defaults, alone and with one core kept busy by a busy-loop process (the
    music software on a performer's laptop; target <= 0.5)
  - with --sweep: the real-time factor over contexts and iterations per block
  - 1, 2, 4 concurrent streams: wall time per block round, relative to one
Run: python bench/stream_bench.py [--blocks 60] [--sweep] [--window N] [--iterations K]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from machine import load, machine
from audiodream import Client
from audiodream_server import runtime
from audiodream_server.engine import ascent
from audiodream_server.engine.resample import resample
from audiodream_server.models.catalog import build_registry
from audiodream_server.service.config import ServerConfig
from audiodream_server.service.server import create_server
from audiodream_server.stream import scheduler as scheduler_module
from audiodream_server.stream import session as session_module
from audiodream_server.stream.scheduler import StreamScheduler
from audiodream_server.stream.session import StreamSession
from audiodream_server.stream.settings import STREAM_DEFAULTS, StreamSettings

RATE, BLOCK = 48000, 2048


def signal(blocks: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(blocks * BLOCK) / RATE
    x = 0.3 * np.sin(2 * np.pi * (110 + 50 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * t)) \
        + 0.01 * rng.standard_normal(t.size)
    return [b.astype(np.float32) for b in np.split(x, blocks)]


@contextlib.contextmanager
def busy_core():
    """One process spinning on a core for the duration (stands in for a DAW)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


# -- in process: where a block's time goes ---------------------------------------------

class Timers:
    """Accumulates seconds per label, from any thread."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, label: str, seconds: float) -> None:
        with self._lock:
            self.seconds[label] = self.seconds.get(label, 0.0) + seconds

    def wrap(self, label: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - start)
        return timed


@contextlib.contextmanager
def patched(timers: Timers, model):
    """Times the resamplers, the model's forward, the backward and the whole step."""
    saved = []

    def patch(owner, name, label):
        if hasattr(owner, name):
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, timers.wrap(label, getattr(owner, name)))

    patch(session_module, "resample", "resample")
    patch(session_module, "_resample_loop", "resample")
    with contextlib.suppress(ImportError):
        from audiodream_server.engine.gridresample import GridResampler
        patch(GridResampler, "segment", "resample")
    patch(scheduler_module, "step", "step")
    patch(torch.autograd, "grad", "backward")
    forward = model.module.features
    model.module.features = timers.wrap("forward", forward)
    try:
        yield
    finally:
        del model.module.features
        for owner, name, fn in reversed(saved):
            setattr(owner, name, fn)


def breakdown(model, settings: StreamSettings, blocks: int) -> dict[str, float]:
    """Milliseconds per block by part, in process, offline (every iteration runs).

    Every fourth block is followed by an offline dream of the same context
    (`offline_reference`), so both see the same load on a shared machine;
    medians of both make the ratio.
    """
    settings = settings.resolve(model.spec)
    session = StreamSession(settings, STREAM_DEFAULTS.resolve(model.spec), model)
    scheduler = StreamScheduler(model)
    timers, handoff = Timers(), Timers()
    data = signal(blocks)
    skip = min(5, blocks // 4)
    wholes, offline = [], []
    try:
        with patched(timers, model):
            for i, block in enumerate(data):
                if i == skip:
                    timers.seconds.clear()
                    handoff.seconds.clear()
                start = time.perf_counter()
                job = session.begin(block[None])
                ran = time.perf_counter()
                job = scheduler.run(job) if job is not None else None
                handoff.add("scheduler", time.perf_counter() - ran)
                session.finish(job)
                if i >= skip:
                    wholes.append(time.perf_counter() - start)
                if i >= skip and i % 4 == 0:
                    with unpatched(timers):
                        offline.append(offline_reference(model, session, settings))
    finally:
        scheduler.close()
    n = blocks - skip
    t = {k: v * 1e3 / n for k, v in timers.seconds.items()}
    whole = sum(wholes) * 1e3 / n
    step_ms = t.get("step", 0.0)
    out = {
        "resample": t.get("resample", 0.0),
        "forward": t.get("forward", 0.0),
        "backward": t.get("backward", 0.0),
        "update": step_ms - t.get("forward", 0.0) - t.get("backward", 0.0),
        "handoff": handoff.seconds["scheduler"] * 1e3 / n - step_ms,
    }
    out["session"] = whole - sum(out.values())
    out["block"] = whole
    out["block_median"] = float(np.median(wholes)) * 1e3
    out["offline"] = float(np.median(offline)) * 1e3
    return out


@contextlib.contextmanager
def unpatched(timers: Timers):
    """Stops counting while the offline reference runs (it calls the same functions)."""
    saved = dict(timers.seconds)
    try:
        yield
    finally:
        timers.seconds.clear()
        timers.seconds.update(saved)


def offline_reference(model, session: StreamSession, settings: StreamSettings) -> float:
    """Seconds for an offline dream of one context with the same iterations:
    resample it in, K steps on it, resample the change back (no windows, no
    features: the least an offline Dream of it does)."""
    params = session.params
    context = np.concatenate(signal(settings.window // BLOCK + 1))[None, :settings.window]
    spec = model.spec
    start = time.perf_counter()
    x0 = torch.from_numpy(resample(context, settings.sample_rate, spec.sample_rate,
                                   session.window_samples))
    group = ascent.Group(x0.clone(), x0, params, 0, params.iterations)
    for i in range(params.iterations):
        group.iteration = i
        ((group.x, _),) = ascent.step(model, [group])
    resample((group.x - x0).numpy(), spec.sample_rate, settings.sample_rate, settings.window)
    return time.perf_counter() - start


def print_breakdown(label: str, b: dict[str, float], block_ms: float) -> None:
    model_ms = b["forward"] + b["backward"]
    other = b["block"] - model_ms
    parts = ", ".join(f"{k} {b[k]:.2f}" for k in
                      ("resample", "forward", "backward", "update", "session", "handoff"))
    print(f"{label}: {b['block']:.2f} ms per block ({b['block'] / block_ms:.3f} of the block): "
          f"{parts} ms")
    print(f"  median block {b['block_median']:.2f} ms vs an offline dream of the same context "
          f"and iterations, interleaved ({b['offline']:.2f} ms): "
          f"{b['block_median'] / b['offline']:.2f}x (target <= 1.15x); work other than forward and "
          f"backward {100 * other / b['block']:.1f} % of the block (target <= 15 %)")


# -- a real server ----------------------------------------------------------------------

def ping_pong(address: str, blocks: list[np.ndarray], iterations: int, window: int,
              offline: bool = True) -> dict:
    """One block in flight at a time; returns server and round-trip seconds per block."""
    rtts = []
    with Client(address) as c, c.stream(RATE, 1, BLOCK, iterations=iterations,
                                        offline=offline, window=window) as s:
        for block in blocks:
            start = time.perf_counter()
            s.send(block)
            s.receive()
            rtts.append(time.perf_counter() - start)
        served = [st.mean_block_seconds for st in s.stats[1:]] or [s.stats[0].mean_block_seconds]
    skip = min(5, len(rtts) // 4)  # warm-up
    return {"rtt": float(np.median(rtts[skip:])), "server": float(np.median(served))}


def concurrent(address: str, streams: int, blocks: int, iterations: int, window: int) -> float:
    """Wall seconds per block round with `streams` ping-pong streams at once."""
    barrier = threading.Barrier(streams + 1)
    done = []

    def run(k):
        data = signal(blocks, seed=k)
        with Client(address) as c, c.stream(RATE, 1, BLOCK, iterations=iterations,
                                            offline=True, window=window) as s:
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
                        help="context frames per block [0 = the server's default]")
    parser.add_argument("--iterations", type=int, default=0,
                        help="iterations per block [0 = the stream default]")
    parser.add_argument("--sweep", action="store_true",
                        help="real-time factor over contexts and iterations, with a busy core")
    parser.add_argument("--skip-batching", action="store_true")
    args = parser.parse_args()
    global RATE, STREAM_DEFAULTS
    RATE = args.rate
    args.iterations = args.iterations or STREAM_DEFAULTS.iterations
    STREAM_DEFAULTS = dataclasses.replace(STREAM_DEFAULTS, iterations=args.iterations)

    threads = runtime.configure_threads(args.threads)
    models = build_registry(pretrained=False).load(runtime.pick_device("auto"))
    model = models.get()
    block_seconds = BLOCK / RATE
    block_ms = block_seconds * 1e3
    settings = StreamSettings(RATE, 1, BLOCK, window=args.window, offline=True)
    resolved = settings.resolve(model.spec)
    print(f"# {machine()}; torch {torch.__version__}, {threads} threads; {load()}")
    print(f"model {models.default} on {model.device}; {RATE} Hz mono, block {BLOCK} "
          f"({block_ms:.1f} ms), context {resolved.window} frames, K = {args.iterations}")

    b = breakdown(model, settings, args.blocks)
    print_breakdown("in process", b, block_ms)
    with busy_core():
        b = breakdown(model, settings, args.blocks)
        print_breakdown(f"in process, one core busy ({load()})", b, block_ms)

    # No admission check: this bench measures, it does not need protecting.
    no_check = {"stream_capacity": 0} if hasattr(ServerConfig, "stream_capacity") else {}
    server, port, services = create_server(ServerConfig(port=0, **no_check), models)
    server.start()
    address = f"127.0.0.1:{port}"
    try:
        idle = ping_pong(address, signal(args.blocks), 0, args.window)
        print(f"transport (K=0): round trip {idle['rtt'] * 1e3:.2f} ms per block, "
              f"server {idle['server'] * 1e3:.3f} ms, transport overhead "
              f"{(idle['rtt'] - idle['server']) * 1e3:.2f} ms")
        r = ping_pong(address, signal(args.blocks), args.iterations, args.window)
        print(f"defaults: server {r['server'] * 1e3:.1f} ms per block, real-time factor "
              f"{r['server'] / block_seconds:.3f}, round trip {r['rtt'] * 1e3:.1f} ms ({load()})")
        with busy_core():
            r = ping_pong(address, signal(args.blocks), args.iterations, args.window)
            print(f"defaults, one core busy: server {r['server'] * 1e3:.1f} ms per block, "
                  f"real-time factor {r['server'] / block_seconds:.3f} (target <= 0.5), "
                  f"round trip {r['rtt'] * 1e3:.1f} ms ({load()})")
        if args.sweep:
            natural = StreamSettings(RATE, 1, BLOCK, mode="generate").resolve(model.spec).window
            with busy_core():
                for window in (natural, natural // 2, 16384, 12288, 8192):
                    for k in (1, 2, 4, 8):
                        r = ping_pong(address, signal(args.blocks // 2), k, window)
                        print(f"one core busy: context {window:6d} K={k:<2}: server "
                              f"{r['server'] * 1e3:6.1f} ms, real-time factor "
                              f"{r['server'] / block_seconds:.3f}", flush=True)
        if not args.skip_batching:
            base = None
            for n in (1, 2, 4):
                per_round = concurrent(address, n, args.blocks // 2, args.iterations,
                                       args.window)
                base = base or per_round
                print(f"{n} stream(s): {per_round * 1e3:6.1f} ms per block round "
                      f"(real-time factor {per_round / block_seconds:.3f}), "
                      f"cost {per_round / base:.2f}x one stream, "
                      f"{per_round / base / n:.2f}x one stream's share per stream")
            scheduler = services.dream.streams.scheduler(model)
            stats = scheduler.stats()
            sizes = ", ".join(f"{n} stream(s): {count}"
                              for n, count in sorted(stats.pass_sizes.items()))
            print(f"passes run: {stats.passes} ({sizes}); largest: {stats.largest_pass} "
                  "streams in one pass")
    finally:
        server.stop(None)


if __name__ == "__main__":
    main()
