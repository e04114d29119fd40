"""Objectives: what the gradient ascent maximises (SPEC §2.2).

Every objective returns one value per batch item `[B]`, so items (windows,
channels) stay independent: the gradient of the summed objective with respect
to one window depends on that window only.

    activation: sum_l w_l * mean(a_l[:, channels] ** 2)   (MSE against zero, seed 003)
    mean:       sum_l w_l * mean(a_l[:, channels])        (seed 002 whole-layer mode)
    class:      +/- logit[class]                           (seed 000, DreamSound)
"""

from __future__ import annotations

from typing import Sequence

import torch

from .params import DreamParams, LayerSelection


def layers_needed(params: DreamParams, logits_layer: str) -> list[str]:
    if params.objective == "class":
        return [logits_layer]
    return [sel.name for sel in params.layers]


def _as_frames(act: torch.Tensor) -> torch.Tensor:
    """Logits `[B, N]` are treated as one frame `[B, N, 1]`."""
    return act.unsqueeze(-1) if act.dim() == 2 else act


def _selected(act: torch.Tensor, sel: LayerSelection) -> torch.Tensor:
    act = _as_frames(act)
    if sel.channels:
        act = act[:, list(sel.channels)]
    return act.flatten(1)


def layer_objective(acts: dict[str, torch.Tensor], layers: Sequence[LayerSelection],
                    squared: bool) -> torch.Tensor:
    total = 0.0
    for sel in layers:
        values = _selected(acts[sel.name], sel)
        total = total + sel.weight * (values.pow(2) if squared else values).mean(dim=1)
    return total


def objective(acts: dict[str, torch.Tensor], params: DreamParams,
              logits_layer: str) -> torch.Tensor:
    """Per-item objective `[B]` for resolved `params`."""
    if params.objective == "activation":
        return layer_objective(acts, params.layers, squared=True)
    if params.objective == "mean":
        return layer_objective(acts, params.layers, squared=False)
    if params.objective == "class":
        logit = _as_frames(acts[logits_layer])[:, params.class_index].mean(dim=-1)
        return -logit if params.negate else logit
    raise ValueError(f"unknown objective {params.objective!r}")
