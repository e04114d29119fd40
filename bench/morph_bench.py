"""The morph benchmark: is a morph a path between two sounds, and not a crossfade?

Renders pairs of different instrument notes with FluidSynth (the GM SoundFont,
dry, 1.5 s at 44.1 kHz), then for amounts 0, 0.1 .. 1 makes the morph
(`engine.morph`, the shipped autoencoder, fixed amount) and a plain crossfade
(1 - a) A + a B, and prints per amount:

    centroid   spectral centroid, Hz (mean over loud frames)
    flatness   spectral flatness, 0 = tonal .. 1 = white noise
    d(A), d(B) log-mel distance to A and to B: RMS over bands and frames of the
               difference of the 64-band log-mel spectrograms, dB (floor -80 dB)
    partials   for notes of different pitch (a tritone apart, so their first six
               harmonics are all >= 100 cents apart): the share of the energy within
               +-30 cents of B's harmonics 1..6 among A's and B's, and min/max of the two in dB
               (0 dB = both series equally present: two notes superimposed;
               far below 0 = one partial structure)

and per path (morph, crossfade), its smoothness: the largest change between
neighbouring amounts as a share of the path's whole range, for d(A) and d(B)
(0.1 = even steps over 10 steps; a jump shows as a share near 1).

Then the live morph mode's cost: a real server on a free loopback port, an
offline StreamDream in "morph" mode at 48 kHz, block 2048, one block in
flight: the server's processing time per block and the real-time factor (that
time / the block's 42.7 ms), with the default context (4 blocks; a morph
works on the frames it outputs plus 4096 frames before them whatever the
context); and, in the same run, process mode at 4 iterations per block on
instruments-m2 for comparison.

Run: python bench/morph_bench.py [--model instruments-ae] [--save DIR] [--only paths,live]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import soundfile as sf
import torch

from machine import cpu_model
from audiodream_server import listening, runtime
from audiodream_server.datasets.midi import MidiTrack
from audiodream_server.datasets.tools import DEFAULT_SOUNDFONT, require_file, require_program
from audiodream_server.engine.features import features
from audiodream_server.engine.morph import MorphParams, morph
from audiodream import Client
from audiodream_server.models.catalog import build_registry
from audiodream_server.service.config import ServerConfig
from audiodream_server.service.server import create_server

RATE = 44100
AMOUNTS = tuple(round(0.1 * k, 1) for k in range(11))
# (name, GM program, MIDI pitch) pairs: one timbre morph at one pitch, one across pitches.
PAIRS = ((("flute", 73, 60), ("trumpet", 56, 60)),
         (("cello", 42, 48), ("clarinet", 71, 54)))


def render_note(program: int, pitch: int, work: Path) -> np.ndarray:
    """One dry note, 1.2 s held, 1.5 s long, peak 0.5."""
    fluidsynth = require_program("fluidsynth", "fluidsynth")
    soundfont = require_file(DEFAULT_SOUNDFONT, "fluid-soundfont-gm")
    track = MidiTrack()
    track.program(0, program)
    track.note(0, pitch, 100, start_ms=0, length_ms=1200)
    track.write(work / "n.mid")
    subprocess.run([fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RATE),
                    "-O", "float", "-T", "wav", "-F", str(work / "n.wav"), str(soundfont),
                    str(work / "n.mid")], check=True, capture_output=True)
    audio, _ = sf.read(str(work / "n.wav"), dtype="float32", always_2d=True)
    x = np.pad(audio.mean(axis=1), (0, int(1.5 * RATE)))[:int(1.5 * RATE)]
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def log_mel(x: np.ndarray) -> np.ndarray:
    return listening._db(listening._power_mel(x.astype(np.float64), RATE), -80.0)


def mel_distance(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((log_mel(x) - log_mel(y)) ** 2)))


def harmonic_energy(x: np.ndarray, f0: float) -> float:
    """Power within +-30 cents of harmonics 1..6 of f0 (long-term spectrum)."""
    freqs, power = listening.long_term_spectrum(x.astype(np.float64), RATE)
    total = 0.0
    for k in range(1, 7):
        f = k * f0
        band = (freqs >= f * 2 ** (-30 / 1200)) & (freqs <= f * 2 ** (30 / 1200))
        total += float(power[band].sum())
    return total


def smoothness(values: list[float]) -> float:
    """Largest step between neighbours as a share of the whole range."""
    steps = np.abs(np.diff(values))
    span = max(values) - min(values)
    return float(steps.max() / span) if span > 0 else 0.0


def run_pair(model, a_note, b_note, work: Path, save: Path | None, params: MorphParams) -> dict:
    (a_name, a_prog, a_pitch), (b_name, b_prog, b_pitch) = a_note, b_note
    a, b = render_note(a_prog, a_pitch, work), render_note(b_prog, b_pitch, work)
    fa, fb = 440.0 * 2 ** ((a_pitch - 69) / 12), 440.0 * 2 ** ((b_pitch - 69) / 12)
    rows = {"morph": [], "crossfade": []}
    for amount in AMOUNTS:
        m = morph(a[None], RATE, b[None], RATE, model,
                  MorphParams(**{**params.__dict__, "amount": amount})).audio[0]
        c = ((1 - amount) * a + amount * b).astype(np.float32)
        for kind, y in (("morph", m), ("crossfade", c)):
            f = features(y[None], RATE)
            row = {"amount": amount, "centroid": f.spectral_centroid_hz,
                   "flatness": f.spectral_flatness, "dA": mel_distance(y, a),
                   "dB": mel_distance(y, b)}
            if a_pitch != b_pitch:
                ea, eb = harmonic_energy(y, fa), harmonic_energy(y, fb)
                row["onB"] = eb / (ea + eb)
                row["both_db"] = 10 * np.log10(min(ea, eb) / max(ea, eb))
            rows[kind].append(row)
            if save is not None:
                name = f"{a_name}-{b_name}-{kind}-d{params.detail:g}-{amount:.1f}.wav"
                sf.write(str(save / name), y, RATE)
    return {"pair": f"{a_name} {a_pitch} -> {b_name} {b_pitch}", "rows": rows,
            "pitched": a_pitch != b_pitch}


def print_pair(result: dict, label: str) -> None:
    print(f"\n## {result['pair']} ({label})")
    pitched = result["pitched"]
    head = (f"{'amount':>6} | {'path':9} {'centroid':>8} {'flatness':>8} {'d(A)':>6} "
            f"{'d(B)':>6}")
    if pitched:
        head += f" {'on B %':>6} {'both dB':>7}"
    print(head)
    for i, amount in enumerate(AMOUNTS):
        for kind in ("morph", "crossfade"):
            r = result["rows"][kind][i]
            line = (f"{amount:>6.1f} | {kind:9} {r['centroid']:>8.0f} {r['flatness']:>8.4f} "
                    f"{r['dA']:>6.2f} {r['dB']:>6.2f}")
            if pitched:
                line += f" {100 * r['onB']:>6.1f} {r['both_db']:>7.1f}"
            print(line)
    for kind in ("morph", "crossfade"):
        rows = result["rows"][kind]
        print(f"# {kind}: largest step / range: d(A) {smoothness([r['dA'] for r in rows]):.2f}, "
              f"d(B) {smoothness([r['dB'] for r in rows]):.2f}, centroid "
              f"{smoothness([r['centroid'] for r in rows]):.2f}")


def live_cost(address: str, model: str, blocks: int, **options) -> float:
    """Median server seconds per block of an offline stream, one block in flight."""
    rate, block = 48000, 2048
    t = np.arange(blocks * block) / rate
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    with Client(address) as c, c.stream(rate, 1, block, model=model, offline=True,
                                        **options) as s:
        for k in range(blocks):
            s.send(x[k * block:(k + 1) * block])
            s.receive()
        served = [st.mean_block_seconds for st in s.stats[1:]] or \
            [st.mean_block_seconds for st in s.stats]
    return float(np.median(served))


def run_live(model_name: str, target: np.ndarray, blocks: int) -> None:
    models = build_registry(pretrained=False, untrained_models=False).load(
        torch.device("cpu"), [model_name, "instruments-m2"])
    server, port, _ = create_server(ServerConfig(port=0), models)
    server.start()
    address = f"127.0.0.1:{port}"
    block_ms = 2048 / 48000 * 1e3
    print(f"\n## live morph: 48000 Hz mono, block 2048 ({block_ms:.1f} ms), offline stream, "
          f"{blocks} blocks")
    try:
        cases = (("morph, amount 0.5, context 4 blocks", model_name,
                  {"mode": "morph", "morph_amount": 0.5, "target": (target, RATE)}),
                 ("process, instruments-m2, K = 4", "instruments-m2", {"iterations": 4}))
        for label, model, options in cases:
            seconds = live_cost(address, model, blocks, **options)
            print(f"{label:38}: server {seconds * 1e3:6.1f} ms per block, real-time factor "
                  f"{seconds * 1e3 / block_ms:.3f}")
    finally:
        server.stop(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="instruments-ae")
    parser.add_argument("--detail", type=float, nargs="*", default=[1.0, 0.0],
                        help="detail settings to compare [1 0]")
    parser.add_argument("--save", type=Path, help="write every sound as WAV here")
    parser.add_argument("--only", default="paths,live", help="paths, live [both]")
    parser.add_argument("--blocks", type=int, default=60, help="live: blocks streamed [60]")
    args = parser.parse_args()
    only = set(args.only.split(","))
    runtime.configure_threads(0)
    models = build_registry(pretrained=False, untrained_models=False).load(
        torch.device("cpu"), [args.model])
    model = models.get(args.model)
    print(f"# morph bench: {cpu_model()}, load {os.getloadavg()[0]:.1f}, torch "
          f"{torch.__version__}, model {args.model}")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for detail in args.detail if "paths" in only else ():
            for a_note, b_note in PAIRS:
                params = MorphParams(detail=detail)
                result = run_pair(model, a_note, b_note, Path(tmp), args.save, params)
                print_pair(result, f"detail {detail:g}, phase blend, linear")
        if "live" in only:
            (_, program, pitch), = PAIRS[0][1:]
            run_live(args.model, render_note(program, pitch, Path(tmp)), args.blocks)


if __name__ == "__main__":
    main()
