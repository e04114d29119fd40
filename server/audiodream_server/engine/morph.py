"""Morph: latent interpolation between two sounds with the log-mel autoencoder (seed 004).

After Engel et al. (NSynth) and Natsiou et al. (seed 004 §2): encode sounds A
and B, interpolate their codes, decode, resynthesise. With S = STFT (Hann 2048,
hop 512), L = log(W|S|^2 + 1e-6) the model's log-mel, enc/dec the autoencoder
and a(t) in [0, 1] the amount (fixed, or a curve over the output's time):

    z(t)  = lerp or slerp(enc(L_A), enc(L_B), a(t))          per latent frame
            (with group amounts, each group of latent channels has its own a)
    D(t)  = dec(z(t)) + d [(1 - a) (L_A - dec(enc L_A)) + a (L_B - dec(enc L_B))]
    R(t)  = (|S_A|^(1 - a) |S_B|^a)^d                        fine structure
    M(t)  = R * G(exp(D - log(W R^2 + 1e-6)))                magnitude
    Y(t)  = M * phase((1 - a) S_A + a S_B)       phase "blend", or
            Griffin-Lim(M), started from that phase           phase "griffinlim"
    y     = ISTFT(Y)

G spreads a per-mel-band power gain to the STFT bins (each bin the weighted
mean of its bands, as a power, then its square root; `LogMel.linear_gain`).
`d` ("detail", 0..1) is how much of what the code does not hold is kept:
with d = 1 the decoded residual of each end is added back and the harmonic
fine structure within the mel bands comes from the two inputs' spectra, so an
amount of 0 returns A exactly (up to float rounding of the STFT round trip)
and 1 returns B (fitted to A's length); with d = 0 the sound is the decoder's
alone (the mel bands' smooth envelope, the endpoints its reconstructions).
Bins outside the mel range (30 Hz..16 kHz) always take the blend of A and B.

Spherical interpolation (slerp), per latent frame and channel group, with
w = the angle between the two codes:
    z = sin((1 - a) w) / sin w  z_A + sin(a w) / sin w  z_B   (lerp when w ~ 0)

Contract: the output has A's rate, channel count and length. B is resampled,
its channels matched (kept if equal in number, a mono B serves every channel,
otherwise B's mean does) and it is trimmed or padded with silence to A's
length. The output's peak is at most 1 (the gain applied is reported).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..errors import Cancelled, FailedPrecondition, InvalidArgument, OutOfRange
from ..models.registry import LoadedModel
from . import audio as audio_io
from .features import Features, features
from .melspace import refine_phase
from .params import DEFAULT_LIMITS, OUTPUT_FORMATS, Limits
from .resample import resample

INTERPOLATIONS = ("linear", "spherical")
MORPH_PHASES = ("blend", "griffinlim")
MAX_CURVE_POINTS = 1024
MAX_GL_ITERS = 500
CHUNK_FRAMES = 2048   # STFT frames (24 s) through the autoencoder at a time
MARGIN_FRAMES = 32    # of context each side of a chunk (multiples of the time pooling)
FLOOR = 1e-6      # the log-mel's floor (power)
TINY = 1e-8       # magnitude floor under a logarithm


@dataclass(frozen=True)
class MorphParams:
    """How to morph. Units and ranges as in the proto's `MorphParams`.

    Args:
        model: an autoencoder model; "" = the server's first one.
        amount: 0 = A, 1 = B (fixed over the whole output).
        curve: amounts at evenly spaced times from the start to the end of the
            output (2..1024 points, linear in between); overrides `amount`.
        group_amounts: one amount per equal group of latent channels (the
            count must divide the latent channels); overrides `amount`.
        interpolation: "linear" or "spherical".
        phase: "blend" (of A's and B's phases) or "griffinlim".
        gl_iters: Griffin-Lim iterations (0..500).
        detail: 0..1, see the module docstring.
        output_format: "" / "pcm", "wav", "flac", "ogg".
    """

    model: str = ""
    amount: float = 0.5
    curve: tuple[float, ...] = ()
    group_amounts: tuple[float, ...] = ()
    interpolation: str = "linear"
    phase: str = "blend"
    gl_iters: int = 32
    detail: float = 1.0
    output_format: str = "pcm"

    def validate(self) -> "MorphParams":
        if not (math.isfinite(self.amount) and 0.0 <= self.amount <= 1.0):
            raise OutOfRange(f"amount {self.amount} is outside 0..1 (0 = A, 1 = B)")
        if self.curve and not 2 <= len(self.curve) <= MAX_CURVE_POINTS:
            raise OutOfRange(f"a curve has 2..{MAX_CURVE_POINTS} points, got {len(self.curve)}")
        for name, values in (("curve", self.curve), ("group_amounts", self.group_amounts)):
            if any(not (math.isfinite(v) and 0.0 <= v <= 1.0) for v in values):
                raise OutOfRange(f"every {name} value must be within 0..1")
        if self.curve and self.group_amounts:
            raise InvalidArgument("give a curve or group_amounts, not both")
        if self.interpolation not in INTERPOLATIONS:
            raise InvalidArgument(f"interpolation {self.interpolation!r} is unknown; "
                                  f"choose {', '.join(INTERPOLATIONS)}")
        if self.phase not in MORPH_PHASES:
            raise InvalidArgument(f"phase {self.phase!r} is unknown; choose "
                                  f"{', '.join(MORPH_PHASES)}")
        if not 0 <= self.gl_iters <= MAX_GL_ITERS:
            raise OutOfRange(f"gl_iters {self.gl_iters} is outside 0..{MAX_GL_ITERS}")
        if not (math.isfinite(self.detail) and 0.0 <= self.detail <= 1.0):
            raise OutOfRange(f"detail {self.detail} is outside 0..1")
        if self.output_format not in OUTPUT_FORMATS:
            raise InvalidArgument(f"output_format {self.output_format!r} is unknown; choose "
                                  f"{', '.join(OUTPUT_FORMATS)}")
        return self


@dataclass
class MorphResult:
    """A morphed sound: `[C, T]` at A's rate and length, peak <= 1."""

    audio: np.ndarray
    sample_rate: int
    output_gain: float
    a_features: Features
    b_features: Features
    output_features: Features
    latent_frames: int
    latent_frame_rate: float
    latent_size: int
    params: MorphParams
    seconds: float
    amounts: list[float] = field(default_factory=list)  # per latent frame (mean over groups)


