"""musicnn and Basic Pitch next to the default model: speed and how their dreams sound.

For each model, one dream of the same sound (espeak-ng speech, else a tone),
with the model's default layer and with a class objective (musicnn: a tag;
Basic Pitch: a C major chord). Prints, per dream, the compute per second of
audio per iteration (ms), the ratio to the default model's in the same run,
the sound measures of `listening.compare` (does the input survive: logmel_r,
onset_r, retain; how loud is the change: change_db; new spectral lines:
new_line_db) and, for class dreams, how much the targeted scores rose.

    python bench/music_bench.py [--seconds 4] [--iterations 10]

Shared machines are noisy: the CPU model and load average are printed with
the figures; compare the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

from machine import cpu_model
from audiodream_server import runtime
from audiodream_server.engine import DreamParams, dream
from audiodream_server.engine.params import ClassTarget
from audiodream_server.listening import compare
from audiodream_server.models.catalog import build_registry


def test_sound(seconds: float) -> tuple[np.ndarray, int, str]:
    if shutil.which("espeak-ng"):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.wav")
            subprocess.run(["espeak-ng", "-w", path, "the dream hears music in a voice, "
                            "and sings it back"], check=True, capture_output=True)
            audio, rate = sf.read(path, dtype="float32")
        audio = np.resize(audio, int(seconds * rate))
        return audio[None], rate, "espeak-ng speech"
    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], rate, "a 220 Hz tone"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runtime.configure_environment()
    torch.set_num_threads(args.threads)
    names = ["instruments-m2", "musicnn-mtt", "basic-pitch"]
    models = build_registry(untrained_models=False).load(torch.device("cpu"), names)
    audio, rate, what = test_sound(args.seconds)
    print(f"{cpu_model()}, {args.threads} threads, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; {args.seconds:g} s of {what} "
          f"at {rate} Hz, {args.iterations} iterations")
    cases = [("instruments-m2", "default layer", DreamParams()),
             ("musicnn-mtt", "default layer", DreamParams()),
             ("musicnn-mtt", "--class choir", DreamParams(
                 objective="class", classes=(ClassTarget("choir"),))),
             ("basic-pitch", "default layer", DreamParams()),
             ("basic-pitch", "--notes C4,E4,G4", DreamParams(
                 objective="class", classes=tuple(ClassTarget(n) for n in ("C4", "E4", "G4"))))]
    print(f"{'model':<15} {'objective':<17} {'ms/s/it':>8} {'ratio':>6} {'logmel_r':>8} "
          f"{'onset_r':>7} {'retain':>6} {'chg dB':>7} {'line dB':>7}  class scores")
    base = None
    for name, label, params in cases:
        params = DreamParams(**{**params.__dict__, "iterations": args.iterations})
        start = time.perf_counter()
        result = dream(audio, rate, models.get(name), params)
        seconds = time.perf_counter() - start
        per = 1000 * seconds / (audio.shape[1] / rate) / args.iterations
        base = base or per
        m = compare(audio[0], result.audio[0], rate)
        scores = ", ".join(f"{c.name} {c.before:.3f}->{c.after:.3f}" for c in result.class_changes)
        if result.class_changes:
            scores += f" (others {result.others_before:.3f}->{result.others_after:.3f})"
        print(f"{name:<15} {label:<17} {per:>8.0f} {per / base:>6.1f} {m.logmel_r:>8.3f} "
              f"{m.onset_r:>7.3f} {m.retain:>6.3f} {m.change_db:>7.1f} {m.new_line_db:>7.1f}  "
              f"{scores}")


if __name__ == "__main__":
    main()
