"""What the CLI prints and writes: tables, a progress bar, the dreamed file."""

from __future__ import annotations

import sys
import time

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .cli_checks import output_format
from .client import DreamOutput, Layers, ModelInfo


def print_models(models: list[ModelInfo]) -> None:
    print(f"{'model':<18} {'rate':>6} {'window':>7} {'classes':>7} {'params':>8}  "
          f"{'trained':<7} {'device':<7} description")
    for m in models:
        if m.error:
            print(f"{m.name:<18} not served: {m.error}")
            continue
        if m.pending:
            print(f"{m.name + (' *' if m.is_default else ''):<18} loads on first use")
            continue
        name = m.name + (" *" if m.is_default else "")
        window = f"{m.fixed_input_samples}" if m.fixed_input_samples else "any"
        print(f"{name:<18} {m.sample_rate:>6} {window:>7} {m.num_classes:>7} "
              f"{m.parameters:>8}  {str(m.trained).lower():<7} {m.device:<7} {m.description}")
    print("* default model")


def print_layers(layers: Layers) -> None:
    print(f"model {layers.model} ({layers.sample_rate} Hz, dreamed on the {layers.domain}), "
          f"default layer {layers.default_layer}")
    width = max([10] + [len(layer.name) for layer in layers.layers])
    print(f"{'layer':<{width}} {'type':<8} {'maps':>5} {'frame rate':>11} {'stride':>7}")
    for layer in layers.layers:
        print(f"{layer.name:<{width}} {layer.module_type:<8} {layer.channels:>5} "
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
    """Writes `audio` to `path` in the reference file's sample format, if the container allows.

    The container is the one the name asks for (`cli_checks.output_format`).
    """
    fmt = output_format(path)
    try:
        subtype = sf.info(reference).subtype
    except (RuntimeError, TypeError, ValueError):
        subtype = None
    if subtype and not sf.check_format(fmt, subtype):
        subtype = None
    sf.write(path, audio, rate, format=fmt, subtype=subtype)


def print_dream_summary(out: DreamOutput, path: str) -> None:
    loss = f"{out.loss[0]:.4g} -> {out.loss[-1]:.4g}" if out.loss else "no iterations"
    print(f"wrote {path}: {len(out.audio) / out.sample_rate:.2f} s at {out.sample_rate} Hz, "
          f"model {out.model}, objective {loss}, gain {out.output_gain:.3f}, "
          f"{out.timing['total']:.2f} s")
    print(f"{'':<11} {'rms':>8} {'centroid':>10} {'flatness':>9} {'flux':>7}")
    for name, f in (("input", out.input_features), ("output", out.output_features)):
        print(f"{name:<11} {f.rms:>8.4f} {f.spectral_centroid_hz:>8.0f}Hz "
              f"{f.spectral_flatness:>9.4f} {f.spectral_flux:>7.4f}")
    if out.class_changes:
        print(f"{'class':<16} {'input':>7} {'output':>7} {'change':>8}")
        for name, before, after in out.class_changes:
            print(f"{name:<16} {before:>7.3f} {after:>7.3f} {after - before:>+8.3f}")
        before, after = out.others
        print(f"{'(other classes)':<16} {before:>7.3f} {after:>7.3f} {after - before:>+8.3f}")


def print_classification(result) -> None:
    """A Classification as a table: rank, class, score."""
    what = f", output {result.output}" if result.output else ""
    print(f"model {result.model}{what} ({result.activation} scores, mean over "
          f"{result.windows} window(s)):")
    for rank, (name, index, score) in enumerate(result.scores, start=1):
        print(f"{rank:>3}. {name:<20} {score:.3f}  (class {index})")


def print_morph_summary(out, path: str) -> None:
    """What a morph wrote, its amounts and the features of A, B and the morph."""
    shown = out.amounts if len(out.amounts) <= 6 else (
        out.amounts[:3] + [float("nan")] + out.amounts[-2:])
    amounts = " ".join("..." if a != a else f"{a:.2f}" for a in shown)
    print(f"wrote {path}: {len(out.audio) / out.sample_rate:.2f} s at {out.sample_rate} Hz, "
          f"model {out.model}, {out.latent_frames} latent frames of {out.latent_size} "
          f"({out.latent_frame_rate:.1f}/s), amounts {amounts}, gain {out.output_gain:.3f}, "
          f"{out.timing['total']:.2f} s")
    print(f"{'':<11} {'rms':>8} {'centroid':>10} {'flatness':>9} {'flux':>7}")
    for name, f in (("A", out.a_features), ("B", out.b_features),
                    ("morph", out.output_features)):
        print(f"{name:<11} {f.rms:>8.4f} {f.spectral_centroid_hz:>8.0f}Hz "
              f"{f.spectral_flatness:>9.4f} {f.spectral_flux:>7.4f}")


def stream_file(client, source: str, destination: str, *, block: int, mode: str, delay: int,
                window: int, realtime: bool, model: str, layers, quiet: bool, target=None,
                offline: bool | None = None, reopen: bool = False, **params) -> dict:
    """Streams a sound file through StreamDream and writes the result, latency removed.

    The file is cut into blocks (the last one padded with silence); `latency`
    more frames of silence follow so the tail comes out too; the first
    `latency` output frames are dropped, so the output lines up with the input.
    Unless `realtime`, blocks go as fast as the server takes them, so the stream
    is offline (every iteration runs; nothing is dropped to keep a pace that
    no one is listening to); `offline` overrides that.
    """
    if offline is None:
        offline = not realtime
    audio, rate = sf.read(source, dtype="float32", always_2d=True)
    frames, channels = audio.shape
    start = time.perf_counter()
    with client.stream(rate, channels, block, model=model, layers=layers, mode=mode,
                       delay=delay, window=window, target=target, offline=offline,
                       reopen=reopen, on_move=None if quiet else _say_moved,
                       **params) as stream:
        latency = stream.latency
        total = -(-(frames + latency) // block) * block
        padded = np.zeros((total, channels), np.float32)
        padded[:frames] = audio
        blocks = (padded[i:i + block] for i in range(0, total, block))
        outputs = []
        with tqdm(total=total // block, unit="block", disable=quiet, file=sys.stderr,
                  desc="streaming", leave=False) as bar:
            for out in stream.process(blocks, realtime=realtime):
                outputs.append(out.reshape(block, channels))
                bar.update()
        stats = stream.stats[-1] if stream.stats else None
        warnings = [w.code for w in stream.warnings]
    dreamed = np.concatenate(outputs)[latency:latency + frames]
    write_like(destination, dreamed, rate, source)
    return {"frames": frames, "rate": rate, "blocks": len(outputs), "latency": latency,
            "seconds": time.perf_counter() - start, "stats": stats, "warnings": warnings}


def _say_moved(move) -> None:
    print(f"\nstream moved ({move.reason}): {move.from_replica or '?'} -> "
          f"{move.to_replica or '?'} in {move.seconds * 1000:.0f} ms, {move.resent} blocks "
          "sent again", file=sys.stderr)


def print_stream_summary(summary: dict, path: str) -> None:
    stats = summary["stats"]
    line = (f"wrote {path}: {summary['frames'] / summary['rate']:.2f} s in {summary['blocks']} "
            f"blocks, latency {summary['latency']} frames, {summary['seconds']:.2f} s")
    if stats is not None:
        line += (f"; real-time factor {stats.real_time_factor:.3f}, late blocks "
                 f"{stats.late_blocks}, iterations/block {stats.iterations_run:.1f}")
    print(line)
    if summary["warnings"]:
        counts = {code: summary["warnings"].count(code) for code in set(summary["warnings"])}
        print("warnings: " + ", ".join(f"{code} x{n}" for code, n in sorted(counts.items())))
