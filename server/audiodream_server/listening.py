"""How a dream sounds, in numbers: the sound benchmark's measures (SPEC §7).

Each compares a dream `y` with its input `x` (both `[T]`, same rate):

    logmel_r   Pearson r of the log-mel spectrograms (the mel CNN's filterbank:
               64 bands 30 Hz - 16 kHz; n_fft 2048, hop 512; dB floored 80 dB
               below the input's loudest bin):
               does the input's spectro-temporal shape survive?
    onset_r    Pearson r of the onset envelopes (half-wave rectified log-mel
               difference, summed over bands): does its rhythm survive?
    retain     least-squares gain of x inside y, <y, x> / <x, x>: how loud the
               original still is (1 = untouched; the issue's "retained input gain")
    change_db  20 log10(rms(y - x) / rms(x)): how loud the dream's change is
    hf_share   percent of the energy above 8 kHz
    new_line   the strongest narrow spectral line of y that x does not have:
               prominence over the local median of a long-term spectrum,
               p(f) = 10 log10(P(f) / median P(f - 135 Hz .. f + 135 Hz)),
               new_line = max p_y(f) over the bins where x never has a line
               (p_x < 3 dB within +-2 bins, in the long-term spectrum and in
               the max-hold of 0.37 s segments, so brief notes count) and y
               is no more than 60 dB below its loudest bin (dB); a partial of
               x made louder is not new
    join_db    level of the change where windows overlap against mid-window,
               relative to the input's level in the same places (the change
               follows the input's loudness): 10 log10((sum_J d^2 / sum_J x^2) /
               (sum_M d^2 / sum_M x^2)), d = y - x, J joins, M the rest
    ltas       a long-term spectrum on third-octave bands (dB); `similarity`
               of two is their Pearson r (do different inputs give one result?)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from .models.melcnn import mel_filterbank

N_FFT, HOP, MELS = 2048, 512, 64
FLOOR_DB = 80.0
LINE_NPERSEG = 16384
LINE_HALF_WIDTH_HZ = 135.0
LINE_RANGE_DB = 60.0
IN_LINE_DB = 3.0


def _power_mel(x: np.ndarray, rate: int) -> np.ndarray:
    _, _, spec = sps.stft(x, rate, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP,
                          boundary="even", padded=True)
    bank = mel_filterbank(rate, N_FFT, MELS, 30.0, min(16000.0, rate / 2)).double().numpy()
    return bank @ (np.abs(spec) ** 2)


def _db(power: np.ndarray, floor: float) -> np.ndarray:
    return np.maximum(10.0 * np.log10(power + 1e-30), floor)


def _r(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else 0.0


def onset_envelope(mel_db: np.ndarray) -> np.ndarray:
    """`[frames - 1]`: sum over bands of the positive frame-to-frame rise (dB)."""
    return np.maximum(np.diff(mel_db, axis=1), 0.0).sum(axis=0)


def long_term_spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum with ~2.7 Hz bins at 44.1 kHz: `(freqs, power)`."""
    nperseg = min(LINE_NPERSEG, x.size)
    return sps.welch(x, rate, window="hann", nperseg=nperseg, noverlap=nperseg // 2)


def prominence(power: np.ndarray, bin_hz: float) -> np.ndarray:
    """Each bin's level over the median of its neighbourhood (dB)."""
    half = max(2, int(round(LINE_HALF_WIDTH_HZ / bin_hz)))
    padded = np.pad(power, half, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return 10.0 * np.log10((power + 1e-30) / (np.median(windows, axis=-1) + 1e-30))


def new_line_db(x: np.ndarray, y: np.ndarray, rate: int,
                low_hz: float = 50.0) -> tuple[float, float]:
    """`(dB, Hz)` of the strongest line of y not in x (see the module docstring)."""
    freqs, px = long_term_spectrum(x, rate)
    _, py = long_term_spectrum(y, rate)
    bin_hz = float(freqs[1] - freqs[0])
    nperseg = min(LINE_NPERSEG, x.size)
    _, _, segments = sps.spectrogram(x, rate, window="hann", nperseg=nperseg,
                                     noverlap=nperseg // 2)
    # Max-hold over segments: a brief note's partials stand out, noise stays flat.
    p_in = np.maximum(prominence(segments.max(axis=1), bin_hz), prominence(px, bin_hz))
    in_line = np.lib.stride_tricks.sliding_window_view(np.pad(p_in, 2, mode="edge"), 5).max(-1)
    candidates = ((py >= py.max() * 10 ** (-LINE_RANGE_DB / 10)) & (freqs >= low_hz)
                  & (in_line < IN_LINE_DB))
    if not candidates.any():
        return 0.0, 0.0
    p_out = prominence(py, bin_hz)
    k = int(np.argmax(np.where(candidates, p_out, -np.inf)))
    return float(p_out[k]), float(freqs[k])


def third_octave_ltas(x: np.ndarray, rate: int) -> np.ndarray:
    """Long-term spectrum in dB on third-octave bands from 50 Hz to min(16 kHz, Nyquist)."""
    freqs, power = long_term_spectrum(x, rate)
    top = min(16000.0, rate / 2)
    centres = 50.0 * 2 ** (np.arange(0, 60) / 3)
    centres = centres[centres * 2 ** (1 / 6) <= top]
    bands = [power[(freqs >= c * 2 ** (-1 / 6)) & (freqs < c * 2 ** (1 / 6))].sum()
             for c in centres]
    return 10.0 * np.log10(np.asarray(bands) + 1e-30)


def similarity(ltas_a: np.ndarray, ltas_b: np.ndarray) -> float:
    return _r(ltas_a, ltas_b)


def hf_share(x: np.ndarray, rate: int, above_hz: float = 8000.0) -> float:
    """Percent of the energy above `above_hz`."""
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    total = spec.sum()
    return 100.0 * float(spec[freqs > above_hz].sum() / total) if total > 0 else 0.0


def join_level_db(x: np.ndarray, change: np.ndarray, window: int, overlap: int) -> float:
    """Change level (relative to x) at window overlaps against the rest (dB).

    nan with a single window (there is no join).
    """
    hop = window - overlap
    joins = np.zeros(change.size, dtype=bool)
    start = hop
    while start + overlap <= change.size:
        joins[start:start + overlap] = True
        start += hop
    if not joins.any() or joins.all():
        return float("nan")
    d2, x2 = change.astype(np.float64) ** 2, x.astype(np.float64) ** 2
    at_joins = (d2[joins].sum() + 1e-30) / (x2[joins].sum() + 1e-30)
    elsewhere = (d2[~joins].sum() + 1e-30) / (x2[~joins].sum() + 1e-30)
    return float(10.0 * np.log10(at_joins / elsewhere))


@dataclass(frozen=True)
class Comparison:
    """The measures of one dream against its input (see the module docstring)."""

    logmel_r: float
    onset_r: float
    retain: float
    change_db: float
    hf_in: float
    hf_out: float
    new_line_db: float
    new_line_hz: float
    join_db: float


def compare(x: np.ndarray, y: np.ndarray, rate: int, window: int = 0,
            overlap: int = 0) -> Comparison:
    """Measures dream `y` `[T]` against input `x` `[T]` at `rate` Hz."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    mx, my = _power_mel(x, rate), _power_mel(y, rate)
    floor = 10.0 * math.log10(mx.max() + 1e-30) - FLOOR_DB
    dx, dy = _db(mx, floor), _db(my, floor)
    change = y - x
    rms_x = math.sqrt(float(np.mean(x ** 2))) + 1e-30
    line, line_hz = new_line_db(x, y, rate)
    return Comparison(
        logmel_r=_r(dx, dy), onset_r=_r(onset_envelope(dx), onset_envelope(dy)),
        retain=float(y @ x / (x @ x + 1e-30)),
        change_db=20.0 * math.log10(math.sqrt(float(np.mean(change ** 2))) / rms_x + 1e-30),
        hf_in=hf_share(x, rate), hf_out=hf_share(y, rate),
        new_line_db=line, new_line_hz=line_hz,
        join_db=join_level_db(x, change, window, overlap) if window else float("nan"))
