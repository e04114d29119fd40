"""What the CLI prints and writes: tables, a progress bar, the dreamed file."""

from __future__ import annotations

import sys

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .client import DreamOutput, Layers, ModelInfo


def print_models(models: list[ModelInfo]) -> None:
    print(f"{'model':<18} {'rate':>6} {'window':>7} {'classes':>7} {'params':>8}  "
          f"{'trained':<7} {'device':<7} description")
    for m in models:
        name = m.name + (" *" if m.is_default else "")
        window = f"{m.fixed_input_samples}" if m.fixed_input_samples else "any"
        print(f"{name:<18} {m.sample_rate:>6} {window:>7} {m.num_classes:>7} "
              f"{m.parameters:>8}  {str(m.trained).lower():<7} {m.device:<7} {m.description}")
    print("* default model")


def print_layers(layers: Layers) -> None:
    print(f"model {layers.model} ({layers.sample_rate} Hz), default layer {layers.default_layer}")
    print(f"{'layer':<10} {'type':<8} {'maps':>5} {'frame rate':>11} {'stride':>7}")
    for layer in layers.layers:
        print(f"{layer.name:<10} {layer.module_type:<8} {layer.channels:>5} "
              f"{layer.frame_rate:>8.1f} Hz {layer.stride:>7}")
    if layers.classes:
        shown = ", ".join(layers.classes[:12]) + (" ..." if len(layers.classes) > 12 else "")
        print(f"{len(layers.classes)} classes: {shown}")


class ProgressBar:
    """A tqdm bar fed by DreamProgress updates."""

    def __init__(self, disable: bool = False):
        self._bar = tqdm(total=0, unit="step", disable=disable, file=sys.stderr,
                         desc="dreaming", leave=False)

    def update(self, event) -> None:
        if event.iterations and self._bar.total != event.iterations:
            self._bar.total = event.iterations
        self._bar.n = event.iteration
        if event.iteration:
            self._bar.set_postfix(loss=f"{event.loss:.4g}", refresh=False)
        self._bar.refresh()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self._bar.close()


def write_like(path: str, audio: np.ndarray, rate: int, reference: str) -> None:
    """Writes `audio` to `path` in the reference file's sample format, if the container allows."""
    fmt = _format_of(path)
    try:
        subtype = sf.info(reference).subtype
    except (RuntimeError, TypeError, ValueError):
        subtype = None
    if subtype and not sf.check_format(fmt, subtype):
        subtype = None
    sf.write(path, audio, rate, format=fmt, subtype=subtype)


def _format_of(path: str) -> str:
    return {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "aiff": "AIFF", "aif": "AIFF"}.get(
        path.rsplit(".", 1)[-1].lower(), "WAV")


def print_dream_summary(out: DreamOutput, path: str) -> None:
    loss = f"{out.loss[0]:.4g} -> {out.loss[-1]:.4g}" if out.loss else "no iterations"
    print(f"wrote {path}: {len(out.audio) / out.sample_rate:.2f} s at {out.sample_rate} Hz, "
          f"model {out.model}, objective {loss}, gain {out.output_gain:.3f}, "
          f"{out.timing['total']:.2f} s")
    print(f"{'':<11} {'rms':>8} {'centroid':>10} {'flatness':>9} {'flux':>7}")
    for name, f in (("input", out.input_features), ("output", out.output_features)):
        print(f"{name:<11} {f.rms:>8.4f} {f.spectral_centroid_hz:>8.0f}Hz "
              f"{f.spectral_flatness:>9.4f} {f.spectral_flux:>7.4f}")