def is_morph_model(model: LoadedModel) -> bool:
    return callable(getattr(model.module, "encode_mel", None))


def check_morph_model(model: LoadedModel) -> None:
    if not is_morph_model(model):
        raise FailedPrecondition(f"model {model.spec.name!r} cannot morph: it has no "
                                 "autoencoder; ListModels names the autoencoder models "
                                 "(domain \"mel\", no classes)")


def fit_b(b: np.ndarray, rate_b: int, channels: int, length: int, rate: int) -> np.ndarray:
    """B at `rate` with `channels` channels, trimmed or padded with silence to `length`."""
    at_rate = resample(b, rate_b, rate)
    if at_rate.shape[0] != channels:
        at_rate = np.repeat(at_rate.mean(axis=0, keepdims=True), channels, axis=0)
    out = np.zeros((channels, length), dtype=np.float32)
    n = min(length, at_rate.shape[1])
    out[:, :n] = at_rate[:, :n]
    return out


def curve_at(curve: tuple[float, ...], positions: torch.Tensor) -> torch.Tensor:
    """The piecewise-linear curve through evenly spaced points, at `positions` in 0..1."""
    points = torch.tensor(curve, dtype=torch.float32, device=positions.device)
    x = positions.clamp(0, 1) * (len(curve) - 1)
    low = x.floor().long().clamp(max=len(curve) - 2)
    frac = x - low
    return points[low] * (1 - frac) + points[low + 1] * frac


def amounts(params: MorphParams, groups: int, frames: int, device) -> torch.Tensor:
    """`[groups, frames]` amounts: per group of latent channels, per frame."""
    if params.curve:
        pos = torch.arange(frames, device=device, dtype=torch.float32) / max(frames - 1, 1)
        return curve_at(params.curve, pos).expand(groups, frames)
    if params.group_amounts:
        return torch.tensor(params.group_amounts, device=device).view(-1, 1).expand(-1, frames)
    return torch.full((groups, frames), float(params.amount), device=device)


