"""The signal a dream starts from (`init`).

"input" starts from the sound itself (the DeepDream default); the others start
from a synthetic signal and let the network grow sound from it, as Bisig &
Wegner's real-time experiment did from white noise. All randomness comes from
the request's generator, so a seed fixes the result.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def _input(original, sample_rate, gain, frequency_hz, generator):
    return original.clone()


def _silence(original, sample_rate, gain, frequency_hz, generator):
    return torch.zeros_like(original)


def _sine(original, sample_rate, gain, frequency_hz, generator):
    t = torch.arange(original.shape[-1], dtype=torch.float64) / sample_rate
    wave = torch.sin(2 * math.pi * frequency_hz * t).float().expand(original.shape)
    return (gain * wave).contiguous().to(original.device)


def _white(original, sample_rate, gain, frequency_hz, generator):
    return _peak_scaled(torch.randn(original.shape, generator=generator), gain, original)


def _pink(original, sample_rate, gain, frequency_hz, generator):
    # 1/f power: scale each bin's amplitude by 1/sqrt(f), leave DC out.
    noise = torch.randn(original.shape, generator=generator)
    spectrum = torch.fft.rfft(noise, dim=-1)
    f = torch.arange(spectrum.shape[-1], dtype=torch.float32)
    spectrum = spectrum / f.clamp_min(1.0).sqrt()
    spectrum[..., 0] = 0
    noise = torch.fft.irfft(spectrum, n=original.shape[-1], dim=-1)
    return _peak_scaled(noise, gain, original)


def _peak_scaled(noise: torch.Tensor, gain: float, original: torch.Tensor) -> torch.Tensor:
    noise = noise / noise.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    return (gain * noise).to(original.device)


# The starts by name, each (original, rate, gain, frequency, generator) -> `[C, T]`:
# the names `init` accepts are this registry's keys.
INITS: dict[str, Callable[..., torch.Tensor]] = {
    "input": _input, "white": _white, "pink": _pink, "sine": _sine, "silence": _silence,
}


def initial_signal(kind: str, original: torch.Tensor, sample_rate: int, gain: float,
                   frequency_hz: float, generator: torch.Generator) -> torch.Tensor:
    """Returns `[C, T]` on `original`'s device.

    Args:
        kind: a key of `INITS`: "input", "white", "pink", "sine" or "silence".
        original: the input at the model rate, `[C, T]`.
        gain: peak amplitude of a synthetic init (0..1).
        frequency_hz: sine frequency.
        generator: CPU generator (CPU draws keep results device-independent).
    """
    try:
        start = INITS[kind]
    except KeyError:
        raise ValueError(f"unknown init {kind!r}") from None
    return start(original, sample_rate, gain, frequency_hz, generator)
