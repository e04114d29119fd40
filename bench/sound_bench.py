"""The sound benchmark: does a dream keep its input and add something, without artefacts?

Renders a fixed set of inputs made here (espeak-ng speech, a FluidSynth
instrument phrase and drum loop, pink noise; 44.1 kHz mono, 4 s) through:
every shipped model with its defaults, every update rule, octaves, and both
stream modes; prints per case the measures of `audiodream_server.listening`
and, per group, how alike the outputs of different inputs are (long-term
spectrum r, against the inputs' own). Targets for the defaults rows
(issue "The dream must sound like a dream"):

    logmel_r >= 0.6, onset_r >= 0.5 while change_db >= -12
    new_line <= 3 dB;  hf_out - hf_in <= 3 points;  |join_db| <= 0.5 dB
    outputs' spectra no more alike than the inputs' + 0.3

The `loudness` group dreams each input at three peak levels (-18.4, -6 and
-1 dBFS) with the default model's defaults and prints the output's peak and RMS
level against the input's (dB): a dream should come back about as loud as it went in.

`--only highpass` dreams with the change high-passed at 40 and 200 Hz
(`highpass_hz`; the default, 0, leaves the dream bit for bit as before), and
streams (process mode) at 40 Hz; it also prints the share of each change's
energy at or below 40 Hz (rumble the listener does not hear as the dream).

Run: python bench/sound_bench.py [--only defaults,updates,...,loudness,music] [--save DIR]
`--only music` measures the pretrained music models (musicnn-mtt, basic-pitch)
with their defaults and with a class objective (a tag; a C major chord).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

from machine import cpu_model
from audiodream_server import listening, runtime
from audiodream_server.datasets.midi import MidiTrack
from audiodream_server.datasets.tools import DEFAULT_SOUNDFONT, require_file, require_program
from audiodream_server.engine import DreamParams, dream
from audiodream_server.engine.initial import initial_signal
from audiodream_server.engine.params import ClassTarget
from audiodream_server.models.catalog import build_registry
from audiodream_server.stream.scheduler import StreamScheduler
from audiodream_server.stream.session import StreamSession
from audiodream_server.stream.settings import STREAM_DEFAULTS, StreamSettings

RATE = 44100
SECONDS = 4.0
INPUTS = ("speech", "music", "drums", "noise")


# -- inputs ---------------------------------------------------------------------------

def _fit(x: np.ndarray, peak: float = 0.5) -> np.ndarray:
    n = int(SECONDS * RATE)
    x = np.pad(x[:n], (0, max(0, n - x.size)))
    return (peak * x / (np.abs(x).max() + 1e-12)).astype(np.float32)


def _fluidsynth(track: MidiTrack, work: Path) -> np.ndarray:
    fluidsynth = require_program("fluidsynth", "fluidsynth")
    soundfont = require_file(DEFAULT_SOUNDFONT, "fluid-soundfont-gm")
    track.write(work / "in.mid")
    subprocess.run([fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(RATE),
                    "-O", "float", "-T", "wav", "-F", str(work / "out.wav"), str(soundfont),
                    str(work / "in.mid")], check=True, capture_output=True)
    audio, _ = sf.read(str(work / "out.wav"), dtype="float64", always_2d=True)
    return audio.mean(axis=1)


def speech(work: Path) -> np.ndarray:
    """A sentence, then silence (a dream must not fill the silence with hiss)."""
    espeak = require_program("espeak-ng", "espeak-ng")
    subprocess.run([espeak, "-v", "en", "-s", "150", "-w", str(work / "s.wav"),
                    "audio dreams of electric sheep, and of the sound of rain"],
                   check=True, capture_output=True)
    audio, rate = sf.read(str(work / "s.wav"), dtype="float64")
    return resample_poly(audio, RATE // rate, 1) if rate != RATE else audio


def music(work: Path) -> np.ndarray:
    """A phrase on a nylon guitar over a cello line, 120 bpm."""
    track = MidiTrack()
    track.program(0, 24)
    track.program(1, 42)
    for k, pitch in enumerate((64, 67, 71, 72, 71, 67, 64, 62, 60, 64, 67, 72, 76, 72, 67, 64)):
        track.note(0, pitch, 90, start_ms=k * 250, length_ms=240)
    for k, pitch in enumerate((40, 43, 45, 36)):
        track.note(1, pitch, 70, start_ms=k * 1000, length_ms=950)
    return _fluidsynth(track, work)


def drums(work: Path) -> np.ndarray:
    """Two bars of kick, snare and hi-hats (GM percussion, channel 10), 120 bpm."""
    track = MidiTrack()
    for k in range(16):
        t = k * 250
        track.note(9, 42, 80, start_ms=t, length_ms=100)          # closed hi-hat
        if k % 4 == 0:
            track.note(9, 36, 120, start_ms=t, length_ms=200)     # kick
        if k % 4 == 2:
            track.note(9, 38, 110, start_ms=t, length_ms=200)     # snare
    return _fluidsynth(track, work)


def noise(_: Path) -> np.ndarray:
    """Steady pink noise (1/f power), seeded: the engine's own pink init."""
    silence = torch.zeros(1, int(SECONDS * RATE))
    return initial_signal("pink", silence, RATE, 1.0, 0.0,
                          torch.Generator().manual_seed(7))[0].double().numpy()


