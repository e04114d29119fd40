"""Pictures of one dream: what went in, what came out, what changed, how the ascent went.

`dream_figure` draws, from the sound sent and the `DreamOutput` received:

    input spectrogram | output spectrogram     same dBFS colour limits, log frequency
    change (output - input, dB per cell)       diverging colours, 0 dB = untouched
    objective per iteration                    the loss curve the server returned
    the four features of Bisig & Wegner        RMS, centroid, flatness, flux, before/after

Needs matplotlib (`pip install "audiodream[plot]"`); uses the figure API only, no
pyplot state, so it works headless and in notebooks (a returned Figure displays).
Imports neither torch nor the server.
"""

from __future__ import annotations

import io
import os

import numpy as np

from .spectrogram import Spectrogram, change_db, log_spectrogram

DYNAMIC_RANGE_DB = 80.0   # colour range below the louder sound's peak
CHANGE_RANGE_DB = 24.0    # the change map spans -24 .. +24 dB
SPECTRUM_CMAP = "magma"
THUMB_LIMITS_DB = (-100.0, -10.0)  # the atlas's thumbnails share this scale
THUMB_CHANGE_DB = 12.0             # ... and their change maps span -12 .. +12 dB
CHANGE_CMAP = "RdBu_r"    # red: louder after the dream, blue: quieter
FEATURES = (("rms", "RMS", "{:.3f}"), ("spectral_centroid_hz", "centroid (Hz)", "{:.0f}"),
            ("spectral_flatness", "flatness", "{:.3f}"), ("spectral_flux", "flux", "{:.3f}"))


def require_matplotlib():
    """Imports matplotlib (headless backend) or says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("pictures need matplotlib: pip install \"audiodream[plot]\"") from None
    matplotlib.use("Agg", force=False)
    return matplotlib


def dream_figure(audio, sample_rate: int, out, *, title: str = ""):
    """A figure of one dream.

    Args:
        audio: the sound that was dreamed, `[T]` or `[T, C]` (or a path to it).
        sample_rate: its rate, Hz (ignored for a path).
        out: the `DreamOutput` that `Client.dream` returned for it.
        title: first line of the figure's title ["dream on MODEL"].
    Returns:
        a `matplotlib.figure.Figure` (save it with `.savefig(path)`).
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    if isinstance(audio, (str, bytes)) or hasattr(audio, "__fspath__"):
        import soundfile as sf

        audio, sample_rate = sf.read(audio, dtype="float32", always_2d=True)
    before = log_spectrogram(audio, sample_rate)
    after = log_spectrogram(out.audio, out.sample_rate)
    top = float(max(before.level_db.max(), after.level_db.max()))
    limits = (top - DYNAMIC_RANGE_DB, top)

    fig = Figure(figsize=(11, 7.5), layout="constrained")
    grid = fig.add_gridspec(3, 2, height_ratios=[1.15, 1.15, 0.9])
    ax_in, ax_out = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_change = fig.add_subplot(grid[1, :])
    ax_loss, ax_feat = fig.add_subplot(grid[2, 0]), fig.add_subplot(grid[2, 1])

    mesh = _draw(ax_in, before, limits, SPECTRUM_CMAP, "input")
    _draw(ax_out, after, limits, SPECTRUM_CMAP, "output (same scale)")
    fig.colorbar(mesh, ax=[ax_in, ax_out], label="dBFS", shrink=0.9, pad=0.01)
    diff = Spectrogram(change_db(before, after, limits[0]), before.times_s,
                       before.frequencies_hz)
    changed = _draw(ax_change, diff, (-CHANGE_RANGE_DB, CHANGE_RANGE_DB), CHANGE_CMAP,
                    "change: output - input (red louder, blue quieter)")
    fig.colorbar(changed, ax=ax_change, label="dB", pad=0.01)
    _draw_loss(ax_loss, out.loss)
    _draw_features(ax_feat, out.input_features, out.output_features)

    layers = ", ".join(_layer_text(sel) for sel in out.params.layers) or "default layer"
    head = title or f"dream on {out.model}"
    fig.suptitle(f"{head}  |  {layers}  |  {len(out.loss)} iterations, "
                 f"step {out.params.step_size:g}, seed {out.params.seed}", fontsize=11)
    return fig


