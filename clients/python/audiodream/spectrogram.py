"""Log-frequency spectrograms for pictures of dreams (numpy only: no torch, no matplotlib).

A sound `[T]` or `[T, C]` (channels averaged after the power spectrum, so
opposite-phase channels do not cancel) becomes a level in dB per time frame and
per frequency row, the rows spaced evenly in log frequency:

    P[t, k]  = mean_c |sum_n w[n] x_c[t*hop + n] e^{-2 pi i k n / N}|^2 / (sum_n w[n])^2
    L[t, f]  = 10 log10(interp_k(P[t, k]) at frequency f) + 6.02        (dBFS)
    f_j      = f_lo * (f_hi / f_lo)^(j / (rows - 1)),  j = 0..rows-1

w is a Hann window of N samples. The scale is dB relative to full scale: a sine
of peak 1 reads 0 dBFS at its frequency (the window's coherent gain is divided
out, and 6.02 dB restores the half lost to the negative frequencies), so
pictures of different sounds drawn with the same limits compare directly.
Interpolating power between bins (rather than summing bands) keeps the low rows,
narrower than one bin, smooth instead of blocky.

>>> import numpy as np
>>> t = np.arange(44100) / 44100
>>> s = log_spectrogram(np.sin(2 * np.pi * 1000 * t), 44100, rows=200)
>>> peak_hz = s.frequencies_hz[s.level_db.mean(axis=0).argmax()]
>>> bool(abs(peak_hz - 1000) < 0.02 * 1000)     # rows are 3.4 % apart here
True
>>> f = 93 * 44100 / 2048                          # exactly on FFT bin 93
>>> on_bin = log_spectrogram(np.sin(2 * np.pi * f * t), 44100, rows=2, low_hz=f)
>>> abs(round(float(on_bin.level_db[:, 0].mean()), 2))   # a full-scale sine: 0 dBFS
0.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOOR_DB = -120.0  # digital silence is drawn here rather than at -inf


@dataclass(frozen=True)
class Spectrogram:
    """Levels on a log-frequency grid.

    Attributes:
        level_db: `[frames, rows]` dBFS.
        times_s: `[frames]` centre of each frame, seconds.
        frequencies_hz: `[rows]` centre of each row, Hz, increasing geometrically.
    """

    level_db: np.ndarray
    times_s: np.ndarray
    frequencies_hz: np.ndarray

    @property
    def duration_s(self) -> float:
        step = self.times_s[1] - self.times_s[0] if len(self.times_s) > 1 else 0.0
        return float(self.times_s[-1] + step / 2) if len(self.times_s) else 0.0


def log_spectrogram(audio: np.ndarray, sample_rate: int, *, n_fft: int = 2048,
                    hop: int | None = None, rows: int = 256, low_hz: float = 30.0,
                    high_hz: float | None = None) -> Spectrogram:
    """The log-frequency spectrogram of `audio`.

    Args:
        audio: `[T]` or `[T, C]` samples (the soundfile layout), any float type.
        sample_rate: Hz.
        n_fft: frame length, samples (shorter sounds are zero-padded to one frame).
        hop: frame step, samples [n_fft / 4].
        rows: frequency rows.
        low_hz, high_hz: range of the rows, Hz [30 Hz .. Nyquist].
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"audio must be [T] or [T, C] with T > 0, got shape {x.shape}")
    hop = hop or n_fft // 4
    high_hz = min(high_hz or sample_rate / 2, sample_rate / 2)
    if not 0 < low_hz < high_hz:
        raise ValueError(f"need 0 < low_hz < high_hz, got {low_hz} and {high_hz}")
    if x.shape[0] < n_fft:
        x = np.pad(x, ((0, n_fft - x.shape[0]), (0, 0)))
    window = np.hanning(n_fft)
    starts = np.arange(0, x.shape[0] - n_fft + 1, hop)
    power = np.zeros((len(starts), n_fft // 2 + 1))
    for c in range(x.shape[1]):
        frames = np.lib.stride_tricks.sliding_window_view(x[:, c], n_fft)[::hop]
        power += np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    power /= x.shape[1] * window.sum() ** 2
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    freqs = low_hz * (high_hz / low_hz) ** (np.arange(rows) / max(rows - 1, 1))
    on_grid = np.stack([np.interp(freqs, bins, frame) for frame in power])
    level = 10 * np.log10(np.maximum(on_grid, 10 ** (FLOOR_DB / 10))) + 10 * np.log10(4.0)
    times = (starts + n_fft / 2) / sample_rate
    return Spectrogram(level.astype(np.float32), times, freqs)


def change_db(before: Spectrogram, after: Spectrogram, floor_db: float) -> np.ndarray:
    """`after - before` in dB per cell, levels below `floor_db` raised to it first.

    Raising both to a floor keeps the change of inaudible cells (silence against
    silence) at 0 instead of the difference of two noise floors.
    """
    if before.level_db.shape != after.level_db.shape:
        raise ValueError("spectrograms of different shapes: the sounds differ in length or rate")
    return np.maximum(after.level_db, floor_db) - np.maximum(before.level_db, floor_db)
