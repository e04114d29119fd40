"""Test sounds made on the fly (no files needed)."""

from __future__ import annotations

import numpy as np


def tone(seconds: float, rate: int, channels: int = 1, freq: float = 220.0,
         seed: int = 0) -> np.ndarray:
    """A test sound `[T, C]`: a decaying harmonic tone plus a little noise, peak < 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * rate))) / rate
    cols = []
    for c in range(channels):
        f = freq * (1 + 0.5 * c)
        x = sum(0.5 ** h * np.sin(2 * np.pi * f * (h + 1) * t) for h in range(5))
        x = x * (0.6 + 0.4 * np.cos(2 * np.pi * 1.5 * t)) + 0.02 * rng.standard_normal(t.size)
        cols.append(0.4 * x / np.abs(x).max())
    return np.stack(cols, axis=1).astype(np.float32)