def save_dream_plot(path: str, audio, sample_rate: int, out, *, title: str = "",
                    dpi: int = 100) -> None:
    """Draws `dream_figure` and writes it (PNG, SVG or PDF by the file name).

    A PNG is written with a palette of 256 colours: a third of the size of a
    true-colour one (about 85 KB instead of 220 KB), and alike to the eye.
    """
    fig = dream_figure(audio, sample_rate, out, title=title)
    if not os.fspath(path).lower().endswith(".png"):
        fig.savefig(path, dpi=dpi)
        return
    from PIL import Image  # matplotlib's own dependency

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=256).save(path, optimize=True)


def write_thumbnail(path: str, audio, sample_rate: int, *, rows: int = 128,
                    change_path: str | None = None, start=None) -> None:
    """Bare spectrogram pictures (no axes) for the atlas grid: one pixel per frame and row.

    Levels are drawn on the fixed scale THUMB_LIMITS_DB (dBFS), so thumbnails of
    different dreams compare directly; rows span 30 Hz .. Nyquist in log frequency.
    With `change_path` and `start` (the sound dreamed from, same length and rate),
    also the change from it in dB, on +-THUMB_CHANGE_DB (red louder, blue quieter).
    """
    require_matplotlib()
    from matplotlib.image import imsave

    spec = log_spectrogram(audio, sample_rate, n_fft=2048, hop=512, rows=rows)
    imsave(path, spec.level_db.T, cmap=SPECTRUM_CMAP, vmin=THUMB_LIMITS_DB[0],
           vmax=THUMB_LIMITS_DB[1], origin="lower", format="png")
    if change_path:
        before = log_spectrogram(start, sample_rate, n_fft=2048, hop=512, rows=rows)
        imsave(change_path, change_db(before, spec, THUMB_LIMITS_DB[0]).T, cmap=CHANGE_CMAP,
               vmin=-THUMB_CHANGE_DB, vmax=THUMB_CHANGE_DB, origin="lower", format="png")


def _draw(ax, spec: Spectrogram, limits, cmap: str, title: str):
    mesh = ax.pcolormesh(spec.times_s, spec.frequencies_hz, spec.level_db.T, cmap=cmap,
                         vmin=limits[0], vmax=limits[1], shading="nearest", rasterized=True)
    ax.set_yscale("log")
    _hz_ticks(ax, spec.frequencies_hz)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=10)
    return mesh


def _hz_ticks(ax, freqs: np.ndarray) -> None:
    ticks = [t for t in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
             if freqs[0] <= t <= freqs[-1]]
    ax.set_yticks(ticks, [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
    ax.minorticks_off()


def _draw_loss(ax, loss) -> None:
    if len(loss):
        ax.plot(np.arange(1, len(loss) + 1), loss, marker="o", markersize=3)
        if min(loss) > 0 and max(loss) / min(loss) > 30:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no iterations", ha="center", va="center", transform=ax.transAxes)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    ax.set_title("objective per iteration", fontsize=10)
    ax.grid(alpha=0.3)


def _draw_features(ax, before, after) -> None:
    """Each feature as output / input (1 = unchanged), labelled with both values."""
    names = [label for _, label, _ in FEATURES]
    ratios, labels = [], []
    for key, _, fmt in FEATURES:
        a, b = getattr(before, key), getattr(after, key)
        ratios.append(b / a if a else (1.0 if b == a else np.nan))
        labels.append(f"{fmt.format(a)} -> {fmt.format(b)}")
    y = np.arange(len(names))
    ax.barh(y, ratios, color=["#4c72b0" if r >= 1 else "#dd8452" for r in ratios])
    ax.axvline(1.0, color="black", linewidth=0.8)
    for yi, text in zip(y, labels, strict=True):
        ax.text(0.02, yi, text, va="center", transform=ax.get_yaxis_transform(), fontsize=9,
                color="black", bbox=dict(facecolor="white", alpha=0.7, edgecolor="none"))
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    finite = [r for r in ratios if np.isfinite(r)]
    ax.set_xlim(0, max([1.5, *finite]) * 1.1)
    ax.set_xlabel("output / input")
    ax.set_title("features: input -> output", fontsize=10)


def _layer_text(selection) -> str:
    text = selection.name
    if len(selection.channels):
        text += ":" + ",".join(str(c) for c in selection.channels)
    return text
