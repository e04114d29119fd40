"""The layer atlas: Bisig & Wegner's layer experiment on any served model (seed 003 §4.1).

Bisig & Wegner dream every layer, and feature maps within it, from noise and
from real sounds, and compare the results by spectrogram and by four features
(RMS, centroid, flatness, flux). `build_atlas` does the same through any client
(a server, or the in-process engine of `--local`) and writes a folder that a
browser opens without a network:

    DIR/index.html            the page: grids of thumbnails with players, the
                              features table (sortable), the per-layer summary,
                              the parameters used
    DIR/sources/SOURCE.*      the sounds dreamed from (pink noise, the input)
    DIR/cells/KEY.{flac,png,json}, KEY-change.png
                              one dream each: sound, spectrogram, record, and
                              the change from the source in dB

A cell is (source, layer, feature maps); "all" is the whole layer. The maps
dreamed by default are spread evenly over the layer's range:

    maps(C, k) = unique(round(linspace(0, C - 1, k)))       (C maps, k asked)

Resuming: a cell's record holds a fingerprint of everything that makes its
sound (model, layer, maps, the dream parameters, the source's samples); a cell
whose record, sound and picture exist with the same fingerprint is kept, so an
interrupted atlas continues where it stopped and a changed parameter re-renders
only what it changes. The page is rewritten after every layer, so a partial
atlas can be looked at while the rest renders.

Imports neither torch nor the server: the client does the work.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from .client import Layers, ServerError
from .layers import parse_layer

NOISE_PEAK = 0.25          # the engine's `init_gain` default for synthetic starts
NOISE_SECONDS = 2.0        # length of the noise source when no sound is given
FORMATS = {"flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16"), "ogg": ("OGG", "VORBIS")}
RECORD_VERSION = 1
# A server refusal that concerns one cell (e.g. a dream that diverged): the cell is
# shown with the reason and the atlas goes on. Any other error stops the atlas.
CELL_ERRORS = ("OUT_OF_RANGE",)


@dataclass(frozen=True)
class Cell:
    """One dream of the atlas: a source, a layer, some of its maps (empty = all)."""

    source: str
    layer: str
    maps: tuple[int, ...] = ()

    @property
    def key(self) -> str:
        """File-name stem, e.g. "noise-conv3-all", "input-conv3-m7"."""
        which = "all" if not self.maps else "m" + "-".join(str(m) for m in self.maps)
        return f"{self.source}-{self.layer}-{which}"

    @property
    def label(self) -> str:
        return "whole layer" if not self.maps else "map " + ",".join(map(str, self.maps))


@dataclass
class Source:
    """A sound the atlas dreams from, mono, at its own rate."""

    name: str
    title: str
    audio: np.ndarray
    rate: int

    @property
    def digest(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.audio, dtype="<f4").tobytes())
        h.update(str(self.rate).encode())
        return h.hexdigest()


@dataclass
class AtlasSummary:
    """What one run did: cells rendered now and kept from before, time, size."""

    out_dir: str
    model: str
    rendered: int = 0
    kept: int = 0
    seconds: float = 0.0
    bytes_on_disk: int = 0
    interrupted: bool = False
    failed: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)


def spread(channels: int, count: int) -> list[int]:
    """`count` feature maps spread evenly over `channels`.

    >>> spread(64, 4)
    [0, 21, 42, 63]
    >>> spread(3, 8)
    [0, 1, 2]
    >>> spread(16, 0)
    []
    """
    if count <= 0 or channels <= 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, channels - 1, min(count, channels))})


def plan_cells(info: Layers, sources: list[str], layers: list[str], maps: int) -> list[Cell]:
    """The cells of an atlas, layer by layer, in the model's layer order.

    Args:
        info: the model's layers (`Client.layers`).
        sources: source names, e.g. ["noise", "input"].
        layers: "NAME[:CH,...]" to restrict the atlas (empty = every layer); maps
            given there replace the spread.
        maps: feature maps spread over each layer (0 = only the whole layer).
    """
    by_name = {layer.name: layer for layer in info.layers}
    chosen: dict[str, list[int] | None] = {}
    for text in layers:
        name, channels, _ = parse_layer(text)
        if name not in by_name:
            raise ValueError(f"model {info.model} has no layer {name!r}; its layers: "
                             f"{', '.join(by_name)}")
        bad = [c for c in channels if not 0 <= c < by_name[name].channels]
        if bad:
            raise ValueError(f"layer {name} has feature maps 0..{by_name[name].channels - 1}; "
                             f"got {bad}")
        chosen[name] = channels or None
    cells = []
    for layer in info.layers:
        if chosen and layer.name not in chosen:
            continue
        picked = chosen.get(layer.name) or spread(layer.channels, maps)
        for source in sources:
            cells.append(Cell(source, layer.name))
            cells.extend(Cell(source, layer.name, (m,)) for m in picked)
    return cells


def pink_noise(frames: int, seed: int) -> np.ndarray:
    """Pink (1/f power) noise `[frames]`, peak NOISE_PEAK, from a seeded generator.

    Each rfft bin of white noise is scaled by 1/sqrt(f) (DC removed), as the
    engine's own `init pink` does.
    """
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(frames))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    spectrum[0] = 0
    x = np.fft.irfft(spectrum, n=frames)
    return (NOISE_PEAK * x / max(np.abs(x).max(), 1e-12)).astype(np.float32)


def load_sources(input_path: str | None, seconds: float, rate: int, seed: int,
                 with_noise: bool = True) -> list[Source]:
    """The noise source and, if given, the input (first `seconds`, channels averaged).

    The noise has the input's length and rate, or NOISE_SECONDS at `rate`.
    """
    sources = []
    if input_path:
        if not os.path.isfile(input_path):
            raise FileNotFoundError(f"{input_path}: no such sound file")
        try:
            audio, in_rate = sf.read(input_path, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:  # soundfile's decode errors
            raise ValueError(f"{input_path}: not a sound file this can read ({exc})") from None
        audio = audio[: int(round(seconds * in_rate))].mean(axis=1)
        if not audio.size:
            raise ValueError(f"{input_path}: no samples")
        title = os.path.basename(input_path)
        sources.append(Source("input", title, audio.astype(np.float32), in_rate))
        frames, rate = audio.size, in_rate
    else:
        frames = int(round(min(seconds, NOISE_SECONDS) * rate))
    if with_noise:
        sources.insert(0, Source("noise", "pink noise", pink_noise(frames, seed), rate))
    return sources


def build_atlas(client, out_dir: str, *, input_path: str | None = None, model: str = "",
                layers: tuple[str, ...] = (), maps: int = 4, seconds: float = 4.0,
                audio_format: str = "flac", noise: bool = True, params: dict | None = None,
                quiet: bool = False, target=None) -> AtlasSummary:
    """Renders (or resumes) an atlas into `out_dir` and writes its page.

    Args:
        client: a `Client` (or the in-process `LocalClient`).
        input_path: a sound file to dream from, beside the noise (None = noise only).
        model: model name ("" = the server's default).
        layers: "NAME[:CH,...]" restricting the atlas (empty = every layer).
        maps: feature maps per layer, spread over its range (0 = whole layers only).
        seconds: longest part of the input dreamed, s.
        audio_format: "flac", "wav" or "ogg" for the cells' sounds.
        noise: include the pink-noise source.
        params: DreamParams fields for every cell (None values = server defaults).
        quiet: no progress bar.
    """
    from .atlas_page import write_page
    from .plot import require_matplotlib, write_thumbnail

    require_matplotlib()
    if audio_format not in FORMATS:
        raise ValueError(f"audio format {audio_format!r}: choose one of {', '.join(FORMATS)}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    params = {k: v for k, v in (params or {}).items() if v is not None}
    info = client.layers(model)
    sources = load_sources(input_path, seconds, info.sample_rate, int(params.get("seed", 0)),
                           with_noise=noise)
    if not sources:
        raise ValueError("nothing to dream from: give a sound file or keep the noise source")
    cells = plan_cells(info, [s.name for s in sources], list(layers), maps)
    by_source = {s.name: s for s in sources}
    os.makedirs(os.path.join(out_dir, "cells"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "sources"), exist_ok=True)
    ext = audio_format
    fmt, subtype = FORMATS[audio_format]
    for s in sources:
        sf.write(os.path.join(out_dir, "sources", f"{s.name}.{ext}"), s.audio, s.rate,
                 format=fmt, subtype=subtype)
        write_thumbnail(os.path.join(out_dir, "sources", f"{s.name}.png"), s.audio, s.rate)

    summary = AtlasSummary(out_dir, info.model)
    meta = {"model": info.model, "sample_rate": info.sample_rate, "maps": maps,
            "seconds": seconds, "format": audio_format,
            "sources": [{"name": s.name, "title": s.title, "rate": s.rate,
                         "duration": s.audio.size / s.rate} for s in sources],
            "layers": [{"name": x.name, "module_type": x.module_type, "channels": x.channels}
                       for x in info.layers],
            "requested": params, "resolved": {}}
    start = time.perf_counter()
    records: dict[str, dict] = {}
    progress = _progress(len(cells), quiet)
    try:
        for i, cell in enumerate(cells):
            source = by_source[cell.source]
            fingerprint = _fingerprint(info.model, cell, params, source, target, audio_format)
            record = _kept(out_dir, cell, fingerprint, ext)
            if record is not None:
                summary.kept += 1
            else:
                try:
                    record = _render(client, out_dir, cell, source, info.model, params, target,
                                     fingerprint, ext)
                    summary.rendered += 1
                except ServerError as exc:
                    if exc.code not in CELL_ERRORS:
                        raise
                    record = _failed(cell, exc)  # not saved: tried again on the next run
                    summary.failed.append(f"{cell.key}: {exc.message}")
            records[cell.key] = record
            meta["resolved"] = meta["resolved"] or record.get("params", {})
            progress.update(cell.key)
            last_of_layer = i + 1 == len(cells) or cells[i + 1].layer != cell.layer
            if last_of_layer:
                _write(out_dir, meta, sources, cells, records, start, write_page)
    except KeyboardInterrupt:
        summary.interrupted = True
        _write(out_dir, meta, sources, cells, records, start, write_page)
    finally:
        progress.close()
    summary.seconds = time.perf_counter() - start
    summary.records = list(records.values())
    summary.bytes_on_disk = _size(out_dir)
    return summary


def print_atlas_summary(summary: AtlasSummary) -> None:
    """What the command prints at the end: counts, time, size, where to look."""
    state = "interrupted" if summary.interrupted else "done"
    print(f"atlas of {summary.model} {state}: {summary.rendered} cells rendered, "
          f"{summary.kept} kept from before, {summary.seconds:.1f} s, "
          f"{summary.bytes_on_disk / 1e6:.1f} MB in {summary.out_dir}")
    for failure in summary.failed:
        print(f"not dreamed: {failure}")
    if summary.interrupted:
        print("run the same command again to finish (rendered cells are kept)")
    print(f"open {os.path.join(summary.out_dir, 'index.html')} in a browser")


def _write(out_dir, meta, sources, cells, records, start, write_page) -> None:
    meta = {**meta, "render_seconds": sum(r["seconds"] for r in records.values()),
            "cells_total": len(cells), "cells_done": len(records),
            "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    with open(os.path.join(out_dir, "atlas.json"), "w") as f:
        json.dump({"meta": meta, "cells": [records[c.key] for c in cells if c.key in records]},
                  f, indent=1)
    write_page(out_dir, meta, [records[c.key] for c in cells if c.key in records])


def _fingerprint(model: str, cell: Cell, params: dict, source: Source, target,
                 audio_format: str) -> str:
    target_id = None
    if target is not None:
        target_id = (hashlib.sha256(open(target, "rb").read()).hexdigest()
                     if isinstance(target, (str, os.PathLike)) else repr(target))
    blob = json.dumps({"v": RECORD_VERSION, "model": model, "layer": cell.layer,
                       "maps": list(cell.maps), "params": params, "source": source.digest,
                       "target": target_id, "format": audio_format},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _paths(out_dir: str, cell: Cell, ext: str) -> dict[str, str]:
    stem = os.path.join(out_dir, "cells", cell.key)
    return {"audio": f"{stem}.{ext}", "image": f"{stem}.png", "change": f"{stem}-change.png",
            "record": f"{stem}.json"}


def _kept(out_dir: str, cell: Cell, fingerprint: str, ext: str) -> dict | None:
    paths = _paths(out_dir, cell, ext)
    if not all(os.path.exists(p) for p in paths.values()):
        return None
    try:
        with open(paths["record"]) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None  # a record cut short by an interruption is rendered again
    return record if record.get("fingerprint") == fingerprint else None


def _failed(cell: Cell, exc: ServerError) -> dict:
    return {"key": cell.key, "source": cell.source, "layer": cell.layer, "maps": list(cell.maps),
            "label": cell.label, "error": f"{exc.code}: {exc.message}", "seconds": 0.0}


def _render(client, out_dir: str, cell: Cell, source: Source, model: str, params: dict,
            target, fingerprint: str, ext: str) -> dict:
    from google.protobuf.json_format import MessageToDict

    from .plot import write_thumbnail

    began = time.perf_counter()
    out = client.dream(source.audio, source.rate, model=model,
                       layers=[(cell.layer, list(cell.maps))], target=target, **params)
    seconds = time.perf_counter() - began
    paths = _paths(out_dir, cell, ext)
    fmt, subtype = FORMATS[ext]
    sf.write(paths["audio"], out.audio, out.sample_rate, format=fmt, subtype=subtype)
    write_thumbnail(paths["image"], out.audio, out.sample_rate, change_path=paths["change"],
                    start=source.audio)
    resolved = MessageToDict(out.params, preserving_proto_field_name=True,
                             always_print_fields_with_no_presence=True)
    resolved.pop("layers", None)
    record = {"key": cell.key, "source": cell.source, "layer": cell.layer,
              "maps": list(cell.maps), "label": cell.label, "fingerprint": fingerprint,
              "audio": os.path.relpath(paths["audio"], out_dir),
              "image": os.path.relpath(paths["image"], out_dir),
              "change_image": os.path.relpath(paths["change"], out_dir),
              "frames": int(len(out.audio)), "sample_rate": out.sample_rate,
              "duration": len(out.audio) / out.sample_rate,
              "input_features": vars(out.input_features),
              "output_features": vars(out.output_features),
              "loss_first": out.loss[0] if out.loss else None,
              "loss_last": out.loss[-1] if out.loss else None,
              "iterations": len(out.loss), "seconds": seconds, "params": resolved}
    # The record is written last: its presence says the sound and picture are whole.
    tmp = paths["record"] + ".part"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, paths["record"])
    return record


def _size(out_dir: str) -> int:
    total = 0
    for root, _, files in os.walk(out_dir):
        total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
    return total


class _progress:
    """A tqdm bar over cells (kept cells advance it at once)."""

    def __init__(self, total: int, quiet: bool):
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="cell", desc="atlas", disable=quiet,
                         file=sys.stderr, leave=False)

    def update(self, key: str) -> None:
        self._bar.set_postfix_str(key, refresh=False)
        self._bar.update()

    def close(self) -> None:
        self._bar.close()


__all__ = ["AtlasSummary", "Cell", "build_atlas", "plan_cells", "pink_noise",
           "print_atlas_summary", "spread"]