def make_inputs() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        return {name: _fit(fn(work)) for name, fn in
                (("speech", speech), ("music", music), ("drums", drums), ("noise", noise))}


# -- runs -----------------------------------------------------------------------------

def run_dream(model, x: np.ndarray, params: DreamParams, target: np.ndarray | None,
              level: bool = False) -> np.ndarray:
    """The dreamed `x`. Unless `level`, before the output's one gain (`output_gain`,
    the loudness setting): a single gain over the whole sound cannot change the
    structure measures, so they compare the dream itself; the loudness group
    measures the level that the listener gets."""
    kwargs = dict(target=target[None], target_rate=RATE) if target is not None else {}
    result = dream(x[None], RATE, model, params, **kwargs)
    return result.audio[0] if level else result.audio[0] / np.float32(result.output_gain)


def run_stream(model, x: np.ndarray, params: DreamParams, mode: str,
               block: int = 2048) -> np.ndarray:
    """Renders `x` through a stream session and the server's stream scheduler, offline
    (every iteration runs); aligned to x."""
    settings = StreamSettings(RATE, 1, block, mode=mode, offline=True).resolve(model.spec)
    session = StreamSession(settings, params.resolve(model.spec), model)
    scheduler = StreamScheduler(model)
    padded = np.concatenate([x, np.zeros(settings.delay + block, np.float32)])
    out = []
    try:
        for first in range(0, padded.size - block + 1, block):
            job = session.begin(padded[None, first:first + block])
            out.append(session.finish(scheduler.run(job) if job is not None else None)[0])
    finally:
        scheduler.close()
    y = np.concatenate(out)
    return y[settings.delay:settings.delay + x.size]


MUSIC_CLASSES = {"musicnn-mtt": ("choir",), "basic-pitch": ("C4", "E4", "G4")}


def cases(registry, only: set[str], music=()):
    """(group, label, model, params or stream mode, target input name)."""
    default = registry.get()
    for model in music:
        name = model.spec.name
        yield "music", f"{name}", model, DreamParams(model=name), None
        classes = tuple(ClassTarget(c) for c in MUSIC_CLASSES[name])
        yield "music", f"{name} class", model, DreamParams(
            model=name, objective="class", classes=classes), None
    if "defaults" in only:
        for model in (m for m in registry if m.spec.trained):
            yield "defaults", model.spec.name, model, DreamParams(model=model.spec.name), None
    if "updates" in only:
        for rule in ("hardcut", "hardcut_add", "target_filter", "flip"):
            yield "updates", rule, default, DreamParams(update=rule), "music"
    if "octaves" in only:
        yield "octaves", "octaves 3", default, DreamParams(octaves=3), None
    if "highpass" in only:
        for corner in (40.0, 200.0):
            yield "highpass", f"highpass {corner:g}", default, DreamParams(
                highpass_hz=corner), None
        yield "streams", "stream hp 40", default, (
            replace(STREAM_DEFAULTS, highpass_hz=40.0), "process"), None
    if "streams" in only:
        for mode in ("process", "generate"):
            yield "streams", f"stream {mode}", default, (STREAM_DEFAULTS, mode), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="defaults,updates,octaves,streams,loudness")
    parser.add_argument("--save", type=Path, help="write every input and output as WAV here")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    only = set(args.only.split(","))

    runtime.configure_threads(args.threads)
    registry = build_registry(pretrained=False).load(runtime.pick_device("auto"))
    music = list(build_registry(shipped=False, untrained_models=False).load(
        runtime.pick_device("auto"), list(MUSIC_CLASSES))) if "music" in only else []
    inputs = make_inputs()
    print(f"# sound bench: {platform.processor() or platform.machine()}, "
          f"{cpu_model()}, torch {torch.__version__}, inputs {SECONDS:g} s at {RATE} Hz")
    in_ltas = {k: listening.third_octave_ltas(v, RATE) for k, v in inputs.items()}
    in_sim = _mean_similarity(list(in_ltas.values()))
    print(f"# inputs' long-term spectra alike: r = {in_sim:.2f}")
    header = (f"{'group':9} {'case':16} {'input':7} {'logmel_r':>8} {'onset_r':>7} "
              f"{'retain':>6} {'chg_dB':>6} {'hf_in%':>6} {'hf_out%':>7} {'line_dB':>7} "
              f"{'line_Hz':>7} {'join_dB':>7} {'sec':>5}  targets")
    print(header)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for name, x in inputs.items():
            sf.write(str(args.save / f"input-{name}.wav"), x, RATE)
    for group, label, model, what, target_name in cases(registry, only, music):
        outs = []
        for name in INPUTS:
            x = inputs[name]
            target = None
            if target_name is not None:
                target = inputs["speech" if name == target_name else target_name]
            start = time.perf_counter()
            if group == "streams":
                params, mode = what
                y = run_stream(model, x, params, mode)
                window = overlap = 0
            else:
                y = run_dream(model, x, what, target)
                window = model.spec.fixed_input_samples
                resolved = what.validate().resolve(model.spec)
                overlap = round(window * resolved.window_overlap) if window else 0
            seconds = time.perf_counter() - start
            c = listening.compare(x, y, RATE, window, overlap)
            outs.append(y)
            if "highpass" in only:
                print(f"{'':9} {'':16} {name:7} change at/below 40 Hz: "
                      f"{100 * _low_share(y - x, 40.0):5.1f}% of its energy", flush=True)
            print(f"{group:9} {label:16} {name:7} {c.logmel_r:8.2f} {c.onset_r:7.2f} "
                  f"{c.retain:6.2f} {c.change_db:6.1f} {c.hf_in:6.1f} {c.hf_out:7.1f} "
                  f"{c.new_line_db:7.1f} {c.new_line_hz:7.0f} {c.join_db:7.2f} {seconds:5.1f}  "
                  f"{_verdict(c)}", flush=True)
            if args.save:
                slug = label.replace(" ", "_")
                sf.write(str(args.save / f"{group}-{slug}-{name}.wav"), y, RATE)
        sim = _mean_similarity([listening.third_octave_ltas(y, RATE) for y in outs])
        ok = "ok" if sim <= in_sim + 0.3 else "FAIL"
        print(f"{group:9} {label:16} {'alike':7} outputs' spectra r = {sim:.2f} "
              f"(inputs {in_sim:.2f}, target <= {in_sim + 0.3:.2f}) {ok}", flush=True)
    if "loudness" in only:
        loudness_rows(registry.get(), inputs)


