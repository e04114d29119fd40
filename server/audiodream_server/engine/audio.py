"""Audio in and out: decoding, validation, encoding.

Inside the engine a sound is a float32 numpy array `[C, T]` (channels first, as
torch wants it) plus its rate in Hz.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from ..errors import InvalidArgument, OutOfRange, ResourceExhausted
from .params import Limits, DEFAULT_LIMITS

# Larger samples are a mistake or an attack: squared in the objectives, they overflow float32.
MAX_AMPLITUDE = 1000.0
ENCODINGS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "ogg": ("OGG", "VORBIS")}


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[np.ndarray, int]:
    """Decodes a sound file (WAV, FLAC, OGG, AIFF...) to `([C, T] float32, rate)`.

    The header is read first: a file whose declared rate, channels or length is
    outside `limits` is refused before a single sample is decoded, and decoding
    never reads past the longest sound the limits allow (compressed silence
    would otherwise expand to gigabytes).
    """
    if not data:
        raise InvalidArgument("audio is empty: send a sound file or PCM samples")
    try:
        sound = sf.SoundFile(io.BytesIO(data))
    except Exception as exc:  # soundfile raises several types for bad data
        raise InvalidArgument(f"cannot decode the audio file ({_reason(exc)}); "
                              "send WAV, FLAC or OGG, or raw float32 PCM") from None
    with sound:
        rate, channels, frames = int(sound.samplerate), int(sound.channels), int(sound.frames)
        check_format(rate, channels, limits)
        most = int(limits.max_seconds * rate)
        if frames > most:
            raise ResourceExhausted(f"audio file declares {frames / rate:.1f} s; this server "
                                    f"accepts at most {limits.max_seconds:g} s per request: "
                                    "send a shorter excerpt")
        try:
            samples = sound.read(frames=max(frames, 0), dtype="float32", always_2d=True)
        except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
            raise InvalidArgument(f"cannot decode the audio file ({_reason(exc)}); "
                                  "send WAV, FLAC or OGG, or raw float32 PCM") from None
    return np.ascontiguousarray(samples.T), rate


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without the Python object it was reading."""
    return str(getattr(exc, "error_string", None) or exc)


def declared_shape(data: bytes) -> tuple[int, int, int] | None:
    """`(rate, channels, frames)` from a sound file's header, or None if unreadable."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as sound:
            return int(sound.samplerate), int(sound.channels), int(sound.frames)
    except Exception:  # noqa: BLE001 - `decode` reports what is wrong
        return None


def from_pcm(data: bytes, sample_rate: int, channels: int,
             limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Interleaved float32 little-endian bytes -> `[C, T]`."""
    if channels == 0:
        raise InvalidArgument("PCM audio needs its channel count (channels = 1..8)")
    check_format(sample_rate, channels, limits)
    if not data:
        raise InvalidArgument("audio is empty: send at least one frame of PCM samples")
    frame_bytes = 4 * channels
    if len(data) % frame_bytes:
        raise InvalidArgument(f"PCM is {len(data)} bytes, not a multiple of 4 x {channels} "
                              "channels: expected float32 little-endian interleaved samples")
    seconds = len(data) / frame_bytes / sample_rate
    if seconds > limits.max_seconds:
        raise ResourceExhausted(f"audio is {seconds:.1f} s long; this server accepts at most "
                                f"{limits.max_seconds:g} s per request: send a shorter excerpt")
    samples = np.frombuffer(data, dtype="<f4").reshape(-1, channels)
    return np.ascontiguousarray(samples.T, dtype=np.float32)


def check_format(sample_rate: int, channels: int, limits: Limits = DEFAULT_LIMITS) -> None:
    if sample_rate == 0:
        raise InvalidArgument("PCM audio needs its sample_rate in Hz "
                              f"({limits.min_rate}..{limits.max_rate})")
    if not limits.min_rate <= sample_rate <= limits.max_rate:
        raise OutOfRange(f"sample rate {sample_rate} Hz is outside "
                         f"{limits.min_rate}..{limits.max_rate} Hz")
    if not 1 <= channels <= limits.max_channels:
        raise OutOfRange(f"{channels} channels is outside 1..{limits.max_channels}")


def validate(audio: np.ndarray, sample_rate: int, limits: Limits = DEFAULT_LIMITS,
             what: str = "audio") -> None:
    """Checks rate, channels, length and that every sample is finite."""
    check_format(sample_rate, audio.shape[0], limits)
    if audio.shape[1] == 0:
        raise InvalidArgument(f"{what} is empty: it has no samples")
    seconds = audio.shape[1] / sample_rate
    if seconds > limits.max_seconds:
        raise ResourceExhausted(f"{what} is {seconds:.1f} s long; this server accepts at most "
                                f"{limits.max_seconds:g} s per request")
    check_samples(audio, what)


def check_samples(audio: np.ndarray, what: str = "audio") -> None:
    """Every sample finite and within +-MAX_AMPLITUDE (sound is normally within +-1)."""
    if not np.isfinite(audio).all():
        bad = int((~np.isfinite(audio)).sum())
        raise InvalidArgument(f"{what} has {bad} NaN or infinite samples; all must be finite")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > MAX_AMPLITUDE:
        raise OutOfRange(f"{what} has samples up to {peak:.3g}; this server accepts at most "
                         f"+-{MAX_AMPLITUDE:g} (float audio is normally within +-1): "
                         "scale it down")


def encode(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """`[C, T]` -> a sound file (fmt "wav", "flac" or "ogg")."""
    container, subtype = ENCODINGS[fmt]
    buf = io.BytesIO()
    sf.write(buf, audio.T, sample_rate, format=container, subtype=subtype)
    return buf.getvalue()


def to_pcm(audio: np.ndarray) -> bytes:
    """`[C, T]` -> interleaved float32 little-endian bytes."""
    return np.ascontiguousarray(audio.T, dtype="<f4").tobytes()
