"""The signal a dream starts from (`init`).

"input" starts from the sound itself (the DeepDream default); the others start
from a synthetic signal and let the network grow sound from it, as Bisig &
Wegner's real-time experiment did from white noise. All randomness comes from
the request's generator, so a seed fixes the result.
"""

from __future__ import annotations

import math

import torch


def initial_signal(kind: str, original: torch.Tensor, sample_rate: int, gain: float,
                   frequency_hz: float, generator: torch.Generator) -> torch.Tensor:
    """Returns `[C, T]` on `original`'s device.

    Args:
        kind: "input", "white", "pink", "sine" or "silence".
        original: the input at the model rate, `[C, T]`.
        gain: peak amplitude of a synthetic init (0..1).
        frequency_hz: sine frequency.
        generator: CPU generator (CPU draws keep results device-independent).
    """
    shape = original.shape
    if kind == "input":
        return original.clone()
    if kind == "silence":
        return torch.zeros_like(original)
    if kind == "sine":
        t = torch.arange(shape[-1], dtype=torch.float64) / sample_rate
        wave = torch.sin(2 * math.pi * frequency_hz * t).float().expand(shape)
        return (gain * wave).contiguous().to(original.device)
    noise = torch.randn(shape, generator=generator)
    if kind == "pink":
        # 1/f power: scale each bin's amplitude by 1/sqrt(f), leave DC out.
        spectrum = torch.fft.rfft(noise, dim=-1)
        f = torch.arange(spectrum.shape[-1], dtype=torch.float32)
        spectrum = spectrum / f.clamp_min(1.0).sqrt()
        spectrum[..., 0] = 0
        noise = torch.fft.irfft(spectrum, n=shape[-1], dim=-1)
    elif kind != "white":
        raise ValueError(f"unknown init {kind!r}")
    noise = noise / noise.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    return (gain * noise).to(original.device)