LOUDNESS_PEAKS_DB = (-18.4, -6.0, -1.0)


def _db(value: float) -> float:
    return 20 * np.log10(max(value, 1e-12))


def loudness_rows(model, inputs: dict[str, np.ndarray]) -> None:
    """Output level against input level, the default model's defaults (see the docstring)."""
    print(f"{'loudness':9} {'input':7} {'peak_in':>7} {'peak_out':>8} {'rms_in':>7} "
          f"{'rms_out':>7} {'d_peak':>6} {'d_rms':>6}  (dBFS, dB)")
    for name in INPUTS:
        for peak_db in LOUDNESS_PEAKS_DB:
            x = inputs[name] * np.float32(10 ** (peak_db / 20) / np.abs(inputs[name]).max())
            y = run_dream(model, x, DreamParams(), None, level=True)
            levels = [_db(float(np.abs(a).max())) for a in (x, y)]
            levels += [_db(float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))) for a in (x, y)]
            print(f"{'loudness':9} {name:7} {levels[0]:7.1f} {levels[1]:8.1f} {levels[2]:7.1f} "
                  f"{levels[3]:7.1f} {levels[1] - levels[0]:6.1f} {levels[3] - levels[2]:6.1f}",
                  flush=True)


def _low_share(change: np.ndarray, below_hz: float) -> float:
    """Share of `change`'s energy at or below `below_hz`."""
    # A Hann window: the FFT's wrap from the last sample to the first would
    # otherwise leak into every band.
    power = np.abs(np.fft.rfft(change.astype(np.float64) * np.hanning(change.size))) ** 2
    freqs = np.fft.rfftfreq(change.size, 1.0 / RATE)
    return float(power[freqs <= below_hz].sum() / max(power.sum(), 1e-30))


def _verdict(c: listening.Comparison) -> str:
    fails = []
    if c.change_db < -12:
        fails.append("inaudible")
    if c.logmel_r < 0.6:
        fails.append("logmel")
    if c.onset_r < 0.5:
        fails.append("onset")
    if c.new_line_db > 3:
        fails.append("line")
    if c.hf_out - c.hf_in > 3:
        fails.append("hf")
    if not np.isnan(c.join_db) and abs(c.join_db) > 0.5:
        fails.append("join")
    return "ok" if not fails else "FAIL " + ",".join(fails)


def _mean_similarity(spectra: list[np.ndarray]) -> float:
    pairs = list(itertools.combinations(spectra, 2))
    return float(np.mean([listening.similarity(a, b) for a, b in pairs]))


if __name__ == "__main__":
    main()
