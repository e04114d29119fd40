"""Live morphing: a stream's input moved toward a target sound's code (seed 004, Colonel et al.).

The target is summarised once, when it arrives, by the loud frames (within
40 dB of its loudest) of its first TARGET_SECONDS: the mean of their latent
codes z_T, the mean of their log-mels L_T and of their log magnitudes
log|S_T|, and the target's residual
r_T = L_T - dec(z_T) (what the code does not hold). Each block, the stream's
context x (at the model rate) is encoded and moved toward z_T by the amount a
(`morph_amount`, changed live by a Control), as `engine.morph` does for two
sounds, with the target standing still in time:

    z   = lerp or slerp(enc(L_x), z_T, a)          every latent frame
    D   = dec(z) + d [(1 - a) (L_x - dec(enc L_x)) + a r_T]
    M   = R G(exp(D - log(W R^2 + eps))),   R = (|S_x|^(1 - a) exp(log|S_T|)^a)^d
    y   = ISTFT(M * phase(S_x))                    the input's own phase

The session turns y - x into the stream's change and crossfades it like
process mode's dream, so amount 0 with detail 1 passes the input through
(up to the STFT round trip's float rounding) and moves are click-free.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..engine.morph import (interpolate, log_magnitude, residual, resynthesis_magnitude)
from ..engine.resample import resample
from ..models.registry import LoadedModel

LOUD_DB = 40.0
TARGET_SECONDS = 30  # of the target summarised: a timbre, not a piece


class TargetCode:
    """A target sound's code and spectra, summarised over its loud frames.

    Attributes (per channel c):
        code `[C, Z, R, 1]`, residual `[C, 1, mels, 1]`, log_magnitude `[C, bins, 1]`.
    """

    def __init__(self, model: LoadedModel, samples: np.ndarray, rate: int, channels: int):
        module = model.module
        at_rate = resample(samples[:, :TARGET_SECONDS * rate], rate, model.spec.sample_rate)
        if at_rate.shape[0] != channels:
            at_rate = np.repeat(at_rate.mean(axis=0, keepdims=True), channels, axis=0)
        # The centred STFT needs at least one frame's length: pad a short target with silence.
        at_rate = np.pad(at_rate, ((0, 0), (0, max(0, module.frontend.n_fft - at_rate.shape[1]))))
        with torch.no_grad():
            x = torch.from_numpy(np.array(at_rate, dtype=np.float32)).to(model.device)
            spectrum = module.frontend.spectrum(x)
            mel = module.frontend.from_spectrum(spectrum)           # [C, 1, M, F]
            code = module.encode_mel(mel)                           # [C, Z, R, f]
            frames, pool = mel.shape[-1], module.time_pool
            energy = torch.logsumexp(mel[:, 0], dim=1)              # [C, F] natural log
            loud = energy > energy.amax(dim=1, keepdim=True) - LOUD_DB * math.log(10) / 10
            loud_latent = torch.nn.functional.pad(
                loud.float(), (0, -frames % pool)).view(loud.shape[0], -1, pool).amax(-1) > 0
            self.code = _masked_mean(code, loud_latent[:, None, None, :])
            self.residual = _masked_mean(residual(module, mel, code), loud[:, None, None, :])
            self.log_magnitude = _masked_mean(log_magnitude(spectrum), loud[:, None, :])


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis where `mask` (broadcast) holds; keeps the axis."""
    weight = mask.to(x.dtype).expand_as(x)
    return (x * weight).sum(-1, keepdim=True) / weight.sum(-1, keepdim=True).clamp_min(1.0)


@torch.no_grad()
def morph_toward(model: LoadedModel, x: torch.Tensor, target: TargetCode, amount: float,
                 spherical: bool, detail: float) -> torch.Tensor:
    """The context `[C, T]` (model rate) moved toward `target` by `amount`; `[C, T]`."""
    module = model.module
    frontend = module.frontend
    spectrum = frontend.spectrum(x)
    mel = frontend.from_spectrum(spectrum)
    code = module.encode_mel(mel)
    frames, latent_frames = mel.shape[-1], code.shape[-1]
    alpha = torch.full((1, latent_frames), float(amount), device=x.device)
    z = interpolate(code, target.code.expand_as(code), alpha, spherical)
    decoded = module.decode(z, frames)
    if detail:
        decoded = decoded + detail * ((1 - amount) * residual(module, mel, code)
                                      + amount * target.residual)
    magnitude = resynthesis_magnitude(frontend, decoded, log_magnitude(spectrum),
                                      target.log_magnitude, torch.tensor(amount), detail)
    phase = spectrum / spectrum.abs().clamp_min(1e-12)
    phase = torch.where(spectrum.abs() > 0, phase, torch.ones_like(phase))
    return torch.istft(magnitude * phase, frontend.n_fft, frontend.hop, window=frontend.window,
                       center=True, length=x.shape[-1])
