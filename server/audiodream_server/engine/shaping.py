"""Where a dream's change may grow: from a normalised gradient to one step's update.

Three moves turn the normalised gradient g `[B, T]` of one step into the update u
that `updates.apply` scales by `step_size`:

1. Stride lines out. A layer of cumulative stride S subsamples what it hears:
   a component at k * rate / S aliases to DC in its output, which a mean-square
   objective rewards at every frame at once, and the backward pass images the
   output gradient's DC onto exactly those frequencies. Left in, the ascent
   builds a comb of lines there (the buzz: 900 Hz and 6.3 kHz multiples at
   44.1 kHz for model2). They are taken out of g on the rfft grid of the window,

       G = rfft(g);  G[bins within h of k * T / S] = 0;  g = irfft(G)
   h = min(frame rate of the deepest layer / 2, rate / S / 20)

   for every S of the layers the objective reaches whose line spacing rate / S
   is at least MIN_LINE_SPACING_HZ (closer lines are too dense to matter and to
   remove). A circular shift (time_jitter) moves a line's phase, never its
   frequency, so the notch holds under jitter.
2. Follow the input. g's STFT is weighted by the reference's magnitude (the
   original, or the start signal of a noise/sine init) raised to `follow_input`:

       u = ISTFT(STFT(g) * (|S(ref)| / mean |S(ref)|) ^ f)

   f = 0 leaves g as it is (plain DeepDream); f = 1 gives the change the
   reference's time-frequency envelope: the dream grows where the sound is,
   keeps its rhythm and spectrum, and silence stays silent.
3. Relative level. u is scaled so that its level is the reference's, locally
   (envelopes E over LEVEL_SPAN samples) as far as it follows the input:

       u = u * (E_ref / E_u) ^ min(f, 1) * (rms(ref) / rms(u'))   (u' = u before)

   so `step_size` is a fraction of the input's own level, for loud and quiet
   inputs alike (without a reference, as from silence, of ABSOLUTE_LEVEL). The
   local match also undoes the weaker gradient near a window's edges (its
   receptive fields reach into the zero padding there), which would otherwise
   leave a dip in the change wherever windows overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

MIN_LINE_SPACING_HZ = 20.0
LEVEL_SPAN = 2048  # samples over which the local level is matched (46 ms at 44.1 kHz)
LEVEL_HOP = 256
FOLLOW_N_FFT, FOLLOW_HOP = 512, 256  # 11.6 ms frames at 44.1 kHz: an envelope, not a spectrum
ABSOLUTE_LEVEL = 0.05  # RMS of one unit step when there is no reference (-26 dBFS)
EPS = 1e-12


@lru_cache(maxsize=64)
def line_bins(length: int, sample_rate: int, strides: tuple[int, ...]) -> torch.Tensor:
    """rfft bins `[K]` nearest the aliasing lines k * rate / S of each stride S."""
    bins = set()
    for s in strides:
        if sample_rate / s < MIN_LINE_SPACING_HZ:
            continue
        # The ascent also feeds the bins beside a line: they alias to slow
        # activations that the deepest layer (frame rate rate / max(S)) cannot
        # tell from DC. Notch those too, up to a 20th of the comb's spacing.
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
def _line_mask(length: int, sample_rate: int, strides: tuple[int, ...]) -> torch.Tensor | None:
    bins = line_bins(length, sample_rate, strides)
    if bins.numel() == 0:
        return None
    mask = torch.ones(length // 2 + 1)
    mask[bins] = 0.0
    return mask


def remove_lines(g: torch.Tensor, sample_rate: int, strides: tuple[int, ...]) -> torch.Tensor:
    """`g` `[B, T]` without the rfft bins of `line_bins`."""
    mask = _line_mask(g.shape[-1], sample_rate, strides)
    if mask is None:
        return g
    spectrum = torch.fft.rfft(g, dim=-1) * mask.to(g.device)
    return torch.fft.irfft(spectrum, n=g.shape[-1], dim=-1)


def _window(device) -> torch.Tensor:
    return torch.hann_window(FOLLOW_N_FFT, device=device)


def envelope(reference: torch.Tensor, follow: float) -> torch.Tensor:
    """The weight `[B, F, N]` of step 2, from the reference `[B, T]`."""
    spec = torch.stft(reference, FOLLOW_N_FFT, FOLLOW_HOP, window=_window(reference.device),
                      center=True, return_complex=True).abs()
    spec = spec / spec.mean(dim=(-2, -1), keepdim=True).clamp_min(EPS)
    return spec if follow == 1.0 else spec.pow(follow)


def follow(g: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`g` `[B, T]` with its STFT multiplied by `weight` `[B, F, N]`."""
    window = _window(g.device)
    spec = torch.stft(g, FOLLOW_N_FFT, FOLLOW_HOP, window=window, center=True,
                      return_complex=True)
    return torch.istft(spec * weight, FOLLOW_N_FFT, FOLLOW_HOP, window=window, center=True,
                       length=g.shape[-1])


