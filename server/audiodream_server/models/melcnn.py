"""A mel-spectrogram CNN in the spirit of the Auditory DeepDreamer (seed 002).

1 s of 44.1 kHz audio -> log-mel spectrogram (the front end) -> four VGG-like
blocks of 3x3 convolutions, BatchNorm, ReLU and 2x2 max pooling -> global
average pooling -> class logits. The front end is a module of its own so the
model can be dreamed in the spectrogram domain: the log-mel is then the
optimised variable and the sound is resynthesised from it
(`engine.melspace`).

Front end, for a window x `[B, T]`:

    S = STFT(x)              Hann, n_fft 2048, hop 512, centred -> 87 frames
    P = W |S|^2              W: `mels` triangular filters (Slaney-style, HTK mel)
    L = log(P + 1e-6)        natural log, so exp(L' - L) is a power gain
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 44100
WINDOW = 44100
N_FFT, HOP, MELS = 2048, 512, 96
FMIN, FMAX = 30.0, 16000.0
FLOOR = 1e-6
CHANNELS = (16, 32, 64, 64)


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, mels: int, fmin: float, fmax: float
                   ) -> torch.Tensor:
    """`[mels, n_fft // 2 + 1]` triangular filters, each of unit area (Slaney norm)."""
    bins = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).double()
    edges = _mel_to_hz(torch.linspace(_hz_to_mel(torch.tensor(fmin)).item(),
                                      _hz_to_mel(torch.tensor(fmax)).item(), mels + 2,
                                      dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights = weights * (2.0 / (upper - lower))
    return weights.float()


class LogMel(nn.Module):
    """Waveform `[B, T]` -> log-mel `[B, 1, mels, frames]`, differentiable."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, hop: int = HOP,
                 mels: int = MELS):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(sample_rate, n_fft, mels, FMIN, FMAX),
                             persistent=False)

    def spectrum(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex STFT `[B, n_fft // 2 + 1, frames]`."""
        return torch.stft(audio, self.n_fft, self.hop, window=self.window, center=True,
                          return_complex=True)

    def from_spectrum(self, spectrum: torch.Tensor) -> torch.Tensor:
        power = spectrum.real.square() + spectrum.imag.square()
        return torch.log(self.filters @ power + FLOOR).unsqueeze(1)

    def linear_gain(self, mel_gain: torch.Tensor) -> torch.Tensor:
        """Per-mel power gains `[B, mels, frames]` -> per-bin amplitude gains `[B, bins, frames]`.

        Each STFT bin takes the filter-weighted mean of the gains of the mel
        bands it belongs to; bins outside every band keep gain 1. Amplitude is
        the square root of power.
        """
        weights = self.filters.t()  # [bins, mels]
        total = weights.sum(dim=1, keepdim=True)
        covered = total > 0
        mixed = (weights / total.clamp_min(1e-12)) @ mel_gain
        gain = torch.where(covered, mixed, torch.ones_like(mixed))
        return gain.clamp_min(0.0).sqrt()

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.from_spectrum(self.spectrum(audio))


class VGGBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.MaxPool2d(2))


class PooledClassifier(nn.Module):
    def __init__(self, features: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h.mean(dim=(2, 3)))


class MelCNN(DreamableModel):
    """Log-mel front end + VGG-like blocks; dreamed in the mel domain.

    Shape: audio `[B, 44100]` -> logits `[B, N]`; stage outputs `[B, C, H, W]`.
    """

    def __init__(self, name: str, classes: Sequence[str], description: str = "",
                 trained: bool = False, default_layer: str = "block3"):
        super().__init__()
        self.frontend = LogMel()
        stages: dict[str, nn.Module] = {}
        specs, cin = [], 1
        for i, cout in enumerate(CHANNELS, start=1):
            stages[f"block{i}"] = VGGBlock(cin, cout)
            specs.append(LayerSpec(f"block{i}", "Conv2d", cout, HOP * 2 ** i))
            cin = cout
        stages["logits"] = PooledClassifier(cin, len(classes))
        specs.append(LayerSpec("logits", "Linear", len(classes), WINDOW))
        self.stages = nn.ModuleDict(stages)
        self.spec = ModelSpec(
            name=name, sample_rate=SAMPLE_RATE, fixed_input_samples=WINDOW,
            layers=tuple(specs), classes=tuple(classes), default_layer=default_layer,
            description=description or "mel-spectrogram CNN (VGG-like), dreamed on its log-mel",
            trained=trained, domain="mel", logits_layer="logits")

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        return self.frontend(audio)

    def log_probs(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.forward(audio), dim=-1)


def melcnn(name: str = "melcnn", classes: Sequence[str] = (), **kwargs) -> MelCNN:
    """The registered architecture name for `audiodream train --arch melcnn`."""
    return MelCNN(name, classes, **kwargs)
