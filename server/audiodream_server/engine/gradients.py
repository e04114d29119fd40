"""Gradient normalisation: makes the step size independent of the gradient's scale.

Each window's gradient g `[T]` is divided by one number, so `step_size` means the
same thing at every layer and for every model:

    std:      g / std(g)          (per-sample spread of the update = step)
    l2:       g / (||g||_2 / sqrt(T))   (RMS of the update = step)
    mean_abs: g / mean(|g|)       (as the TensorFlow DeepDream tutorial)
"""

from __future__ import annotations

import math
from typing import Callable

import torch

EPS = 1e-12


def _std(grad: torch.Tensor) -> torch.Tensor:
    # The centred L2 norm: the same number as Tensor.std, at a fraction of its
    # cost on long rows.
    centred = grad - grad.mean(dim=-1, keepdim=True)
    return torch.linalg.vector_norm(centred, dim=-1, keepdim=True) / math.sqrt(
        max(grad.shape[-1] - 1, 1))


def _l2(grad: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(grad, dim=-1, keepdim=True) / math.sqrt(grad.shape[-1])


def _mean_abs(grad: torch.Tensor) -> torch.Tensor:
    return grad.abs().mean(dim=-1, keepdim=True)


# The normalisations by name, each giving the scale `[B, 1]` of the rows `[B, T]`:
# the names `grad_norm` accepts are this registry's keys.
GRAD_NORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "std": _std, "l2": _l2, "mean_abs": _mean_abs,
}


def normalise(grad: torch.Tensor, mode: str) -> torch.Tensor:
    """Normalises each row of `[B, T]`; an all-zero row stays zero."""
    try:
        scale = GRAD_NORMS[mode]
    except KeyError:
        raise ValueError(f"unknown gradient normalisation {mode!r}") from None
    return grad / (scale(grad) + EPS)
