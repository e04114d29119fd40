"""Update rules: how a normalised gradient changes the sound (DreamSound, seed 000 Fig. 2).

Let x be the current sound, x0 the original, y a target, g the normalised
gradient, S the STFT (Hann window of n_fft, hop) and M_s a hard-cut mask built
from signal s:

    M_s = [ 20 log10(|S(s)|^p / max |S(s)|^p)  >  threshold ]   (per item, 0 or 1)
    filt(a, M) = ISTFT(M * |S(a)| * exp(i angle S(a)))     (a filtered by M)

    add          (2a)  x <- x + step * g
    hardcut      (2b)  x <- filt(x, M_g)                   the gradient gates the sound
    hardcut_add  (2c)  x <- x + step * filt(g, M_x0)       the original gates the gradient
    target_filter(2d)  x <- x + step * filt(g, M_y)        a target gates the gradient
    flip               x <- x + step * filt(g, M_x)        hardcut with the roles swapped:
                                                           the sound gates the gradient

The threshold is in dB below each item's loudest bin: DreamSound's linear 0.5
(-6 dB) passes a fraction of a percent of the bins of real material; the
default -45 dB passes the partials that carry a sound (chosen with the sound
benchmark: target_filter audible on speech and drums, hardcut no longer shreds).
g is the shaped, level-matched update of `shaping.shape`, so `step` is relative
to the input's level here too.

DreamSound's published code multiplies magnitude and phase with the real and
imaginary parts swapped and loses samples in the inverse STFT; here the
complex spectrum is rebuilt as M * S(a) (same magnitude, same phase) and the
inverse STFT is asked for exactly T samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

if TYPE_CHECKING:  # params.py validates names against the registry below
    from .params import DreamParams

def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
    return torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)


def _istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, device=spec.device)
    return torch.istft(spec, n_fft, hop, window=window, center=True, length=length)


def hard_cut_mask(spec: torch.Tensor, threshold_db: float, power: float) -> torch.Tensor:
    """1 where the compressed magnitude is within `-threshold_db` dB of the item's peak.

    `[B, F, N]`; a threshold of 0 dB passes only the peak bin(s); an all-zero item
    passes nothing.
    """
    mag = spec.abs().pow(power)
    peak = mag.amax(dim=(-2, -1), keepdim=True)
    level = mag * 10.0 ** (-threshold_db / 20.0)
    return ((level >= peak) & (mag > 0)).to(mag.dtype)


def filtered(signal: torch.Tensor, mask_source: torch.Tensor, params: DreamParams
             ) -> torch.Tensor:
    """`signal` `[B, T]` with its spectrum gated by the hard-cut mask of `mask_source`."""
    n_fft, hop, length = params.n_fft, params.hop, signal.shape[-1]
    mask = hard_cut_mask(_stft(mask_source, n_fft, hop), params.threshold, params.power)
    return _istft(_stft(signal, n_fft, hop) * mask, n_fft, hop, length)


# Each rule: (x, normalised gradient g, original x0, target y or None, params) -> x'.
Update = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "torch.Tensor | None",
                   "DreamParams"], torch.Tensor]
# The update rules by name: the names `update` accepts are this registry's keys.
UPDATES: dict[str, Update] = {
    "add": lambda x, g, x0, y, p: x + p.step_size * g,
    "hardcut": lambda x, g, x0, y, p: filtered(x, g, p),
    "hardcut_add": lambda x, g, x0, y, p: x + p.step_size * filtered(g, x0, p),
    "target_filter": lambda x, g, x0, y, p: x + p.step_size * filtered(g, y, p),
    "flip": lambda x, g, x0, y, p: x + p.step_size * filtered(g, x, p),
}


def apply(x: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor, target: torch.Tensor | None,
          params: DreamParams) -> torch.Tensor:
    """The new signal `[B, T]` under `params.update`."""
    try:
        rule = UPDATES[params.update]
    except KeyError:
        raise ValueError(f"unknown update rule {params.update!r}") from None
    return rule(x, grad, x0, target, params)
