"""Cascade Gaussian gradient smoothing (Bisig & Wegner, seed 003 §3.4).

The gradient is blurred by three 1-D Gaussians of standard deviations
sigma * {0.5, 1, 2} and the three results are averaged. sigma grows over the
iterations, as in the image DeepDream code the paper builds on:

    sigma_i = coefficient * (0.5 + 2 * i / iterations)

so early steps keep fine detail and later steps favour broad changes.
"""

from __future__ import annotations

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
