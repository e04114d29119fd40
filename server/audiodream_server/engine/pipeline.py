"""The dream pipeline (SPEC §2.1): audio in, dreamed audio out.

1. validate the request; resample the input to the model rate
2. start from the input or a synthetic signal (`init`)
3. fixed-length models: cut into overlapping windows; every window of every
   channel is one item of one batch (chunks of `max_batch` items)
4. `iterations` gradient-ascent steps on every item (`ascent.step`: jitter,
   gradient, smoothing, normalisation, update, low-pass, pull-back, bound)
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
from .ascent import Group, step
from .features import Features, features
from .initial import initial_signal
from .params import DreamParams, Limits, DEFAULT_LIMITS
from .resample import resample


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
          limits: Limits = DEFAULT_LIMITS, max_batch: int = 32,
          progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> DreamResult:
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
                group = Group(x, x0[first:last], params, i, params.iterations, shift)
                ((x, value),) = step(model, [group])
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

