"""Gradient normalisation: makes the step size independent of the gradient's scale.

Each window's gradient g `[T]` is divided by one number, so `step_size` means the
same thing at every layer and for every model:

    std:      g / std(g)          (per-sample spread of the update = step)
    l2:       g / (||g||_2 / sqrt(T))   (RMS of the update = step)
    mean_abs: g / mean(|g|)       (as the TensorFlow DeepDream tutorial)
"""

from __future__ import annotations

import math

import torch

EPS = 1e-12


def normalise(grad: torch.Tensor, mode: str) -> torch.Tensor:
    """Normalises each row of `[B, T]`; an all-zero row stays zero."""
    length = grad.shape[-1]
    if mode == "std":
        # The centred L2 norm: the same number as Tensor.std, at a fraction of
        # its cost on long rows.
        centred = grad - grad.mean(dim=-1, keepdim=True)
        scale = torch.linalg.vector_norm(centred, dim=-1, keepdim=True) / math.sqrt(
            max(length - 1, 1))
    elif mode == "l2":
        scale = torch.linalg.vector_norm(grad, dim=-1, keepdim=True) / math.sqrt(length)
    elif mode == "mean_abs":
        scale = grad.abs().mean(dim=-1, keepdim=True)
    else:
        raise ValueError(f"unknown gradient normalisation {mode!r}")
    return grad / (scale + EPS)
