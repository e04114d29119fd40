"""Dreaming in the log-mel domain (Auditory DeepDreamer, seed 002 §3.7).

For models whose input is a log-mel spectrogram made by their own front end,
the log-mel L of each window is the optimised variable:

    S  = STFT(x);  L0 = log(W |S|^2 + eps);  L = L0
    repeat: g = d objective(model(L)) / d L;  L = L + step * g / norm(g)
            (optionally L = L + m (L0 - L), the pull toward the original)
            L = L0 + clamp(L - L0, +-12 dB)   each band's gain is bounded

and the sound comes back through the change of L, as a gain on the original
spectrum, so nothing the mel bands cannot see is lost (and a low-pass applies to
the change x' - x only):

    G = exp(L - L0)                      power gain per mel band and frame
    A = sqrt(W^T-weighted mean of G)     amplitude gain per STFT bin
    phase "original":   x' = ISTFT(A * S)
    phase "griffinlim": x' = ISTFT(Griffin-Lim(|A * S|, gl_iters)), started
                        from a seeded random phase (the original's is dropped)

With 0 iterations the window is returned untouched; with a step of 0 and the
original phase, x' = ISTFT(STFT(x)) = x up to float rounding. Single-filter
mode is a layer with one feature map selected (`block3:5`); whole-layer mode is
all of them, e.g. with the `mean` objective.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..models.registry import LoadedModel
from .gradients import normalise
from .lowpass import lowpass
from .objectives import NEEDS_TARGET_ACTS, References, layers_needed, needs_original, objective
from .params import DreamParams

Report = Callable[[int, torch.Tensor], None]
MAX_GAIN_DB = 12.0
MAX_LOG_GAIN = MAX_GAIN_DB / 10.0 * math.log(10.0)  # in the natural-log power units of L


def griffin_lim(magnitude: torch.Tensor, frontend, length: int, iterations: int,
                generator: torch.Generator) -> torch.Tensor:
    """A complex spectrum with `magnitude` `[B, bins, F]` and a consistent phase."""
    phase = torch.rand(magnitude.shape, generator=generator) * 2 * torch.pi
    spectrum = magnitude * torch.polar(torch.ones_like(phase), phase).to(magnitude.device)
    return refine_phase(spectrum, magnitude, frontend, length, iterations)


def refine_phase(spectrum: torch.Tensor, magnitude: torch.Tensor, frontend, length: int,
                 iterations: int, check: Callable[[], None] | None = None) -> torch.Tensor:
    """Griffin-Lim iterations from `spectrum`'s phase, keeping `magnitude`. `check`
    runs before each one (it raises to stop: a caller that left)."""
    for _ in range(iterations):
        if check is not None:
            check()
        signal = torch.istft(spectrum, frontend.n_fft, frontend.hop, window=frontend.window,
                             center=True, length=length)
        rebuilt = frontend.spectrum(signal)
        spectrum = magnitude * rebuilt / rebuilt.abs().clamp_min(1e-12)
    return spectrum


def dream_batch(model: LoadedModel, x: torch.Tensor, params: DreamParams,
                shifts: torch.Tensor | None, target: torch.Tensor | None,
                generator: torch.Generator, report: Report) -> torch.Tensor:
    """Dreams waveforms `[b, T]` through their log-mel; returns the new waveforms."""
    if params.iterations == 0:  # nothing dreamed: not even the STFT round trip
        return x.clone()
    module = model.module
    frontend = module.frontend
    logits = model.spec.logits_layer
    names = layers_needed(params, logits)
    length = x.shape[-1]
    with torch.no_grad():
        spectrum = frontend.spectrum(x)
        original = frontend.from_spectrum(spectrum)
        refs = None
        if params.objective in NEEDS_TARGET_ACTS:
            refs = References(
                target=module.stage_features(frontend(target), names),
                original=module.stage_features(original, names) if needs_original(params)
                else None)
    mel = original.clone()
    for i in range(params.iterations):
        with torch.enable_grad():
            variable = mel.detach().requires_grad_(True)
            seen = variable
            if shifts is not None:  # jitter in whole frames: samples / hop
                seen = _roll_frames(variable, shifts[i] // frontend.hop)
            value = objective(module.stage_features(seen, names), params, logits, refs)
            (grad,) = torch.autograd.grad(value.sum(), variable)
        step = normalise(grad.flatten(1), params.grad_norm).view_as(grad)
        with torch.no_grad():
            mel = mel + params.step_size * step
            if params.mix_original:
                mel = mel + params.mix_original * (original - mel)
            # A band may be boosted or cut by MAX_GAIN_DB at most: beyond that the
            # dream gates the music away instead of colouring it.
            mel = original + (mel - original).clamp(-MAX_LOG_GAIN, MAX_LOG_GAIN)
        report(i, value.detach())
    with torch.no_grad():
        gain = frontend.linear_gain(torch.exp(mel - original)[:, 0])
        if params.phase == "original":
            dreamed = spectrum * gain
        else:
            dreamed = griffin_lim(spectrum.abs() * gain, frontend, length, params.gl_iters,
                                  generator)
        out = torch.istft(dreamed, frontend.n_fft, frontend.hop, window=frontend.window,
                          center=True, length=length)
        # Only the change is low-passed (and high-passed by the pipeline, over the
        # whole sound); the result is bounded by the pipeline.
        return x + lowpass(out - x, model.spec.sample_rate, params.lowpass_hz)


def _roll_frames(mel: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Circularly shifts each item's frames `[B, 1, M, F]` by its own amount."""
    frames = mel.shape[-1]
    index = (torch.arange(frames, device=mel.device)[None, :] - shift[:, None]) % frames
    return mel.gather(-1, index[:, None, None, :].expand_as(mel))
