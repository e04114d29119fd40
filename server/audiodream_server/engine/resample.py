"""Anti-aliased resampling between the input rate and the model rate.

scipy's polyphase resampler (Kaiser-windowed FIR) by the reduced ratio
up/down = to/from. Its output has ceil(T * up / down) samples; `resample`
returns exactly `length` samples when asked, so round trips keep lengths.
The FIR is scipy's own default design (Kaiser, beta 5, 10 taps per phase),
made once per ratio: designing it cost more than filtering a stream's block.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.signal import firwin, resample_poly


@lru_cache(maxsize=32)
def _fir(up: int, down: int, dtype: str) -> np.ndarray:
    """The filter resample_poly designs for up/down, in the signal's dtype as it would
    (it scales it by `up` itself)."""
    most = max(up, down)
    fir = firwin(2 * 10 * most + 1, 1.0 / most, window=("kaiser", 5.0)).astype(dtype)
    fir.setflags(write=False)
    return fir


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
        up, down = to_rate // g, from_rate // g
        out = resample_poly(audio, up, down, axis=-1,
                            window=_fir(up, down, audio.dtype.str)).astype(np.float32)
    if out.shape[-1] >= length:
        return np.ascontiguousarray(out[..., :length])
    pad = [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])]
    return np.pad(out, pad)
