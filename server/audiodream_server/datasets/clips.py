"""Clips: cutting rendered audio into fixed-length, silence-trimmed training examples.

Every data set here is folder-per-class: `OUT_DIR/<class>/<index>.wav`, each a
mono 16-bit WAV of exactly `length` samples. A clip starts where the sound
starts (leading silence removed) and, when the sound is shorter than the clip,
ends in digital silence rather than in whatever followed it in the rendering.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SILENCE_DB = -50.0
"""Level below the clip's peak, in dB, that counts as silence when trimming."""


def to_mono(audio: np.ndarray) -> np.ndarray:
    """`[T]` or `[T, C]` -> `[T]` float64, the mean of the channels."""
    audio = np.asarray(audio, dtype=np.float64)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def audible_span(audio: np.ndarray, silence_db: float = SILENCE_DB) -> tuple[int, int] | None:
    """First and one-past-last sample louder than `silence_db` below the peak.

    Args:
        audio: `[T]` samples.
        silence_db: threshold relative to the peak (negative dB).
    Returns:
        `(start, stop)` or None when the audio is all zeros.

    >>> audible_span(np.array([0.0, 0.0, 0.5, -1.0, 0.0001, 0.0]))
    (2, 4)
    """
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0:
        return None
    loud = np.flatnonzero(np.abs(audio) > peak * 10.0 ** (silence_db / 20.0))
    return int(loud[0]), int(loud[-1]) + 1


def trimmed_clip(audio: np.ndarray, length: int, offset: int = 0,
                 silence_db: float = SILENCE_DB) -> np.ndarray | None:
    """A `length`-sample clip of the audible part of `audio`.

    The audible span is cut out (leading and trailing silence removed); the clip
    starts `offset` samples into it (clamped so the clip stays inside the span
    when the span is long enough) and is zero-padded at the end when the span is
    shorter than `length`.

    Args:
        audio: `[T]` mono samples.
        length: clip length in samples.
        offset: samples to skip into the audible span (for taking a later part
            of a long sound).
        silence_db: see `audible_span`.
    Returns:
        `[length]` float64, or None if `audio` is silent.

    >>> trimmed_clip(np.array([0, 0, 1.0, 2.0, 0]), 3).tolist()
    [1.0, 2.0, 0.0]
    """
    span = audible_span(audio, silence_db)
    if span is None:
        return None
    sound = audio[span[0]:span[1]]
    offset = max(0, min(offset, sound.size - length))
    clip = np.zeros(length, dtype=np.float64)
    part = sound[offset:offset + length]
    clip[:part.size] = part
    return clip


def write_clip(path: Path, clip: np.ndarray, sample_rate: int) -> None:
    """Writes `[T]` audio as 16-bit PCM, scaled down only if it would clip."""
    peak = float(np.max(np.abs(clip)))
    if peak > 0.999:
        clip = clip * (0.999 / peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), clip.astype(np.float32), sample_rate, subtype="PCM_16")
