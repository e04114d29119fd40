"""Objectives: what the gradient ascent maximises (SPEC §2.2).

Every objective returns one value per batch item `[B]`, so items (windows,
channels) stay independent: the gradient of the summed objective with respect
to one window depends on that window only.

    activation: sum_l w_l * mean(a_l[:, channels] ** 2)   (MSE against zero, seed 003)
    mean:       sum_l w_l * mean(a_l[:, channels])        (seed 002 whole-layer mode)
    class:      +/- (sum_i w_i z_i - [exclusive] (sum_i w_i) log sum_{j not chosen} exp z_j)
                z = the output's logits, averaged over frames  (seed 000, DreamSound);
                the log-sum-exp is a soft maximum of the other classes: its
                gradient pushes down whichever of them is strongest, so tags
                that co-occur with the chosen one are held back too (a plain
                mean of the others let "opera" rise as fast as "choir")
                auto_class: the chosen class is argmax z, re-chosen every step
    target_features: -sum_l w_l * mean((a_l - t_l) ** 2)  (toward a target's activations)
    style:      -sum_l w_l * mean((G(a_l) - G(t_l)) ** 2)
                - c * sum_l w_l * mean((a_l - o_l) ** 2)   (Gatys; Ulyanov for audio)

with t_l, o_l the activations of the target and of the original sound, and the
Gram matrix of feature correlations over time, for `[C, F]` activations,

    G(a) = a a^T / F            `[C, C]`

which keeps which feature maps fire together (timbre) and drops when (content).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import torch

if TYPE_CHECKING:  # params.py validates names against the registry below
    from .params import DreamParams, LayerSelection


@dataclass
class References:
    """Activations the objective compares against, computed without gradients."""

    target: dict[str, torch.Tensor] | None = None
    original: dict[str, torch.Tensor] | None = None


NEEDS_TARGET_ACTS = ("target_features", "style")


def needs_original(params: DreamParams) -> bool:
    return params.objective == "style" and params.content_weight > 0


def layers_needed(params: DreamParams, logits_layer: str) -> list[str]:
    if params.objective == "class":
        return [params.class_output or logits_layer]
    return [sel.name for sel in params.layers]


def _as_frames(act: torch.Tensor) -> torch.Tensor:
    """`[B, C, F]`: logits `[B, N]` become one frame, 2-D maps `[B, C, H, W]` H*W frames."""
    if act.dim() == 2:
        return act.unsqueeze(-1)
    return act.flatten(2) if act.dim() > 3 else act


def _selected(act: torch.Tensor, sel: LayerSelection) -> torch.Tensor:
    return _select_maps(act, sel).flatten(1)


def layer_objective(acts: dict[str, torch.Tensor], layers: Sequence[LayerSelection],
                    squared: bool) -> torch.Tensor:
    total = 0.0
    for sel in layers:
        values = _selected(acts[sel.name], sel)
        total = total + sel.weight * (values.pow(2) if squared else values).mean(dim=1)
    return total


def gram(act: torch.Tensor) -> torch.Tensor:
    """`[B, C, F]` -> `[B, C, C]` feature correlations, averaged over frames."""
    return act @ act.transpose(1, 2) / act.shape[-1]


def _distance(acts, refs, layers, transform) -> torch.Tensor:
    total = 0.0
    for sel in layers:
        a = transform(_select_maps(acts[sel.name], sel))
        r = transform(_select_maps(refs[sel.name], sel))
        total = total + sel.weight * (a - r).pow(2).flatten(1).mean(dim=1)
    return total


def _select_maps(act: torch.Tensor, sel: LayerSelection) -> torch.Tensor:
    act = _as_frames(act)
    return act[:, list(sel.channels)] if sel.channels else act


def _activation(acts, params, logits_layer, refs):
    return layer_objective(acts, params.layers, squared=True)


def _mean(acts, params, logits_layer, refs):
    return layer_objective(acts, params.layers, squared=False)


def _class(acts, params, logits_layer, refs):
    value = class_objective(_as_frames(acts[params.class_output or logits_layer]).mean(-1),
                            params)
    return -value if params.negate else value


def _target_features(acts, params, logits_layer, refs):
    return -_distance(acts, refs.target, params.layers, lambda a: a)


def _style(acts, params, logits_layer, refs):
    value = -_distance(acts, refs.target, params.layers, gram)
    if needs_original(params):
        value = value - params.content_weight * _distance(
            acts, refs.original, params.layers, lambda a: a)
    return value


# (activations, resolved params, logits layer, references) -> per-item value `[B]`.
Objective = Callable[[dict, "DreamParams", str, "References | None"], torch.Tensor]
# The objectives by name: the names `objective` accepts are this registry's keys.
OBJECTIVES: dict[str, Objective] = {
    "activation": _activation, "mean": _mean, "class": _class,
    "target_features": _target_features, "style": _style,
}


def objective(acts: dict[str, torch.Tensor], params: DreamParams, logits_layer: str,
              refs: References | None = None) -> torch.Tensor:
    """Per-item objective `[B]` for resolved `params` (higher is better)."""
    try:
        chosen = OBJECTIVES[params.objective]
    except KeyError:
        raise ValueError(f"unknown objective {params.objective!r}") from None
    return chosen(acts, params, logits_layer, refs)


def class_objective(logits: torch.Tensor, params: DreamParams) -> torch.Tensor:
    """`[B, N]` logits (frame means) -> `[B]`: the weighted chosen classes, minus
    (with `exclusive`) a soft maximum of the rest; see the module docstring."""
    if params.classes:
        index = torch.tensor([t.index for t in params.classes], device=logits.device)
        weight = torch.tensor([t.weight for t in params.classes], device=logits.device,
                              dtype=logits.dtype)
        chosen = torch.zeros_like(logits, dtype=torch.bool)
        chosen[:, index] = True
        value = (logits[:, index] * weight).sum(dim=1)
        total = weight.sum()
    else:  # auto_class: what the model hears most now
        top = logits.detach().argmax(dim=1, keepdim=True)
        chosen = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True)
        value = logits.gather(1, top)[:, 0]
        total = 1.0
    if params.exclusive:
        rest = logits.masked_fill(chosen, float("-inf")).logsumexp(dim=1)
        value = value - total * rest
    return value
