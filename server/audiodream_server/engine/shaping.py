"""Where a dream's change may grow: from a normalised gradient to one step's update.

Three moves turn the normalised gradient g `[B, T]` of one step (one model
window per row) into the update u that `updates.apply` scales by `step_size`:

1. Follow the input in time. g takes the reference's local level (the
   original, or the start signal of a noise/sine init), as far as
   `follow_input` f asks:

       g = g * (E_ref / E_g) ^ min(f, 1)     E: RMS over LEVEL_SPAN samples

   so the dream grows where the sound is, carries its rhythm, leaves silence
   silent, and is not weaker near a window's edges (where receptive fields
   reach into the zero padding, which left a dip wherever windows overlap).
2. Follow the input in frequency, and take the stride lines out, in one
   filter on the rfft grid of the window:

       u = irfft(rfft(g) * (A_ref / mean A_ref) ^ f * M)

   A_ref is the reference's magnitude spectrum smoothed over SPECTRAL_SMOOTH_HZ,
   so the change has the input's timbre (its spectral envelope), not a hiss.
   M removes the lines of the strided layers: a layer of cumulative stride S
   subsamples what it hears, so a component at k * rate / S aliases to DC in
   its output, which a mean-square objective rewards at every frame at once,
   and the backward pass images the output gradient's DC onto exactly those
   frequencies. Left in, the ascent builds a comb there (the buzz: 900 Hz and
   6.3 kHz multiples at 44.1 kHz for model2). M is 0 on the bins within h of
   k * T / S, h = min(frame rate of the deepest layer / 2, rate / S / 20) (the
   ascent also feeds the bins beside a line, which alias to activations too
   slow to tell from DC), for every S whose line spacing rate / S is at least
   MIN_LINE_SPACING_HZ. A circular shift (time_jitter) moves a line's phase,
   never its frequency, so the notch holds under jitter. After the filter the
   level is matched once more, only slowly (over SLOW_SPAN): a faster
   time-varying gain would spread energy back into the notches.
3. Relative level:

       u = u * rms(ref) / rms(u)

   so `step_size` is a fraction of the input's own level, for loud and quiet
   inputs alike (without a reference, as from silence, of ABSOLUTE_LEVEL).

The cascade gradient smoothing (`smoothing.frequency_response`) rides on the
same filter. Everything about the reference is computed once per dream (or
stream block), in a `Guide`; a step costs one rfft/irfft pair and two level
envelopes on 256-sample frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

MIN_LINE_SPACING_HZ = 20.0
LEVEL_SPAN = 2048  # samples over which the local level is matched (46 ms at 44.1 kHz)
LEVEL_HOP = 256
SLOW_SPAN = 8192  # the level re-matched after the filter (186 ms: spreads +-5 Hz at most)
SPECTRAL_SMOOTH_HZ = 50.0  # width of the spectral envelope's moving average
ABSOLUTE_LEVEL = 0.05  # RMS of one unit step when there is no reference (-26 dBFS)
EPS = 1e-12


@lru_cache(maxsize=64)
def line_bins(length: int, sample_rate: int, strides: tuple[int, ...]) -> torch.Tensor:
    """rfft bins `[K]` on and beside the aliasing lines k * rate / S of each stride S."""
    bins = set()
    for s in strides:
        if sample_rate / s < MIN_LINE_SPACING_HZ:
            continue
        half = int(min(sample_rate / max(strides) / 2, sample_rate / s / 20) * length
                   / sample_rate)
        for k in range(1, s // 2 + 1):
            exact = k * length / s
            nearest = (int(exact), int(exact) + 1) if exact % 1 else (int(exact),)
            for b in nearest:
                bins.update(range(b - half, b + half + 1))
    top = length // 2
    return torch.tensor(sorted(b for b in bins if 0 < b <= top), dtype=torch.long)


@lru_cache(maxsize=64)
def line_mask(length: int, sample_rate: int, strides: tuple[int, ...]) -> torch.Tensor:
    """`[T // 2 + 1]`: 0 on `line_bins`, 1 elsewhere."""
    mask = torch.ones(length // 2 + 1)
    mask[line_bins(length, sample_rate, strides)] = 0.0
    return mask


def rms(x: torch.Tensor) -> torch.Tensor:
    """`[B, 1]` root mean square of each row."""
    return x.pow(2).mean(dim=-1, keepdim=True).sqrt()


def frame_power(x: torch.Tensor) -> torch.Tensor:
    """`[B, F]` mean power per LEVEL_HOP-sample frame of `[B, T]` (the last may be partial)."""
    batch, length = x.shape
    whole = (length // LEVEL_HOP) * LEVEL_HOP
    power = x[:, :whole].reshape(batch, -1, LEVEL_HOP).pow(2).mean(dim=-1)
    if whole < length:
        power = torch.cat([power, x[:, whole:].pow(2).mean(dim=-1, keepdim=True)], dim=1)
    return power


def level_frames(power: torch.Tensor, span_samples: int) -> torch.Tensor:
    """`[B, F]` RMS over about `span_samples` around each frame, from `frame_power`."""
    span = span_samples // LEVEL_HOP + 1
    smooth = torch.nn.functional.avg_pool1d(power.unsqueeze(1), span, stride=1,
                                            padding=span // 2, count_include_pad=False)
    return smooth[:, 0].clamp_min(0).sqrt()


def gain(wanted: torch.Tensor, level: torch.Tensor, exponent: float,
         length: int) -> torch.Tensor:
    """`[B, T]`: (wanted / level) ^ exponent per frame, interpolated linearly to samples.

    The ratio is taken on frames and only then interpolated: one full-length
    tensor per level match instead of several.
    """
    ratio = wanted / level.clamp_min(EPS)
    if exponent != 1.0:
        ratio = ratio.pow(exponent)
    return _to_samples(ratio, length)


@lru_cache(maxsize=16)
def _lerp_plan(frames: int, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each sample: the frames either side and the weight of the second.

    Frame f stands for the centre of its LEVEL_HOP samples (as interpolate with
    align_corners=False would place it); beyond the first and last centres the
    value is held.
    """
    position = ((torch.arange(length, dtype=torch.float64) + 0.5) * frames / length - 0.5)
    position = position.clamp(0, frames - 1)
    before = position.floor().long()
    after = (before + 1).clamp(max=frames - 1)
    return before, after, (position - before).float()


