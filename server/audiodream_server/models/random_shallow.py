"""A wide, shallow network of random filters for audio style transfer (Ulyanov & Lebedev).

Seed 004 reports that, of the networks it compared for audio style transfer,
a single wide layer of random (untrained) filters over the log-magnitude
spectrogram gave the best results (after Ulyanov & Lebedev's "Audio texture
synthesis and style transfer"). Its Gram matrices capture which frequencies
sound together over time; the `style` objective matches them to a target's.

For a window x `[B, T]` at 44.1 kHz:

    S = |STFT(x)|            Hann, n_fft 2048, hop 512, centred -> 1025 bins x F frames
    h = log(1 + S)           `[B, 1025, F]`, the frequency bins as input channels
    a = ReLU(conv1d(h))      2048 filters, 11 frames wide (128 ms), stride 1

The weights are drawn from a normal distribution with std sqrt(2 / fan_in)
(fan_in = 1025 * 11; He et al.'s scaling keeps ReLU activations at the
input's scale), biases zero, from a fixed seed: the same seed gives the same
network everywhere. No training, no BatchNorm. The front end is inside the
model and differentiable, so it is dreamed on the waveform.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 44100
WINDOW = 44100
N_FFT, HOP = 2048, 512
FILTERS = 2048
WIDTH = 11


class LogSpectrogram(nn.Module):
    """Waveform `[B, T]` -> log(1 + |STFT|) `[B, 1025, F]`, differentiable."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(audio, N_FFT, HOP, window=self.window, center=True,
                              return_complex=True)
        # |S| with a tiny floor inside the root, so the gradient at silence is finite.
        magnitude = torch.sqrt(spectrum.real.square() + spectrum.imag.square() + 1e-12)
        return torch.log1p(magnitude)


class RandomShallow(DreamableModel):
    """One wide layer of seeded random filters on the log spectrogram."""

    def __init__(self, name: str = "random-shallow", seed: int = 0, filters: int = FILTERS):
        super().__init__()
        self.frontend = LogSpectrogram()
        conv = nn.Conv1d(N_FFT // 2 + 1, filters, WIDTH, padding=WIDTH // 2)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            std = math.sqrt(2.0 / (conv.in_channels * WIDTH))
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
            conv.bias.zero_()
        self.stages = nn.ModuleDict({"conv": nn.Sequential(conv, nn.ReLU())})
        self.spec = ModelSpec(
            name=name, sample_rate=SAMPLE_RATE, fixed_input_samples=WINDOW,
            layers=(LayerSpec("conv", "Conv1d", filters, HOP),), default_layer="conv",
            description=f"random shallow network (Ulyanov & Lebedev): {filters} random "
                        f"filters {WIDTH} frames wide on the log spectrogram, seed {seed}, "
                        "untrained; for the style objective",
            trained=False)

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        return self.frontend(audio)


def factory(seed: int = 0):
    """A registry factory for the seeded network."""
    return lambda: RandomShallow(seed=seed).eval()
