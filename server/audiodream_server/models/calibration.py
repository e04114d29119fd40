"""BatchNorm calibration for untrained networks.

A randomly initialised network with default BatchNorm statistics (mean 0, var 1)
passes audio-rate signals through layers whose real statistics are far from
those, and its deep activations can vanish (gradients ~1e-20). Running a few
seconds of varied, generated audio through it in train mode, with cumulative
averaging, gives every BatchNorm the statistics of sound, so the untrained model
responds to audio the way a trained one would in scale.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def calibration_audio(count: int, length: int, sample_rate: int, seed: int = 0) -> torch.Tensor:
    """Varied test sounds: harmonic tones, noise bursts, chirps and clicks.

    Args:
        count: number of clips.
        length: samples per clip.
        sample_rate: Hz.
        seed: every clip is a function of it.
    Returns:
        `[count, length]` float32, peak 0.1..0.9.
    """
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64) / sample_rate
    clips = []
    for i in range(count):
        kind = i % 4
        if kind == 0:  # harmonic tone with a decaying envelope
            f0 = 55.0 * 2 ** (torch.rand(1, generator=gen).item() * 5)
            x = sum(math.pow(0.6, h) * torch.sin(2 * math.pi * f0 * (h + 1) * t) for h in range(8))
            x = x * torch.exp(-t * (0.5 + 4 * torch.rand(1, generator=gen).item()))
        elif kind == 1:  # noise bursts
            x = torch.randn(length, generator=gen, dtype=torch.float64)
            gate = (torch.sin(2 * math.pi * (1 + 6 * torch.rand(1, generator=gen).item()) * t) > 0)
            x = x * gate
        elif kind == 2:  # exponential chirp
            f_start, f_end = 50.0, 50.0 * 2 ** (2 + 7 * torch.rand(1, generator=gen).item())
            k = math.log(f_end / f_start) / t[-1].item()
            x = torch.sin(2 * math.pi * f_start * (torch.exp(k * t) - 1) / k)
        else:  # clicks over a low drone
            x = 0.3 * torch.sin(2 * math.pi * 80 * t)
            x[torch.randint(0, length, (20,), generator=gen)] += 1.0
        peak = 0.1 + 0.8 * torch.rand(1, generator=gen).item()
        clips.append(x / x.abs().max().clamp_min(1e-9) * peak)
    return torch.stack(clips).float()


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, audio: torch.Tensor, batch: int = 8) -> None:
    """Replaces every BatchNorm's running statistics by those of `audio` `[N, T]`."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all calibration batches
    model.train()
    for start in range(0, audio.shape[0], batch):
        model(audio[start:start + batch])
    for m in norms:
        m.momentum = 0.1
    model.train(was_training)