def _to_samples(per_frame: torch.Tensor, length: int) -> torch.Tensor:
    """`[B, F]` -> `[B, T]` by linear interpolation (a gather and a lerp: on a CPU much
    cheaper than `interpolate` for one long row)."""
    before, after, weight = (t.to(per_frame.device)
                             for t in _lerp_plan(per_frame.shape[-1], length))
    return torch.lerp(per_frame[:, before], per_frame[:, after], weight)


def spectral_envelope(reference: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """`[B, T // 2 + 1]`: |rfft(ref)| smoothed over SPECTRAL_SMOOTH_HZ, mean 1 per row."""
    magnitude = torch.fft.rfft(reference, dim=-1).abs().unsqueeze(1)
    width = max(1, round(SPECTRAL_SMOOTH_HZ * reference.shape[-1] / sample_rate)) | 1
    smooth = torch.nn.functional.avg_pool1d(magnitude, width, stride=1, padding=width // 2,
                                            count_include_pad=False)[:, 0]
    return smooth / smooth.mean(dim=-1, keepdim=True).clamp_min(EPS)


@dataclass
class Guide:
    """What a reference `[B, T]` tells every step; computed once per dream or block.

    Attributes:
        filter: step 2's rfft-domain weight `[B, T // 2 + 1]` (lines included).
        level: the reference's local level per frame `[B, F]` (`level_frames`
            over LEVEL_SPAN), None when follow is 0.
        slow: the same over SLOW_SPAN.
        rms: the reference's RMS `[B, 1]`, None for an absolute level.
        exponent: how much of the local level to impose, min(follow, 1).
    """

    filter: torch.Tensor
    level: torch.Tensor | None
    slow: torch.Tensor | None
    rms: torch.Tensor | None
    exponent: float


def guide(reference: torch.Tensor | None, follow_input: float, length: int,
          sample_rate: int, strides: tuple[int, ...]) -> Guide:
    """The guide for steps on windows of `length`; `reference` None = absolute level."""
    mask = line_mask(length, sample_rate, strides)
    if reference is None:
        return Guide(mask, None, None, None, 0.0)
    mask = mask.to(reference.device)
    if follow_input <= 0:
        return Guide(mask, None, None, rms(reference), 0.0)
    envelope = spectral_envelope(reference, sample_rate)
    weight = envelope if follow_input == 1.0 else envelope.pow(follow_input)
    power = frame_power(reference)
    return Guide(weight * mask, level_frames(power, LEVEL_SPAN),
                 level_frames(power, SLOW_SPAN), rms(reference), min(follow_input, 1.0))


def shape(g: torch.Tensor, how: Guide, response: torch.Tensor | None = None) -> torch.Tensor:
    """Steps 1-3 for `g` `[B, T]`; `response` `[T // 2 + 1]`, another filter to apply
    on the way (the gradient smoothing's)."""
    length = g.shape[-1]
    if how.level is not None:
        g = g * gain(how.level, level_frames(frame_power(g), LEVEL_SPAN), how.exponent, length)
    spectrum = torch.fft.rfft(g, dim=-1)
    spectrum *= how.filter.to(g.device)
    if response is not None:
        spectrum *= response.to(g.device)
    g = torch.fft.irfft(spectrum, n=length, dim=-1)
    if how.slow is not None:  # the filter moved the level a little: match it again, slowly
        g *= gain(how.slow, level_frames(frame_power(g), SLOW_SPAN), how.exponent, length)
    target = ABSOLUTE_LEVEL if how.rms is None else how.rms
    return g.mul_(target / rms(g).clamp_min(EPS))