def interpolate(za: torch.Tensor, zb: torch.Tensor, alpha: torch.Tensor,
                spherical: bool) -> torch.Tensor:
    """Codes `[B, Z, R, f]` mixed by `alpha` `[G, f]` (G equal groups of the Z channels)."""
    b, z, r, f = za.shape
    g = alpha.shape[0]
    xa, xb = za.reshape(b, g, (z // g) * r, f), zb.reshape(b, g, (z // g) * r, f)
    a = alpha.view(1, g, 1, f)
    if not spherical:
        return (xa + a * (xb - xa)).reshape(b, z, r, f)
    cos = (xa * xb).sum(2, keepdim=True) / (xa.norm(dim=2, keepdim=True)
                                            * xb.norm(dim=2, keepdim=True)).clamp_min(1e-12)
    omega = torch.acos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    near = sin < 1e-4  # (anti)parallel codes: slerp's weights are undefined, lerp is the limit
    safe = torch.where(near, torch.ones_like(sin), sin)
    wa = torch.where(near, 1 - a, torch.sin((1 - a) * omega) / safe)
    wb = torch.where(near, a, torch.sin(a * omega) / safe)
    return (wa * xa + wb * xb).reshape(b, z, r, f)


def frame_amounts(alpha: torch.Tensor, frames: int, pool: int) -> torch.Tensor:
    """Mean latent-frame amounts `[G, f]` held over the STFT frames -> `[frames]`."""
    per_latent = alpha.mean(dim=0)
    return per_latent.repeat_interleave(pool)[:frames]


@torch.no_grad()
def morph_spectra(module, sa: torch.Tensor, sb: torch.Tensor, alpha: torch.Tensor,
                  params: MorphParams) -> torch.Tensor:
    """The morph's complex spectrum `[B, bins, F]` from the spectra of A and B.

    `alpha` `[G, f]`: the amounts of the latent frames, as `amounts` gives them.
    """
    frontend = module.frontend
    frames = sa.shape[-1]
    la, lb = frontend.from_spectrum(sa), frontend.from_spectrum(sb)
    za, zb = module.encode_mel(la), module.encode_mel(lb)
    z = interpolate(za, zb, alpha, params.interpolation == "spherical")
    a = frame_amounts(alpha, frames, module.time_pool).view(1, 1, frames)  # per STFT frame
    decoded = module.decode(z, frames)
    d = params.detail
    if d:
        decoded = decoded + d * ((1 - a.unsqueeze(1)) * residual(module, la, za)
                                 + a.unsqueeze(1) * residual(module, lb, zb))
    magnitude = resynthesis_magnitude(frontend, decoded, log_magnitude(sa), log_magnitude(sb),
                                      a, d)
    mixed = (1 - a) * sa + a * sb
    phase = mixed / mixed.abs().clamp_min(1e-12)
    phase = torch.where(mixed.abs() > 0, phase, torch.ones_like(phase))
    spectrum = magnitude * phase
    return spectrum


def morph_spectra_chunked(module, sa: torch.Tensor, sb: torch.Tensor, alpha: torch.Tensor,
                          params: MorphParams, check=lambda: None) -> torch.Tensor:
    """`morph_spectra` over CHUNK_FRAMES STFT frames at a time, with MARGIN_FRAMES of
    context on each side (more than the autoencoder's receptive field, about 25
    frames), so a long sound's activations stay small and the result is the same
    as in one piece up to float rounding. Both are multiples of the time pooling,
    so every chunk's latent grid is the whole sound's."""
    frames, pool = sa.shape[-1], module.time_pool
    if frames <= CHUNK_FRAMES + 2 * MARGIN_FRAMES:
        return morph_spectra(module, sa, sb, alpha, params)
    parts = []
    for first in range(0, frames, CHUNK_FRAMES):
        check()
        lo, hi = max(0, first - MARGIN_FRAMES), min(frames, first + CHUNK_FRAMES + MARGIN_FRAMES)
        part = morph_spectra(module, sa[..., lo:hi], sb[..., lo:hi],
                             alpha[:, lo // pool:lo // pool + -(-(hi - lo) // pool)], params)
        parts.append(part[..., first - lo:first - lo + CHUNK_FRAMES])
    return torch.cat(parts, dim=-1)


def log_magnitude(spectrum: torch.Tensor) -> torch.Tensor:
    return spectrum.abs().clamp_min(TINY).log()


def residual(module, mel: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """What the code does not hold: L - dec(enc(L)), `[B, 1, mels, F]`."""
    return mel - module.decode(code, mel.shape[-1])


def resynthesis_magnitude(frontend, decoded: torch.Tensor, log_a: torch.Tensor,
                          log_b: torch.Tensor, a: torch.Tensor, detail: float) -> torch.Tensor:
    """M = R G(exp(D - log(W R^2 + eps))), R = (|S_A|^(1-a) |S_B|^a)^d (module docstring).

    Shapes: decoded `[B, 1, mels, F]`; log_a, log_b `[B, bins, F or 1]`; a
    broadcastable to `[B, bins, F]`. Returns `[B, bins, F]`.
    """
    blend = (1 - a) * log_a + a * log_b                   # log of the geometric blend
    covered = (frontend.filters.sum(dim=0) > 0).view(1, -1, 1)
    reference = torch.exp(torch.where(covered, detail * blend, blend))
    ref_mel = torch.log(frontend.filters @ reference.square() + FLOOR)
    return reference * frontend.linear_gain(torch.exp(decoded[:, 0] - ref_mel))


def morph(a: np.ndarray, rate_a: int, b: np.ndarray, rate_b: int, model: LoadedModel,
          params: MorphParams, limits: Limits = DEFAULT_LIMITS,
          should_stop: Callable[[], bool] | None = None) -> MorphResult:
    """Morphs A `[C, T]` toward B `[Cb, Tb]`; see the module docstring.

    `should_stop` is asked before each chunk and Griffin-Lim iteration (a long
    sound's morph takes minutes): True raises `Cancelled`.

    Raises:
        InvalidArgument / OutOfRange: bad audio or parameters.
        FailedPrecondition: `model` is not an autoencoder.
        Cancelled: `should_stop` said so.
    """
    def check() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("the morph was cancelled by the caller")

    start = time.perf_counter()
    params = params.validate()
    check_morph_model(model)
    audio_io.validate(a, rate_a, limits, "sound A")
    audio_io.validate(b, rate_b, limits, "sound B")
    module, device = model.module, model.device
    rate = model.spec.sample_rate
    channels, length = a.shape
    latent = module.latent_channels
    if params.group_amounts and latent % len(params.group_amounts):
        raise OutOfRange(f"{len(params.group_amounts)} group amounts do not divide the "
                         f"{latent} latent channels; give 1, 2, 4 or 8")
    xa = resample(a, rate_a, rate)
    xb = fit_b(b, rate_b, channels, xa.shape[1], rate)
    # The centred STFT reflects half a frame at each end: shorter sounds are padded
    # with silence for the analysis and cut back afterwards.
    short = max(0, module.frontend.n_fft - xa.shape[1])
    xa, xb = (np.pad(x, ((0, 0), (0, short))) for x in (xa, xb))
    frontend = module.frontend
    frames = xa.shape[1] // frontend.hop + 1
    latent_frames = -(-frames // module.time_pool)
    alpha = amounts(params, len(params.group_amounts) or 1, latent_frames, device)
    out = np.empty((channels, xa.shape[1] - short), np.float32)
    with torch.no_grad():
        for c in range(channels):  # one channel at a time: a long sound's spectra are large
            spectra = frontend.spectrum(torch.from_numpy(np.stack([xa[c], xb[c]])).to(device))
            spectrum = morph_spectra_chunked(module, spectra[:1], spectra[1:], alpha, params,
                                             check)
            if params.phase == "griffinlim":
                # Griffin-Lim from the blended phase (deterministic).
                spectrum = refine_phase(spectrum, spectrum.abs(), frontend,
                                        (spectrum.shape[-1] - 1) * frontend.hop, params.gl_iters,
                                        check)
            y = torch.istft(spectrum, frontend.n_fft, frontend.hop, window=frontend.window,
                            center=True, length=xa.shape[1])
            out[c] = y[0, :xa.shape[1] - short].cpu().numpy()
    out = resample(out.astype(np.float32), rate, rate_a, length)
    peak = float(np.abs(out).max(initial=0.0))
    if not math.isfinite(peak):
        raise OutOfRange("the morph produced non-finite samples; try detail 1 or phase blend")
    gain = 1.0 / peak if peak > 1.0 else 1.0
    if gain != 1.0:
        out = out * np.float32(gain)
    out = np.ascontiguousarray(out, dtype=np.float32)
    return MorphResult(
        audio=out, sample_rate=rate_a, output_gain=gain, a_features=features(a, rate_a),
        b_features=features(b, rate_b), output_features=features(out, rate_a),
        latent_frames=latent_frames, latent_frame_rate=rate / (frontend.hop * module.time_pool),
        latent_size=latent * (module.frontend.filters.shape[0] // module.mel_pool),
        params=params, seconds=time.perf_counter() - start,
        amounts=[float(v) for v in alpha.mean(dim=0).cpu()])
