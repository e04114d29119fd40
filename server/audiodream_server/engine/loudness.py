"""Output level: how loud a dream comes back (SPEC §2.1 step 7).

A dream changes the level of what it dreams, and by how much depends on the
input's own level (the sound benchmark's `loudness` group): a quiet input came
back up to 3 dB quieter, a normal one up to 4 dB louder and a loud one pressed
against full scale. The result is therefore brought to a level chosen by
`loudness`, with one gain g over the whole sound (never clipping, never a
per-block gain that would pump):

    rms        g = rms(input) / rms(out)          keep the input's loudness [default]
    peak       g = peak(input) / peak(out)        keep the input's peak
    normalize  g = ceiling / peak(out)            peak at the ceiling
    off        g = 1                              the dream's own level

then, in every mode, the bound  g <= ceiling / peak(out),  with
ceiling = 10^(ceiling_db / 20) (0 dBFS = 1.0 [default]; -1 dBFS leaves 1 dB of
headroom). A silent input or output has no level to match: g = 1 there.
At 0 iterations the output is the input, so g = 1 exactly and the input comes
back bit for bit (unless its own peak is over the ceiling).

>>> import numpy as np
>>> x = np.array([[0.1, -0.2, 0.1]], np.float32)
>>> y, g = apply_loudness(2 * x, x, "rms", 0.0)
>>> round(g, 6), bool(np.allclose(y, x))
(0.5, True)
>>> round(apply_loudness(x, x, "normalize", -6.0)[1], 3)
2.506
"""

from __future__ import annotations

from typing import Callable

import numpy as np

def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


def _peak(a: np.ndarray) -> float:
    return float(np.abs(a).max()) if a.size else 0.0


# The modes by name, each (out, reference, ceiling in dBFS) -> (wanted level,
# out's level): the gain is their ratio. The names `loudness` accepts are the keys.
LOUDNESS: dict[str, Callable[[np.ndarray, np.ndarray, float], tuple[float, float]]] = {
    "rms": lambda out, ref, ceiling_db: (_rms(ref), _rms(out)),
    "peak": lambda out, ref, ceiling_db: (_peak(ref), _peak(out)),
    "normalize": lambda out, ref, ceiling_db: (10.0 ** (ceiling_db / 20.0), _peak(out)),
    "off": lambda out, ref, ceiling_db: (1.0, 1.0),
}


def loudness_gain(out: np.ndarray, reference: np.ndarray, mode: str, ceiling_db: float) -> float:
    """The one gain for `out` (any shape) given the input `reference`; see the module doc."""
    if mode not in LOUDNESS:
        raise ValueError(f"unknown loudness {mode!r}; allowed: {', '.join(LOUDNESS)}")
    num, den = LOUDNESS[mode](out, reference, ceiling_db)
    gain = num / den if num > 0.0 and den > 0.0 else 1.0
    ceiling = 10.0 ** (ceiling_db / 20.0)
    peak_out = _peak(out)
    if peak_out * gain > ceiling:
        gain = ceiling / peak_out
    return gain


def apply_loudness(out: np.ndarray, reference: np.ndarray, mode: str,
                   ceiling_db: float) -> tuple[np.ndarray, float]:
    """(`out` times its gain, the gain); `out` itself when the gain is exactly 1."""
    gain = loudness_gain(out, reference, mode, ceiling_db)
    if gain == 1.0:
        return out, gain
    return out * np.float32(gain), gain
