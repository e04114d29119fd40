"""One gradient-ascent step over a batch made of groups with their own parameters.

The offline pipeline passes one group (all windows of one request); the stream
scheduler passes one group per live stream, so several performers share one
forward/backward pass. For each item x of each group, with x0 its original:

    x_s = roll(x, shift)                    random circular shift (time_jitter)
    g   = d objective(model(x_s)) / d x     autograd undoes the roll
    u   = shape(g, reference, smoothing_i)  cascade smoothing; no stride lines;
                                            follows the input;
                                            level = the reference's (shaping.py),
                                            so no other normalisation is needed
    x'  = update(x, u)                      `add` or a DreamSound filter rule
    d   = (1 - m) * band(x' - x0)           only the change is filtered (low-
                                            pass; high-pass in streams: offline
                                            dreams high-pass the whole change
                                            once, pipeline.py) and
    x   = x0 + d                            pulled back (m = mix_original)

The original passes untouched: nothing in the loop scales or filters it, and
the result is bounded once, at the end of the dream (SPEC §2.1 step 5).
Items are independent (BatchNorm in eval mode, per-item objectives and
normalisation), so batching changes nothing but speed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.registry import LoadedModel
from . import shaping, updates
from .lowpass import highpass, lowpass
from .objectives import NEEDS_TARGET_ACTS, References, layers_needed, needs_original, objective
from .params import DreamParams
from .smoothing import cascade_sigma, frequency_response


@dataclass
class Group:
    """Items `[b, T]` that share parameters.

    Attributes:
        x: current signals; x0: the originals `mix_original` pulls toward.
        params: resolved parameters.
        iteration, iterations: position in the schedule (smoothing sigma grows).
        shift: per-item circular shift in samples, or None.
        target: the target sound's items `[b, T]`, when the request has one.
        refs: the target's (and original's) activations, when the caller
            computed them once for all iterations (possible without shifts).
        reference: what the update follows and takes its level from
            (`shaping.shape`); None = x0; `ABSOLUTE` = nothing (from silence).
        guide: what the reference tells every step (`shaping.guide`); `step`
            fills it on first use, so a caller that keeps the group across
            iterations computes it once.
    """

    x: torch.Tensor
    x0: torch.Tensor
    params: DreamParams
    iteration: int
    iterations: int
    shift: torch.Tensor | None = None
    target: torch.Tensor | None = None
    refs: References | None = None
    reference: torch.Tensor | str | None = None
    guide: shaping.Guide | None = None


ABSOLUTE = "absolute"


def roll(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Circularly shifts each row of `[B, T]` by its own amount, differentiably."""
    length = x.shape[-1]
    index = (torch.arange(length, device=x.device)[None, :] - shift[:, None]) % length
    return x.gather(1, index)


def step(model: LoadedModel, groups: list[Group]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Runs one step for every group in one forward/backward pass.

    Returns, per group, the new signals `[b, T]` and the objective `[b]` measured
    before the step.
    """
    logits = model.spec.logits_layer
    names = sorted({n for g in groups for n in layers_needed(g.params, logits)})
    with torch.enable_grad():
        x = torch.cat([g.x for g in groups]).detach().requires_grad_(True)
        shifts = [g.shift if g.shift is not None else torch.zeros(len(g.x), dtype=torch.long,
                                                                   device=x.device)
                  for g in groups]
        shifted = roll(x, torch.cat(shifts)) if any(g.shift is not None for g in groups) else x
        acts = model.module.features(shifted, names)
        values, start = [], 0
        for g in groups:
            part = slice(start, start + len(g.x))
            refs = g.refs if g.refs is not None else references(model, g)
            values.append(objective({n: a[part] for n, a in acts.items()}, g.params, logits,
                                    refs))
            start += len(g.x)
        (grad,) = torch.autograd.grad(torch.cat(values).sum(), x)

    results, start = [], 0
    rate = model.spec.sample_rate
    for g, value in zip(groups, values, strict=True):
        part = grad[start:start + len(g.x)]
        start += len(g.x)
        p = g.params
        sigma = cascade_sigma(p.smoothing_coefficient, g.iteration, g.iterations)
        # The smoothing is one more factor of the step's rfft filter, and there is
        # no gradient normalisation: `shaping.shape` sets the step's level from the
        # input, which makes any prior scaling of g moot.
        smooth = frequency_response(sigma, p.smoothing_kernel, part.shape[-1])
        with torch.no_grad():
            if g.guide is None:
                reference = None if isinstance(g.reference, str) else (
                    g.x0 if g.reference is None else g.reference)
                strides = tuple(model.spec.strides_up_to(layers_needed(p, logits)))
                g.guide = shaping.guide(reference, p.follow_input, part.shape[-1], rate,
                                        strides)
            part = shaping.shape(part, g.guide, smooth)
            new = updates.apply(g.x.detach(), part, g.x0, g.target, p)
            if p.lowpass_hz or p.highpass_hz or p.mix_original:
                # Only the change is filtered and pulled back.
                change = highpass(lowpass(new - g.x0, rate, p.lowpass_hz), rate,
                                  p.highpass_hz)
                if p.mix_original:
                    change = change * (1.0 - p.mix_original)
                new = g.x0 + change
        results.append((new, value.detach()))
    return results


@torch.no_grad()
def references(model: LoadedModel, g: Group) -> References | None:
    """Activations of the target (and original) under the same shift as the items."""
    p = g.params
    if p.objective not in NEEDS_TARGET_ACTS:
        return None
    names = layers_needed(p, model.spec.logits_layer)

    def acts(signal: torch.Tensor) -> dict[str, torch.Tensor]:
        shifted = roll(signal, g.shift) if g.shift is not None else signal
        return model.module.features(shifted, names)

    return References(target=acts(g.target),
                      original=acts(g.x0) if needs_original(p) else None)
