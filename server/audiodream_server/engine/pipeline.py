"""The dream pipeline (SPEC §2.1): audio in, dreamed audio out.

1. validate the request; resample the input to the model rate
2. start from the input or a synthetic signal (`init`)
3. fixed-length models: cut into overlapping windows; every window of every
   channel is one item of one batch (chunks of `max_batch` items)
4. `iterations` gradient-ascent steps on every item (`ascent.step`: jitter,
   gradient, smoothing, normalisation, shaping, update, low-pass and pull-back
   of the change). With `octaves` > 1 this runs at successively longer time
   scales: the sound is shortened by octave_scale^k (the model hears it faster
   and higher), dreamed, and the change it gained ("detail") is stretched to
   the next scale and re-injected, coarsest first, as image DeepDream does with
   its pyramid. Each octave takes step_size / octaves, so more octaves spread
   the same amount of change over more scales (more detail, not more noise).
5. join the windows' changes with raised-cosine crossfades, resample the change
   back to the input rate and add it to the untouched input:

       out = input + mix * resample(dreamed - start)           (init = input)
       out = (1 - mix) * input + mix * resample(dreamed)       (other inits)
       out = mix * resample(dreamed - start)                   (output "change")

   Only the change passes through the resamplers, so 0 iterations return the
   input bit for bit and content above the model's Nyquist is kept.
6. bring the output to its level with one gain (`loudness.py`: the input's
   loudness by default, then the peak bound `ceiling_db`; the gain is reported):
   the one place the result is scaled and bounded.
7. class objectives: score the targeted classes in the input and in the
   output (`classify`), so the caller can say how much they rose. With
   `auto_class` "input" the class is chosen before step 2, as the one the
   model hears most in the input.

The engine knows nothing of gRPC: it raises `audiodream_server.errors` types.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Callable

import numpy as np
import torch

from ..errors import Cancelled, InvalidArgument, OutOfRange, ResourceExhausted
from ..models.registry import LoadedModel
from . import audio as audio_io
from . import melspace, windows
from .ascent import ABSOLUTE, Group, references, step
from .classify import ClassChange, class_changes, class_scores
from .features import Features, features
from .initial import initial_signal
from .loudness import apply_loudness
from .lowpass import highpass
from .params import ClassTarget, DreamParams, Limits, DEFAULT_LIMITS
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
        audio: `[C, T]`, same shape and rate as the input, peak <= the ceiling.
        loss: objective per iteration (per octave, coarsest first), mean over items.
        output_gain: the one gain applied (loudness and peak bound; 1.0 = none).
        windows: model windows per channel.
        params: the parameters in force, defaults filled in.
        class_changes: class objectives: each targeted class's score in the
            input and the output (0..1); `others_before` / `others_after`: the
            mean score of every other class.
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
    class_changes: tuple[ClassChange, ...] = ()
    others_before: float = 0.0
    others_after: float = 0.0


ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], bool]


def dream(audio: np.ndarray, sample_rate: int, model: LoadedModel, params: DreamParams, *,
          target: np.ndarray | None = None, target_rate: int = 0,
          limits: Limits = DEFAULT_LIMITS, max_batch: int = 32,
          progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> DreamResult:
    """Dreams `audio` `[C, T]` at `sample_rate` Hz with `model`.

    Args:
        target: a target sound `[Ct, Tt]` at `target_rate` Hz, for the objectives
            and updates that use one (looped or trimmed to the input's length).
        max_batch: largest number of windows in one forward/backward (memory bound).
        progress: called after every step.
        should_stop: polled before every step; True raises `Cancelled`.
    """
    t_start = time.perf_counter()
    params = params.validate(limits).resolve(model.spec)
    audio_io.validate(audio, sample_rate, limits)
    if params.needs_target() and target is None:
        raise InvalidArgument(f"objective {params.objective!r} with update {params.update!r} "
                              "needs a target sound")
    spec, device = model.spec, model.device
    rate = spec.sample_rate
    if params.objective == "class" and params.auto_class == "input" and not params.classes:
        index, name, _ = class_scores(model, audio, sample_rate, params.class_output).top(1)[0]
        params = replace(params, classes=(ClassTarget(name, index),), class_index=index)
    generator = torch.Generator().manual_seed(params.seed)

    original = _tensor(resample(audio, sample_rate, rate), device)
    channels, length = original.shape
    start = initial_signal(params.init, original, rate, params.init_gain,
                           params.init_frequency_hz, generator)
    target_m = None
    if target is not None:
        audio_io.validate(target, target_rate, limits, "target")
        target_m = _tensor(match_target(target, target_rate, channels, length, rate), device)
    lengths = [_octave_length(length, params.octave_scale ** k)
               for k in reversed(range(params.octaves))]
    octave_params = replace(params, step_size=params.step_size / params.octaves)
    ascent = _Ascent(model, octave_params, max_batch, generator, progress, should_stop, lengths,
                     channels)
    prepare_seconds = time.perf_counter() - t_start

    t_dream = time.perf_counter()
    detail = torch.zeros_like(start)
    try:
        for octave_length in lengths:
            base = _rescale(start, octave_length)
            detail = _rescale(detail, octave_length)
            reference = ABSOLUTE if params.init == "silence" else _rescale(
                original if params.init == "input" else start, octave_length)
            detail = detail + ascent.run(base + detail, _rescale(original, octave_length),
                                         _rescale(target_m, octave_length), reference)
    except torch.cuda.OutOfMemoryError as exc:
        raise ResourceExhausted("out of GPU memory; send shorter audio or fewer channels") from exc
    change = detail

    if params.output == "change" or params.init == "input":
        back = np.float32(params.mix) * resample(change.cpu().numpy(), rate, sample_rate,
                                                 audio.shape[1])
        out = back if params.output == "change" else audio + back
    else:
        wet = resample((start + change).cpu().numpy(), rate, sample_rate, audio.shape[1])
        out = np.float32(1 - params.mix) * audio + np.float32(params.mix) * wet
    peak = float(np.abs(out).max())
    if not math.isfinite(peak):  # the one bound also catches a dream that diverged
        raise OutOfRange("the dream diverged (NaN or infinite samples); try a smaller "
                         "step_size, fewer iterations or longer audio")
    # The change alone has no level of the input's to keep: it is only bounded.
    mode = "off" if params.output == "change" else params.loudness
    out, gain = apply_loudness(out, audio, mode, params.ceiling_db)
    dream_seconds = time.perf_counter() - t_dream
    changes, others = (), (0.0, 0.0)
    if params.objective == "class":
        indices = [t.index for t in params.classes] or [
            class_scores(model, out, sample_rate, params.class_output).top(1)[0][0]]
        found, *others = class_changes(model, audio, out, sample_rate, params.class_output,
                                       list(dict.fromkeys(indices)))
        changes = tuple(found)
    return DreamResult(
        audio=out.astype(np.float32, copy=False), sample_rate=sample_rate, loss=ascent.losses,
        input_features=features(audio, sample_rate), output_features=features(out, sample_rate),
        output_gain=gain, windows=ascent.windows, params=params,
        prepare_seconds=prepare_seconds, dream_seconds=dream_seconds,
        class_changes=changes, others_before=others[0], others_after=others[1])


class _Ascent:
    """Runs the iterations over one signal's windows, batch by batch; keeps the losses."""

    def __init__(self, model: LoadedModel, params: DreamParams, max_batch: int,
                 generator: torch.Generator, progress: ProgressFn | None,
                 should_stop: StopFn | None, lengths: list[int], channels: int):
        self.model, self.params, self.max_batch = model, params, max_batch
        self.generator, self.progress, self.should_stop = generator, progress, should_stop
        self.window = model.spec.fixed_input_samples
        self.overlap = round(self.window * params.window_overlap) if self.window else 0
        self.losses: list[float] = []
        self.windows = 1
        self.done = 0
        self.steps = sum(params.iterations * math.ceil(channels * self._count(n) / max_batch)
                         for n in lengths)

    def _count(self, length: int) -> int:
        """Windows per channel for a signal of `length` samples."""
        return windows.plan(length, self.window, self.overlap)[0] if self.window else 1

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("the dream was cancelled by the caller")

    def _waveform(self, x: torch.Tensor, x0: torch.Tensor, shifts: torch.Tensor | None,
                  target: torch.Tensor | None, reference, chunks: list[slice], report,
                  channels: int) -> torch.Tensor:
        """All iterations over all windows `[C * n, W]`, chunk by chunk within a step.

        After every step the windows agree again where they overlap (each
        overlap becomes the crossfade of the two windows there, `windows.agree`).
        The sound is one signal seen through overlapping windows, not n dreams
        glued together, so joins carry the same change as mid-window. The
        high-pass (`highpass_hz`) is left to `run`, which filters the whole change.
        """
        p = replace(self.params, highpass_hz=0.0)

        def part(t, s):
            return t if t is None or isinstance(t, str) else t[s]

        # Unshifted, the target's activations are the same at every iteration.
        refs = [None if shifts is not None else references(
            self.model, Group(x[s], x0[s], p, 0, p.iterations, None, part(target, s)))
            for s in chunks]
        x = x.clone()
        # One group per chunk for the whole ascent: its guide is computed once.
        groups = [Group(x[s], x0[s], p, 0, p.iterations, None, part(target, s), r,
                        part(reference, s)) for s, r in zip(chunks, refs, strict=True)]
        for i in range(p.iterations):
            for s, group in zip(chunks, groups, strict=True):
                group.x, group.iteration = x[s], i
                group.shift = shifts[i, s].to(x.device) if shifts is not None else None
                ((x[s], value),) = step(self.model, [group])
                report(i, value)
            if self.window and self.windows > 1:
                windows.agree(x, channels, self.overlap)
        return x

    def run(self, start: torch.Tensor, original: torch.Tensor, target: torch.Tensor | None,
            reference: torch.Tensor | str) -> torch.Tensor:
        """Dreams `start` `[C, T]`; returns the change it gained, `[C, T]`.

        `reference` `[C, T]` is what the steps follow (`shaping`), or ABSOLUTE.
        """
        p, model = self.params, self.model
        channels, length = start.shape
        split = (lambda s: windows.split(s, self.window, self.overlap)) if self.window \
            else (lambda s: s)
        x_start, x0 = split(start), split(original)
        x_target = split(target) if target is not None else None
        x_ref = reference if isinstance(reference, str) else split(reference)
        self.windows = self._count(length)
        items = x_start.shape[0]
        shifts = None
        if p.time_jitter and p.iterations:
            j = p.time_jitter
            shifts = torch.randint(-j, j + 1, (p.iterations, items), generator=self.generator)
        dreamed = torch.empty_like(x_start)
        loss_sum = torch.zeros(p.iterations, dtype=torch.float64)

        def report(i: int, value: torch.Tensor) -> None:
            self._check_stop()
            loss_sum[i] += value.double().sum().cpu()
            self.done += 1
            if self.progress is not None:
                self.progress(Progress(self.done, self.steps, float(value.mean())))

        chunks = [slice(first, min(first + self.max_batch, items))
                  for first in range(0, items, self.max_batch)]
        if model.spec.domain == "mel":
            for part in chunks:
                dreamed[part] = melspace.dream_batch(
                    model, x_start[part], p, shifts[:, part] if shifts is not None else None,
                    x_target[part] if x_target is not None else None, self.generator, report)
        else:
            dreamed = self._waveform(x_start, x0, shifts, x_target, x_ref, chunks, report,
                                     channels)
        self.losses.extend((loss_sum / items).tolist())
        change = dreamed - x_start
        if self.window:
            change = windows.overlap_add(change, channels, length, self.overlap)
        # The high-pass, once over the whole sound: filtered at every step
        # instead, the dream's audible change grew 3 dB louder at the window joins
        # (sound bench, pink noise), for the same sound elsewhere.
        change = highpass(change, model.spec.sample_rate, p.highpass_hz)
        return change


def match_target(target: np.ndarray, target_rate: int, channels: int, length: int,
                 rate: int) -> np.ndarray:
    """The target at `rate`, with `channels` channels and `length` samples.

    Channels: kept if they match, a mono target is copied to every channel,
    otherwise its mean is. Length: a shorter target is looped, a longer one trimmed.
    """
    at_rate = resample(target, target_rate, rate)
    if at_rate.shape[0] != channels:
        at_rate = np.repeat(at_rate.mean(axis=0, keepdims=True), channels, axis=0)
    repeats = -(-length // at_rate.shape[1])
    return np.ascontiguousarray(np.tile(at_rate, (1, repeats))[:, :length], dtype=np.float32)


def _tensor(samples: np.ndarray, device) -> torch.Tensor:
    # PCM from the wire is a read-only view; torch wants its own writable copy.
    return torch.from_numpy(samples if samples.flags.writeable else samples.copy()).to(device)


def _octave_length(length: int, factor: float) -> int:
    return max(1, round(length * _ratio(factor)))


def _ratio(factor: float) -> Fraction:
    """1 / factor as a small fraction, so the polyphase resampler stays cheap."""
    return Fraction(1.0 / factor).limit_denominator(32)


def _rescale(signal: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """Stretches `[C, T]` to `length` samples (band-limited); identity if already there."""
    if signal is None or signal.shape[-1] == length:
        return signal
    ratio = Fraction(length, signal.shape[-1]).limit_denominator(64)
    out = resample(signal.cpu().numpy(), ratio.denominator, ratio.numerator, length)
    return torch.from_numpy(out).to(signal.device)
