"""Cascade Gaussian gradient smoothing (Bisig & Wegner, seed 003 §3.4).

The gradient is blurred by three 1-D Gaussians of standard deviations
sigma * {0.5, 1, 2} and the three results are averaged. sigma grows over the
iterations, as in the image DeepDream code the paper builds on:

    sigma_i = coefficient * (0.5 + 2 * i / iterations)

so early steps keep fine detail and later steps favour broad changes.

The ascent applies it as a frequency response inside the step's one rfft filter
(`shaping`): for the symmetric kernel k of `size` taps centred on c,

    H(f) = k[c] + 2 * sum_{m=1..c} k[c + m] * cos(2 pi f m / T)

which is `cascade_smooth` up to how the edges are padded (circular there,
reflected here). `cascade_smooth`, the direct form, is the reference the tests
hold the response to.
"""

from __future__ import annotations

from functools import lru_cache

import torch


def cascade_sigma(coefficient: float, iteration: int, iterations: int) -> float:
    return coefficient * (0.5 + 2.0 * iteration / max(iterations, 1))


def gaussian_kernels(sigma: float, size: int, device=None) -> torch.Tensor:
    """`[3, size]` normalised Gaussians at sigma * {0.5, 1, 2}."""
    t = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    kernels = []
    for scale in (0.5, 1.0, 2.0):
        s = max(sigma * scale, 1e-6)
        k = torch.exp(-0.5 * (t / s) ** 2)
        kernels.append(k / k.sum())
    return torch.stack(kernels)


def cascade_smooth(grad: torch.Tensor, sigma: float, size: int) -> torch.Tensor:
    """Smooths `[B, T]` along time; sigma <= 0 or size 1 returns it unchanged.

    The mean of three convolutions is one convolution with the mean kernel
    (linearity), applied as a sum of `size` shifted, scaled copies: for these
    short kernels that is several times faster than conv1d with one channel.
    """
    if sigma <= 0 or size <= 1:
        return grad
    taps = gaussian_kernels(sigma, size).mean(dim=0).tolist()
    pad = size // 2
    padded = torch.nn.functional.pad(grad.unsqueeze(1), (pad, pad), mode="reflect")[:, 0]
    length = grad.shape[-1]
    out = padded[:, :length] * taps[0]
    for j in range(1, size):
        out.add_(padded[:, j:j + length], alpha=taps[j])
    return out


@lru_cache(maxsize=256)
def frequency_response(sigma: float, size: int, length: int) -> torch.Tensor | None:
    """`[length // 2 + 1]` real response of the cascade kernel on the rfft grid; None = off."""
    if sigma <= 0 or size <= 1:
        return None
    taps = gaussian_kernels(sigma, size).mean(dim=0)
    centre = (size - 1) // 2
    phase = 2 * torch.pi * torch.arange(length // 2 + 1, dtype=torch.float64) / length
    response = torch.full_like(phase, float(taps[centre]))
    for m in range(1, centre + 1):
        response += 2 * float(taps[centre + m]) * torch.cos(phase * m)
    return response.float()
