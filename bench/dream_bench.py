"""Engine overhead: a whole dream vs the bare model passes it is made of.

For the default model, 10 s of 44.1 kHz mono, 20 iterations, prints
  - engine: seconds of compute per second of audio per iteration (whole pipeline)
  - bare:   the same for forward + backward to the input on the same windows
  - overhead = engine / bare - 1   (target: <= 15 %)
  - a row per update rule and objective: compute per second of audio per
    iteration, relative to the plain `add` dream (target: filter rules <= 1.5x)
Run: python bench/dream_bench.py [--seconds 10] [--iterations 20] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from audiodream_server import runtime
from audiodream_server.engine import DreamParams, dream
from audiodream_server.engine import windows
from audiodream_server.engine.objectives import objective
from audiodream_server.models.catalog import build_registry


def test_signal(seconds: float, rate: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)[None]


def bare_passes(model, batch: torch.Tensor, params: DreamParams, iterations: int) -> float:
    """Forward + backward to the input, `iterations` times, nothing else."""
    names = [s.name for s in params.layers]
    start = time.perf_counter()
    for _ in range(iterations):
        x = batch.detach().requires_grad_(True)
        value = objective(model.module.features(x, names), params, model.spec.logits_layer)
        torch.autograd.grad(value.sum(), x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()

    threads = runtime.configure_threads(args.threads)
    models = build_registry(pretrained=False).load(runtime.pick_device("auto"))
    model = models.get()
    rate = model.spec.sample_rate
    audio = test_signal(args.seconds, rate)
    params = DreamParams(iterations=args.iterations).resolve(model.spec)
    overlap = round(model.spec.fixed_input_samples * params.window_overlap)
    batch = windows.split(torch.from_numpy(audio).to(model.device),
                          model.spec.fixed_input_samples, overlap)

    dream(audio, rate, model, params)  # warm-up
    bare_passes(model, batch, params, 2)
    engine_times, bare_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        dream(audio, rate, model, params)
        engine_times.append(time.perf_counter() - start)
        bare_times.append(bare_passes(model, batch, params, args.iterations))
    per = args.seconds * args.iterations
    engine, bare = min(engine_times) / per, min(bare_times) / per
    print(f"model {model.spec.name} on {model.device}, {threads} threads, {args.seconds:g} s "
          f"mono at {rate} Hz ({batch.shape[0]} windows), {args.iterations} iterations, "
          f"best of {args.repeats}")
    print(f"engine: {engine * 1e3:.2f} ms per second of audio per iteration "
          f"(real-time factor per iteration {engine:.4f})")
    print(f"bare forward+backward: {bare * 1e3:.2f} ms per second of audio per iteration")
    print(f"engine overhead: {100 * (engine / bare - 1):+.1f} %  (target <= 15 %)")

    target = test_signal(args.seconds, rate)[:, ::-1].copy()
    variants = [("update", u, {"update": u}) for u in
                ("add", "hardcut", "hardcut_add", "target_filter", "flip")]
    variants += [("objective", o, {"objective": o, **extra}) for o, extra in
                 (("mean", {}), ("class", {"class_index": 0}), ("target_features", {}),
                  ("style", {}))]
    print(f"{'':<10} {'variant':<16} {'ms/s/iter':>10} {'vs add':>7}")
    for kind, name, fields in variants:
        p = DreamParams(iterations=args.iterations, **fields)
        dream(audio, rate, model, p, target=target, target_rate=rate)  # warm-up
        run = partial(dream, audio, rate, model, p, target=target, target_rate=rate)
        best = min(_timed(run) for _ in range(args.repeats)) / per
        print(f"{kind:<10} {name:<16} {best * 1e3:>10.2f} {best / engine:>6.2f}x")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
