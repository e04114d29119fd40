"""Resampling pieces of an endless signal onto a fixed grid (for streams).

A stream's audio is one endless signal at the client rate f and, for the model,
the same signal at the model rate g. With g / f = up / down (reduced), client
frame n sits at time n / f and model sample k at k / g, so frame n = m * down
and sample k = m * up are the same instant. scipy's polyphase resampler
(`resample.py`, the same FIR) applied to a segment that starts on such an
instant returns samples on the absolute grid:

    resample_poly(x[s0 : s1], up, down)[j]  =  y[s0 * up / down + j]

exactly as the whole signal's resampling would, wherever the FIR (half length
h = 10 * max(up, down) taps at the common rate up * f, i.e. h / up input
samples) lies inside the segment. So a stream resamples only what is new: a
block of B frames adds about B * up / down model samples, computed from the
block and h / up frames before it; the last few samples, whose FIR reaches
past the newest frame, are provisional and recomputed with the next block.
Before, every block resampled its whole context (about 1 s) twice.

`GridResampler.segment` does the slicing and the alignment for one direction.
"""

from __future__ import annotations

import math

import numpy as np

from .resample import resample


class GridResampler:
    """One direction (from_rate -> to_rate) on absolute sample grids.

    Args:
        from_rate, to_rate: Hz.

    >>> import numpy as np
    >>> r = GridResampler(48000, 44100)
    >>> x = np.random.default_rng(0).standard_normal((1, 9600)).astype(np.float32)
    >>> whole = resample(x, 48000, 44100)
    >>> part = r.segment(x, 0, 4000, 5000)      # model samples 4000..4999 from frames 0..
    >>> bool(np.allclose(part, whole[:, 4000:5000], atol=1e-5))
    True
    """

    def __init__(self, from_rate: int, to_rate: int):
        g = math.gcd(from_rate, to_rate)
        self.from_rate, self.to_rate = from_rate, to_rate
        self.up, self.down = to_rate // g, from_rate // g
        # Input samples the FIR reaches on either side of an output instant, + 1 for rounding.
        self.reach = math.ceil(10 * max(self.up, self.down) / self.up) + 1 \
            if from_rate != to_rate else 0

    def end(self, frames: int) -> int:
        """Output samples wholly before input frame `frames` (ceil(frames * up / down))."""
        return -(-frames * self.up // self.down)

    def segment(self, source: np.ndarray, source_start: int, start: int, stop: int) -> np.ndarray:
        """Output samples `[start, stop)` (absolute indices) from `source` `[C, T]`,
        whose first frame has absolute index `source_start`. Input beyond `source`
        counts as silence (as the whole signal's resampling pads it).

        Returns:
            `[C, stop - start]` float32.
        """
        if self.from_rate == self.to_rate:
            return _slice(source, source_start, start, stop)
        # First input frame the FIR of output `start` needs, moved back onto an
        # instant shared by both grids (a multiple of `down`).
        first = (start * self.down) // self.up - self.reach
        first -= first % self.down
        last = -(-(stop * self.down) // self.up) + self.reach
        piece = _slice(source, source_start, first, last)
        out = resample(piece, self.from_rate, self.to_rate)
        offset = start - first * self.up // self.down
        return np.ascontiguousarray(out[:, offset:offset + stop - start])


def _slice(x: np.ndarray, x_start: int, start: int, stop: int) -> np.ndarray:
    """`x`'s absolute samples `[start, stop)`, zeros where `x` has none."""
    out = np.zeros((x.shape[0], stop - start), np.float32)
    lo, hi = max(start, x_start), min(stop, x_start + x.shape[-1])
    if hi > lo:
        out[:, lo - start:hi - start] = x[:, lo - x_start:hi - x_start]
    return out
