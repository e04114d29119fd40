"""Low-pass filter applied to the signal after each step (seed 003 §3.4).

Deep layers tend to grow broadband noise; Bisig & Wegner low-pass the waveform
each iteration (12 kHz in their experiment 2). Done in the frequency domain,
which costs O(T log T) instead of a long FIR's O(T * taps):

    X = rfft(x);  X *= H;  x = irfft(X)

H is zero-phase: 1 below the cutoff, 0 above cutoff + width, a raised cosine
between, width = max(cutoff / 8, 200 Hz). The circular wrap of the FFT is
harmless here: the update already treats windows as circular (time jitter).

The high-pass (`highpass_hz`) keeps a dream from adding rumble and DC below a
corner f_c, the same way, with the transition one octave below the corner so
the band above it passes untouched:

    H_hp(f) = 0 for f <= f_c / 2,  1 for f >= f_c,
              (1 - cos(pi * (f - f_c/2) / (f_c/2))) / 2 between   (DC always 0)
"""

from __future__ import annotations

import math

import torch


def response(length: int, sample_rate: int, cutoff_hz: float, device=None) -> torch.Tensor:
    """Magnitude response `[length // 2 + 1]` on the rfft grid."""
    freqs = torch.fft.rfftfreq(length, 1.0 / sample_rate, device=device)
    width = max(cutoff_hz / 8, 200.0)
    ramp = ((freqs - cutoff_hz) / width).clamp(0.0, 1.0)
    return 0.5 * (1.0 + torch.cos(math.pi * ramp))


def lowpass(signal: torch.Tensor, sample_rate: int, cutoff_hz: float) -> torch.Tensor:
    """Low-passes `[..., T]`; a cutoff of 0 or at/above Nyquist returns it unchanged."""
    if cutoff_hz <= 0 or cutoff_hz >= sample_rate / 2:
        return signal
    length = signal.shape[-1]
    gain = response(length, sample_rate, cutoff_hz, signal.device)
    spectrum = torch.fft.rfft(signal, dim=-1) * gain
    return torch.fft.irfft(spectrum, n=length, dim=-1)


def highpass(signal: torch.Tensor, sample_rate: int, cutoff_hz: float) -> torch.Tensor:
    """High-passes `[..., T]` at `cutoff_hz` (see the module docstring); a cutoff of 0
    returns it unchanged.

    The FFT sees the signal followed by its mirror image ([x, reversed x], 2T
    samples), so there is no jump where it wraps: a circular high-pass would
    turn the step between the last and the first sample into a click at both
    ends (measured on a 20 Hz tone under an 80 Hz corner: 0.6-0.8 of its
    amplitude left at the ends, against 0.2 mirrored; a point reflection, which
    also keeps the slope, shifts the level of an oscillating signal at the ends
    and lets up to 0.98 through there in the pass band).
    """
    if cutoff_hz <= 0:
        return signal
    length = signal.shape[-1]
    mirrored = torch.cat([signal, signal.flip(-1)], dim=-1)
    freqs = torch.fft.rfftfreq(2 * length, 1.0 / sample_rate, device=signal.device)
    ramp = ((freqs - cutoff_hz / 2) / (cutoff_hz / 2)).clamp(0.0, 1.0)
    gain = 0.5 * (1.0 - torch.cos(math.pi * ramp))
    spectrum = torch.fft.rfft(mirrored, dim=-1) * gain
    return torch.fft.irfft(spectrum, n=2 * length, dim=-1)[..., :length]