def rms(x: torch.Tensor) -> torch.Tensor:
    """`[B, 1]` root mean square of each row."""
    return x.pow(2).mean(dim=-1, keepdim=True).sqrt()


def local_level(x: torch.Tensor) -> torch.Tensor:
    """`[B, T]` RMS over about LEVEL_SPAN samples around each sample.

    Mean power per LEVEL_HOP frame, a moving average over LEVEL_SPAN / LEVEL_HOP
    frames, linear interpolation back to samples: a few operations per frame
    instead of per sample.
    """
    batch, length = x.shape
    frames = -(-length // LEVEL_HOP)
    power = torch.nn.functional.pad(x.pow(2), (0, frames * LEVEL_HOP - length))
    power = power.view(batch, frames, LEVEL_HOP).mean(dim=-1, keepdim=True).transpose(1, 2)
    span = LEVEL_SPAN // LEVEL_HOP + 1
    smooth = torch.nn.functional.avg_pool1d(power, span, stride=1, padding=span // 2,
                                            count_include_pad=False)
    level = torch.nn.functional.interpolate(smooth, size=length, mode="linear",
                                            align_corners=False)
    return level[:, 0].clamp_min(0).sqrt()


@dataclass
class Guide:
    """What a reference `[B, T]` tells every step; computed once per dream or block.

    Attributes:
        weight: the STFT weight of step 2 `[B, F, N]`, None when follow is 0.
        level: the reference's local level `[B, T]` (step 3), None when follow is 0.
        rms: the reference's RMS `[B, 1]`.
        exponent: how much of the local level to impose, min(follow, 1).
    """

    weight: torch.Tensor | None
    level: torch.Tensor | None
    rms: torch.Tensor
    exponent: float


def guide(reference: torch.Tensor, follow_input: float) -> Guide:
    if follow_input <= 0:
        return Guide(None, None, rms(reference), 0.0)
    return Guide(envelope(reference, follow_input), local_level(reference), rms(reference),
                 min(follow_input, 1.0))


def shape(g: torch.Tensor, how: Guide | None, sample_rate: int,
          strides: tuple[int, ...]) -> torch.Tensor:
    """Steps 1-3 for `g` `[B, T]`; `how` None means no reference (absolute level)."""
    if how is None:
        g = remove_lines(g, sample_rate, strides)
        return g * (ABSOLUTE_LEVEL / rms(g).clamp_min(EPS))
    if how.weight is not None:
        g = follow(g, how.weight)
        ratio = how.level / local_level(g).clamp_min(EPS)
        g = g * (ratio if how.exponent == 1.0 else ratio.pow(how.exponent))
    # Last, so that no later time-varying gain spreads energy back into the notches.
    g = remove_lines(g, sample_rate, strides)
    return g * (how.rms / rms(g).clamp_min(EPS))
