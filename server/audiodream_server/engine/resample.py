"""Anti-aliased resampling between the input rate and the model rate.

scipy's polyphase resampler (Kaiser-windowed FIR) by the reduced ratio
up/down = to/from. Its output has ceil(T * up / down) samples; `resample`
returns exactly `length` samples when asked, so round trips keep lengths.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import resample_poly


def resampled_length(length: int, from_rate: int, to_rate: int) -> int:
    return math.ceil(length * to_rate / from_rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int,
             length: int | None = None) -> np.ndarray:
    """Resamples `[C, T]` float32 along time.

    Args:
        audio: `[C, T]`.
        from_rate, to_rate: Hz.
        length: output samples (trimmed or zero-padded); default ceil(T * to / from).
    """
    if length is None:
        length = resampled_length(audio.shape[-1], from_rate, to_rate)
    if from_rate == to_rate:
        out = audio
    else:
        g = math.gcd(from_rate, to_rate)
        out = resample_poly(audio, to_rate // g, from_rate // g, axis=-1).astype(np.float32)
    if out.shape[-1] >= length:
        return np.ascontiguousarray(out[..., :length])
    pad = [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])]
    return np.pad(out, pad)
