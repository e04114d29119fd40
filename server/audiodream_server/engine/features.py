"""The four audio features of Bisig & Wegner (seed 003 §3.5), for comparing dreams.

Frames of 2048 samples, hop 512, Hann window; P = |STFT|^2, M = |STFT|.

    loudness   RMS        sqrt(mean(x^2)) over the whole signal
    brightness centroid   sum(f * M) / sum(M), Hz, mean over non-silent frames
    noisiness  flatness   exp(mean(log P)) / mean(P), mean over non-silent frames
    roughness  flux       ||M_t / ||M_t|| - M_{t-1} / ||M_{t-1}||||_2, mean over frames

Flux on unit-normalised spectra measures change of spectral shape, not of level,
and lies in 0..sqrt(2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FFT = 2048
HOP = 512
SILENT_POWER = 1e-10  # frames with less mean power carry no spectral shape


@dataclass(frozen=True)
class Features:
    rms: float
    spectral_centroid_hz: float
    spectral_flatness: float
    spectral_flux: float


def _frames(x: np.ndarray) -> np.ndarray:
    """`[T]` -> `[F, N_FFT]` Hann-windowed frames (zero-padded to at least one frame)."""
    if x.shape[0] < N_FFT:
        x = np.pad(x, (0, N_FFT - x.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    return frames * np.hanning(N_FFT).astype(x.dtype)[None, :]


def features(audio: np.ndarray, sample_rate: int) -> Features:
    """Features of `[C, T]` audio, averaged over channels."""
    per_channel = [_channel_features(ch.astype(np.float32), sample_rate) for ch in audio]
    return Features(*(float(np.mean(values)) for values in zip(*per_channel, strict=True)))


def _channel_features(x: np.ndarray, sample_rate: int) -> tuple[float, float, float, float]:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    mag = np.abs(np.fft.rfft(_frames(x), axis=-1)).astype(np.float64)
    power = mag ** 2
    loud = power.mean(axis=-1) > SILENT_POWER
    if not loud.any():
        return rms, 0.0, 0.0, 0.0
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
    m, p = mag[loud], power[loud]
    centroid = float(np.mean((m * freqs).sum(-1) / m.sum(-1)))
    p = p + 1e-20
    flatness = float(np.mean(np.exp(np.log(p).mean(-1)) / p.mean(-1)))
    unit = m / np.linalg.norm(m, axis=-1, keepdims=True)
    flux = float(np.mean(np.linalg.norm(np.diff(unit, axis=0), axis=-1))) if len(unit) > 1 else 0.0
    return rms, centroid, flatness, flux
