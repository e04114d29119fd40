"""One live stream's state: the DSP around the ascent (SPEC §4.2).

Frames are at the client rate; the model sees windows of W samples at its own
rate. With block B, context window L and delay D (B <= D <= L - B):

process mode (dream the incoming audio)
    Each block shifts into the context (the last L input frames). The context,
    resampled to the model rate, is dreamed K iterations, warm-started from the
    previous block's dream shifted by one block. Output: the block that ends D
    frames before the newest input,

        out = dry + mix * ((1 - w) * c_prev + w * c_now)

    where c_now is this dream's change there, c_prev the previous dream's change
    for the same frames, and w rises from 0 to 1 over the block (raised cosine).
    Consecutive dreams differ slightly; the crossfade makes every block join
    the previous one without a step. Latency is exactly D: with no change the
    output is the input D frames late.

generate mode (free-running, Bisig & Wegner's round-robin excerpt)
    A loop of W model samples is dreamed K iterations per block with a random
    circular shift over the whole loop (so its seam moves and never settles),
    and read round-robin, one block per block, with the same crossfade. It
    starts at once, from the init signal or, with init "input", from the live
    context, and the loop is aligned with the input: loop index j always holds
    input time t0 + j (mod W), and the first block read is the one due now.
    `mix_original` pulls the loop toward the live input at every step; unless
    set, by 1 - 0.5^(B / (K W)), so the loop renews by half per cycle and
    follows what is played (0 lets it run free). The steps follow the live
    input while the loop follows it, else the loop itself (`shaping`); the loop
    is kept within +-1. `mix` blends the loop
    with the dry input.

morph mode (an autoencoder model and a target; `stream.morphing`)
    Each block the context is moved toward the target's code by
    `morph_amount` (no gradient steps); the change (morph - context) is output
    exactly as process mode's, with the same crossfade and latency.

Only changes and loops pass through the resamplers; the dry path is untouched.
The context and the change live at the model rate on one absolute grid
(`engine.gridresample`): a block resamples only its own new frames into the
model's context, the change shifts by whole model samples, and only the two
blocks of change the output needs are resampled back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..engine.ascent import ABSOLUTE, Group
from ..engine.initial import initial_signal
from ..engine.params import DreamParams
from ..engine.gridresample import GridResampler
from ..engine.pipeline import match_target
from ..engine.resample import resample
from ..models.registry import LoadedModel
from .morphing import TargetCode, morph_toward
from .settings import StreamSettings

WRAP = 64  # samples of circular padding when resampling a loop
MORPH_MARGIN = 4096  # morph mode: frames of context before the frames it outputs


@dataclass
class Job:
    """One block of ascent for one stream, run by the scheduler.

    Attributes:
        x: signals being dreamed `[C, W]`; x0: originals for `mix_original`.
        iterations: wanted; iterations_run: done (fewer when degraded).
        shifts: per-iteration, per-item circular shifts `[K, C]`, or None.
        deadline: perf_counter time by which the block must be done (inf = none).
        reference: what the steps follow (`ascent.Group.reference`; None = x0).
    """

    x: torch.Tensor
    x0: torch.Tensor
    params: DreamParams
    iterations: int
    shifts: torch.Tensor | None
    deadline: float
    target: torch.Tensor | None = None
    reference: torch.Tensor | str | None = None
    group: Group | None = None  # the ascent's view of this job, kept across iterations
    iterations_run: int = 0
    loss: list[float] = field(default_factory=list)


def window_samples(settings: StreamSettings, spec) -> int:
    """Model samples per dreamed window for resolved `settings` on a model `spec`:
    the model's own window, unless the context is shorter."""
    natural = round(spec.fixed_input_samples * settings.sample_rate / spec.sample_rate)
    if spec.fixed_input_samples and settings.window == natural:
        return spec.fixed_input_samples
    return math.ceil(settings.window * spec.sample_rate / settings.sample_rate)


