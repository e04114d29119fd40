"""How the layer shapes the sound: Bisig & Wegner's four features per dreamed layer.

Dreams one input with each layer of a model in turn (same parameters, same
seed) and prints loudness (RMS), brightness (centroid), noisiness (flatness)
and roughness (flux) of the input and of every result, as in seed 003 §4.1.
Run: python bench/layer_features.py [IN.wav] [--model instruments-m2] [--iterations 20]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import soundfile as sf

from audiodream_server import runtime
from audiodream_server.engine import DreamParams, LayerSelection, dream
from audiodream_server.models.catalog import build_registry


def default_input(rate: int = 44100) -> np.ndarray:
    """A plucked-string-like tone sequence, when no file is given."""
    t = np.arange(int(2.0 * rate)) / rate
    notes = [220.0, 277.2, 329.6, 440.0]
    x = np.zeros_like(t)
    for k, f in enumerate(notes):
        start = k * len(t) // len(notes)
        tt = t[: len(t) - start]
        x[start:] += sum(0.5 ** h * np.sin(2 * np.pi * f * (h + 1) * tt) for h in range(6)) \
            * np.exp(-3 * tt)
    return (0.4 * x / np.abs(x).max()).astype(np.float32)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", help="sound file [a generated tone sequence]")
    parser.add_argument("--model", default="instruments-m2")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--step-size", type=float, default=0.02)
    args = parser.parse_args()

    runtime.configure_threads(0)
    model = build_registry(pretrained=False).load(runtime.pick_device("auto"),
                                                  [args.model]).get(args.model)
    if args.input:
        audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(audio.T)
    else:
        audio, rate = default_input(), 44100
    print(f"model {args.model}, {args.iterations} iterations, step {args.step_size}, "
          f"{audio.shape[1] / rate:.1f} s at {rate} Hz")
    print(f"{'layer':<8} {'rms':>7} {'centroid Hz':>12} {'flatness':>9} {'flux':>7}")
    rows = []
    for layer in model.spec.layer_names:
        params = DreamParams(iterations=args.iterations, step_size=args.step_size,
                             layers=(LayerSelection(layer),))
        result = dream(audio, rate, model, params)
        if not rows:
            rows.append(("input", result.input_features))
        rows.append((layer, result.output_features))
    for name, f in rows:
        print(f"{name:<8} {f.rms:>7.4f} {f.spectral_centroid_hz:>12.0f} "
              f"{f.spectral_flatness:>9.4f} {f.spectral_flux:>7.4f}")


if __name__ == "__main__":
    main()
