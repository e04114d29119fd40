"""The dream pipeline (SPEC §2.1): audio in, dreamed audio out.

1. validate the request; resample the input to the model rate
2. start from the input or a synthetic signal (`init`)
3. fixed-length models: cut into overlapping windows; every window of every
   channel is one item of one batch (chunks of `max_batch` items)
4. per iteration i, per item x:
       x_s = roll(x, shift_i)                  random circular shift (time_jitter)
       g   = d objective(model(x_s)) / d x     the roll is undone by autograd
       g   = normalise(cascade_smooth(g, sigma_i))
       x   = x + step * g                      the `add` update
       x   = lowpass(x);  x = x + m * (x0 - x) optional, m = mix_original
       x   = x / max(1, peak(x))               bounded, never clipped
5. join the windows' changes with equal-power crossfades, resample the change
   back to the input rate and add it to the untouched input:

       out = input + mix * resample(dreamed - start)           (init = input)
       out = (1 - mix) * input + mix * resample(dreamed)       (other inits)

   Only the change passes through the resamplers, so 0 iterations return the
   input bit for bit and content above the model's Nyquist is kept.
6. peak-normalise the output if it exceeds 1 (the gain is reported).

The engine knows nothing of gRPC: it raises `audiodream_server.errors` types.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import Cancelled, ResourceExhausted
from ..models.registry import LoadedModel
from . import audio as audio_io
from . import windows
from .features import Features, features
from .gradients import normalise
from .initial import initial_signal
from .lowpass import lowpass
from .objectives import layers_needed, objective
from .params import DreamParams, Limits
from .resample import resample
from .smoothing import cascade_sigma, cascade_smooth


@dataclass(frozen=True)
class Progress:
    """Reported after each step: `step` of `steps` done (iterations x batches)."""

    step: int
    steps: int
    loss: float


@dataclass
class DreamResult:
    """A dreamed sound and what was measured on the way.

    Attributes:
        audio: `[C, T]`, same shape and rate as the input, peak <= 1.
        loss: objective per iteration, mean over items.
        output_gain: gain applied to bring the peak to <= 1 (1.0 = none).
        windows: model windows per channel.
        params: the parameters in force, defaults filled in.
    """

    audio: np.ndarray
    sample_rate: int
    loss: list[float]
    input_features: Features
    output_features: Features
    output_gain: float
    windows: int
    params: DreamParams
    prepare_seconds: float
    dream_seconds: float


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


def dream(audio: np.ndarray, sample_rate: int, model: LoadedModel, params: DreamParams, *,
          limits: Limits = Limits(), max_batch: int = 32, progress: ProgressFn | None = None,
          should_stop: StopFn | None = None) -> DreamResult:
    """Dreams `audio` `[C, T]` at `sample_rate` Hz with `model`.

    Args:
        max_batch: largest number of windows in one forward/backward (memory bound).
        progress: called after every step.
        should_stop: polled before every step; True raises `Cancelled`.
    """
    t_start = time.perf_counter()
    params = params.validate(limits).resolve(model.spec)
    audio_io.validate(audio, sample_rate, limits)
    spec, device = model.spec, model.device
    rate = spec.sample_rate
    generator = torch.Generator().manual_seed(params.seed)

    at_rate = resample(audio, sample_rate, rate)
    # PCM from the wire is a read-only view; torch wants its own writable copy.
    original = torch.from_numpy(at_rate if at_rate.flags.writeable else at_rate.copy()).to(device)
    channels, length = original.shape
    start = initial_signal(params.init, original, rate, params.init_gain,
                           params.init_frequency_hz, generator)
    window = spec.fixed_input_samples
    if window:
        overlap = round(window * params.window_overlap)
        x0 = windows.split(original, window, overlap)
        x_start = windows.split(start, window, overlap)
        count = windows.plan(length, window, overlap)[0]
    else:
        x0, x_start, count = original, start, 1
    items = x_start.shape[0]
    shifts = None
    if params.time_jitter and params.iterations:
        j = params.time_jitter
        shifts = torch.randint(-j, j + 1, (params.iterations, items), generator=generator)
    prepare_seconds = time.perf_counter() - t_start

    t_dream = time.perf_counter()
    dreamed = torch.empty_like(x_start)
    loss_sum = torch.zeros(params.iterations, dtype=torch.float64)
    names = layers_needed(params, spec.logits_layer)
    batches = range(0, items, max_batch)
    steps, done = params.iterations * len(batches), 0
    try:
        for first in batches:
            last = min(first + max_batch, items)
            x = x_start[first:last]
            for i in range(params.iterations):
                if should_stop is not None and should_stop():
                    raise Cancelled("the dream was cancelled by the caller")
                shift = shifts[i, first:last].to(device) if shifts is not None else None
                x, value = _step(model, x, x0[first:last], params, names, i, shift)
                loss_sum[i] += value.double().sum().cpu()
                done += 1
                if progress is not None:
                    progress(Progress(done, steps, float(value.mean())))
            dreamed[first:last] = x
    except torch.cuda.OutOfMemoryError as exc:
        raise ResourceExhausted("out of GPU memory; send shorter audio or fewer channels") from exc

    change = dreamed - x_start
    if window:
        change = windows.overlap_add(change, channels, length, overlap)
    if params.init == "input":
        back = resample(change.cpu().numpy(), rate, sample_rate, audio.shape[1])
        out = audio + np.float32(params.mix) * back
    else:
        wet = resample((start + change).cpu().numpy(), rate, sample_rate, audio.shape[1])
        out = np.float32(1 - params.mix) * audio + np.float32(params.mix) * wet
    peak = float(np.abs(out).max())
    gain = 1.0 / peak if peak > 1.0 else 1.0
    if gain != 1.0:
        out = out * np.float32(gain)
    dream_seconds = time.perf_counter() - t_dream
    return DreamResult(
        audio=out.astype(np.float32, copy=False), sample_rate=sample_rate,
        loss=(loss_sum / items).tolist(), input_features=features(audio, sample_rate),
        output_features=features(out, sample_rate), output_gain=gain, windows=count,
        params=params, prepare_seconds=prepare_seconds, dream_seconds=dream_seconds)


def _roll(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Circularly shifts each row of `[B, T]` by its own amount, differentiably."""
    length = x.shape[-1]
    index = (torch.arange(length, device=x.device)[None, :] - shift[:, None]) % length
    return x.gather(1, index)


def _step(model: LoadedModel, x: torch.Tensor, x0: torch.Tensor, params: DreamParams,
          names: list[str], iteration: int, shift: torch.Tensor | None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """One gradient-ascent step on `[B, T]`; returns the new signal and the objective `[B]`."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        shifted = _roll(x, shift) if shift is not None else x
        acts = model.module.features(shifted, names)
        value = objective(acts, params, model.spec.logits_layer)
        (grad,) = torch.autograd.grad(value.sum(), x)
    sigma = cascade_sigma(params.smoothing_coefficient, iteration, params.iterations)
    grad = normalise(cascade_smooth(grad, sigma, params.smoothing_kernel), params.grad_norm)
    with torch.no_grad():
        x = x.detach() + params.step_size * grad
        x = lowpass(x, model.spec.sample_rate, params.lowpass_hz)
        if params.mix_original:
            x = x + params.mix_original * (x0 - x)
        x = x / x.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)
    return x, value.detach()