def _fade(length: int) -> np.ndarray:
    """Raised-cosine ramp 0 -> 1 over `length` frames (amplitude-complementary)."""
    t = (np.arange(length) + 0.5) / length
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def _resample_loop(loop: np.ndarray, from_rate: int, to_rate: int, length: int) -> np.ndarray:
    """Resamples a circular signal `[C, T]` without edge transients."""
    if from_rate == to_rate:
        return loop
    pad = min(WRAP, loop.shape[-1])
    padded = np.concatenate([loop[:, -pad:], loop, loop[:, :pad]], axis=1)
    out = resample(padded, from_rate, to_rate)
    start = round(pad * to_rate / from_rate)
    return np.ascontiguousarray(out[:, start:start + length])


class StreamSession:
    """DSP state of one stream. Not thread-safe: one RPC thread drives it."""

    def __init__(self, settings: StreamSettings, params: DreamParams, model: LoadedModel):
        self.settings = settings
        self.params = params
        self.model = model
        self._fade = _fade(settings.block_size)
        self._clock: float | None = None
        self._blocks = 0
        self.target: torch.Tensor | None = None
        self.morph_target: TargetCode | None = None  # morph mode's summary of the target
        self.reset()

    @property
    def latency(self) -> int:
        return self.settings.delay

    @property
    def window_samples(self) -> int:
        """Model samples per dreamed window (the model's own, unless a shorter context)."""
        return window_samples(self.settings, self.model.spec)

    def reset(self) -> None:
        """Forgets everything heard and dreamed; the stream goes on from silence."""
        s, spec = self.settings, self.model.spec
        c, length, block = s.channels, s.window, s.block_size
        self._context = np.zeros((c, length), np.float32)  # the last L frames heard
        self._frames = length  # absolute index of the frame after the newest
        self._in = GridResampler(s.sample_rate, spec.sample_rate)
        self._out = GridResampler(spec.sample_rate, s.sample_rate)
        # Model samples at the end whose resampling reached past the newest frame:
        # recomputed with the next block.
        self._provisional = 0 if s.sample_rate == spec.sample_rate else \
            math.ceil(self._in.reach * self._in.up / self._in.down) + 2
        window = self.window_samples
        self._live = np.zeros((c, window), np.float32)  # the context at the model rate
        self._change = np.zeros((c, window), np.float32)  # the dream's change, model rate
        self._pending = np.zeros((c, block), np.float32)
        self._loop: torch.Tensor | None = None
        self._loop_heard: np.ndarray | None = None  # the loop at the client rate
        self._captured = 0  # frames heard since the loop started
        self._read = s.window - s.delay - s.block_size  # generate: start with the due block
        self._gain = 1.0
        self._generator = torch.Generator().manual_seed(self.params.seed)

    def set_target(self, samples: np.ndarray, rate: int) -> None:
        """A target sound `[Ct, Tt]`, looped or trimmed to one model window."""
        spec = self.model.spec
        matched = match_target(samples, rate, self.settings.channels, self.window_samples,
                               spec.sample_rate)
        self.target = torch.from_numpy(matched).to(self.model.device)
        if callable(getattr(self.model.module, "encode_mel", None)):
            self.morph_target = TargetCode(self.model, samples, rate, self.settings.channels)

    def update(self, params: DreamParams, mode: str | None = None) -> None:
        """New parameters from a Control; a new seed restarts the random sequence."""
        if params.seed != self.params.seed:
            self._generator = torch.Generator().manual_seed(params.seed)
        self.params = params
        if mode and mode != self.settings.mode:
            self.settings = replace(self.settings, mode=mode)
            self.reset()

    # -- one block ---------------------------------------------------------------------

    def begin(self, block: np.ndarray, arrival: float | None = None) -> Job | None:
        """Takes the next input block `[C, B]`; returns the ascent to run, if any."""
        s = self.settings
        arrival = time.perf_counter() if arrival is None else arrival
        # Deadline: the client's budget (its pre-roll less the way back) after
        # the later of the block's arrival and its real-time slot, so a client
        # sending ahead of time is not penalised.
        if self._clock is None:
            self._clock = arrival
        slot = self._clock + self._blocks * s.block_seconds
        deadline = math.inf if s.offline else max(arrival, slot) + s.budget_seconds
        self._blocks += 1

        self._take(block)
        if s.mode == "morph":
            self._morph_block()
            return None
        if s.mode == "process":
            return self._process_job(deadline)
        return self._generate_job(deadline)

    def finish(self, job: Job | None) -> np.ndarray:
        """Turns the dreamed job into the output block `[C, B]`."""
        if self.settings.mode in ("process", "morph"):
            out = self._process_output(job)
        else:
            out = self._generate_output(job)
        return self._bound(out)

    def _take(self, block: np.ndarray) -> None:
        """Shifts a block into the context, at both rates; the change follows."""
        b = self.settings.block_size
        self._context = np.concatenate([self._context[:, b:], block], axis=1)
        before = self._in.end(self._frames)
        self._frames += b
        end = self._in.end(self._frames)
        shift, window = end - before, self._live.shape[-1]
        fresh = min(window, shift + self._provisional)
        self._live = np.concatenate([self._live[:, shift:], np.zeros((len(block), shift),
                                                                     np.float32)], axis=1)
        self._live[:, window - fresh:] = self._in.segment(
            self._context, self._frames - self.settings.window, end - fresh, end)
        self._change = np.concatenate([self._change[:, shift:],
                                       np.zeros((len(block), shift), np.float32)], axis=1)

    def _change_heard(self, start: int, stop: int) -> np.ndarray:
        """The change at client frames `[start, stop)` relative to the context's start."""
        first = self._frames - self.settings.window
        model_start = self._in.end(self._frames) - self._change.shape[-1]
        return self._out.segment(self._change, model_start, first + start, first + stop)

    # -- process mode -------------------------------------------------------------------

    def _shifts(self, jitter: int, items: int, full_circle: bool = False) -> torch.Tensor | None:
        k = self.params.iterations
        if full_circle:
            return torch.randint(0, self.window_samples, (k, items), generator=self._generator)
        if not jitter:
            return None
        return torch.randint(-jitter, jitter + 1, (k, items), generator=self._generator)

    def _process_job(self, deadline: float) -> Job | None:
        p = self.params
        if p.iterations == 0:
            return None
        device = self.model.device
        original = self._live
        start = original + self._change
        return Job(x=torch.from_numpy(start).to(device),
                   x0=torch.from_numpy(original.copy()).to(device), params=p,
                   iterations=p.iterations,
                   shifts=self._shifts(p.time_jitter, original.shape[0]), deadline=deadline,
                   target=self.target)

    def _process_output(self, job: Job | None) -> np.ndarray:
        s = self.settings
        if job is not None and job.iterations_run:
            self._change = (job.x - job.x0).cpu().numpy()
        end = s.window - s.delay
        both = self._change_heard(end - s.block_size, end + s.block_size)
        now = both[:, :s.block_size]
        blended = self._pending + self._fade * (now - self._pending)
        self._pending = both[:, s.block_size:].copy()
        dry = self._context[:, end - s.block_size:end]
        return dry + np.float32(self.params.mix) * blended

    # -- morph mode ---------------------------------------------------------------------

    def _morph_block(self) -> None:
        """The context's newest part moved toward the target's code; its change replaces
        the last one. Only the frames the next outputs read, plus MORPH_MARGIN frames of
        context before them, are morphed (no gradient: nothing needs the whole window).
        Works on the model-rate context, so the change is heard as process mode's is."""
        p, s = self.params, self.settings
        self._change = np.zeros_like(self._live)
        if self.morph_target is None:  # no target yet (a model change drops it): pass through
            return
        rate = self.model.spec.sample_rate
        frames = min(s.window, s.delay + s.block_size + MORPH_MARGIN)
        span = min(self._live.shape[-1], math.ceil(frames * rate / s.sample_rate))
        x = torch.from_numpy(self._live[:, -span:].copy()).to(self.model.device)
        y = morph_toward(self.model, x, self.morph_target, p.morph_amount,
                         p.morph_interpolation == "spherical", p.morph_detail)
        self._change[:, -span:] = (y - x).cpu().numpy()

    # -- generate mode ------------------------------------------------------------------

    def _aligned_live(self) -> torch.Tensor:
        """The live context, rotated onto the loop: loop index j always holds input
        time t0 + j (mod W), and the block read next is the one process mode would
        output now (D frames late)."""
        s = self.settings
        live = torch.from_numpy(self._live.copy()).to(self.model.device)
        due = s.window - s.delay - s.block_size
        shift = round((self._read - due) * live.shape[-1] / s.window)
        return torch.roll(live, shift, dims=-1)

    def _pull(self) -> float:
        """Per-step pull so that the loop renews by half per loop cycle (W / B blocks)."""
        s = self.settings
        steps_per_cycle = max(1, self.params.iterations) * s.window / s.block_size
        return 1.0 - 0.5 ** (1.0 / steps_per_cycle)

    def _generate_job(self, deadline: float) -> Job | None:
        p = self.params
        live = self._aligned_live()
        self._captured += self.settings.block_size
        if self._loop is None or (p.init == "input" and self._captured <= self.settings.window):
            # With init "input", the whole first cycle: the loop is what is played,
            # dreamed from the first block on.
            self._loop = initial_signal(p.init, live, self.model.spec.sample_rate,
                                        p.init_gain, p.init_frequency_hz, self._generator)
        if p.iterations == 0:
            return None
        if p.mix_original is None:
            p = replace(p, mix_original=self._pull())
        return Job(x=self._loop, x0=live, params=p,
                   iterations=p.iterations, shifts=self._shifts(0, live.shape[0], True),
                   deadline=deadline, target=self.target,
                   reference=self._generate_reference(p))

    def _generate_reference(self, p: DreamParams):
        """What the loop's steps follow: the live input (x0) while the loop follows
        it, the loop itself when it runs free (nothing, from silence)."""
        if p.mix_original:
            return None
        return ABSOLUTE if p.init == "silence" else self._loop

    def _generate_output(self, job: Job | None) -> np.ndarray:
        s = self.settings
        end = s.window - s.delay
        dry = self._context[:, end - s.block_size:end]
        if job is not None and job.iterations_run:
            # The loop is the dream itself (no original inside it to protect): bound it.
            loop = job.x
            self._loop = loop / loop.abs().amax(dim=-1, keepdim=True).clamp_min(1.0)
            self._loop_heard = None
        if self._loop is None:
            return dry.copy()
        if self._loop_heard is None:  # resampled only when the loop changed
            self._loop_heard = _resample_loop(self._loop.cpu().numpy(),
                                              self.model.spec.sample_rate, s.sample_rate,
                                              s.window)
        loop = self._loop_heard
        index = (self._read + np.arange(2 * s.block_size)) % s.window
        now = loop[:, index[:s.block_size]]
        blended = self._pending + self._fade * (now - self._pending)
        self._pending = loop[:, index[s.block_size:]]
        self._read = (self._read + s.block_size) % s.window
        mix = np.float32(self.params.mix)
        return (1 - mix) * dry + mix * blended

    # -- bounds -------------------------------------------------------------------------

    def _bound(self, out: np.ndarray) -> np.ndarray:
        """Keeps the peak <= 1 with a gain that drops at once and recovers 10 % per block."""
        peak = float(np.abs(out).max()) if out.size else 0.0
        gain = min(1.0, self._gain * 1.1)
        if peak * gain > 1.0:
            gain = 1.0 / peak
        self._gain = gain
        return out if gain == 1.0 else out * np.float32(gain)
