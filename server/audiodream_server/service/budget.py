"""Memory and size estimates, checked before any work starts.

Each check refuses a request that passes the per-field ranges but would use
too much memory, produce a reply too big to send, or cannot be computed at all
(a filter STFT longer than the sound, an octave shorter than the model's
receptive field). Refusals are RESOURCE_EXHAUSTED or OUT_OF_RANGE and say which
limit was hit and how to get under it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from audiodream_proto.v1 import audiodream_pb2 as pb

from ..engine import audio as audio_io
from ..engine import windows
from ..engine.params import DreamParams, Limits
from ..errors import OutOfRange, ResourceExhausted
from ..models.registry import LoadedModel

MB = 1024 * 1024
# Peak bytes the filter update rules' STFTs may take in one pass.
STFT_BUDGET = 768 * MB
# Bytes per output sample in each format, worst case (FLAC is PCM_24; OGG is small).
REPLY_BYTES = {"pcm": 4.0, "wav": 4.0, "flac": 3.1, "ogg": 0.5}
REPLY_OVERHEAD = 64 * 1024  # features, params, timing: a generous allowance
STFT_RULES = ("hardcut", "hardcut_add", "target_filter", "flip")
PROBE_SECONDS = 1.0
# The octave resampler works with ratios of denominator <= 32: a coarser octave rounds to 0.
MAX_SHRINK = 32  # octaves shorter than this are test-run once before the dream


def check_request(request: pb.DreamRequest, limits: Limits, max_message_bytes: int) -> None:
    """Checks on the raw request, before anything is decoded."""
    audio = request.audio
    fmt = request.params.output_format or "pcm"
    kind = audio.WhichOneof("data")
    if kind == "pcm" and audio.channels and audio.sample_rate:
        check_reply(len(audio.pcm) // (4 * audio.channels), audio.channels, fmt,
                    max_message_bytes)
    elif kind == "encoded":
        declared = audio_io.declared_shape(audio.encoded)
        if declared is not None:
            rate, channels, frames = declared
            audio_io.check_format(rate, channels, limits)
            if frames <= limits.max_seconds * rate:  # longer is refused by `decode`
                check_reply(frames, channels, fmt, max_message_bytes)


def check_reply(frames: int, channels: int, fmt: str, max_message_bytes: int) -> None:
    """Refuses a dream whose reply could not be sent under the message limit."""
    size = frames * channels * REPLY_BYTES.get(fmt, 4.0) + REPLY_OVERHEAD
    if size > max_message_bytes:
        raise ResourceExhausted(
            f"the reply would be about {size / MB:.0f} MB as {fmt}, over this server's "
            f"{max_message_bytes / MB:.0f} MB message limit; ask for output_format 'ogg' or "
            "'flac', or send shorter audio or fewer channels")


def check_dream(audio: np.ndarray, rate: int, params: DreamParams, model: LoadedModel,
                max_message_bytes: int, max_batch: int = 32) -> None:
    """Checks a decoded, validated request against the model it will run on."""
    channels, frames = audio.shape
    check_reply(frames, channels, params.output_format, max_message_bytes)
    spec = model.spec
    coarsest = params.octave_scale ** (params.octaves - 1)
    if coarsest > MAX_SHRINK:
        raise OutOfRange(f"{params.octaves} octaves at scale {params.octave_scale:g} shrink the "
                         f"sound {coarsest:.0f}x; at most {MAX_SHRINK}x is possible: use fewer "
                         "octaves or a smaller octave_scale")
    length = max(1, round(frames * spec.sample_rate / rate))
    shortest = min(_octave_length(length, params.octave_scale ** k)
                   for k in range(params.octaves))
    if spec.fixed_input_samples:
        # Windowed models: each pass holds at most `max_batch` windows.
        window = spec.fixed_input_samples
        count = windows.plan(length, window, round(window * params.window_overlap))[0]
        per_pass = min(channels * count, max_batch)
        check_stft(params, spec.fixed_input_samples, per_pass)
    else:
        check_stft(params, length, channels, shortest)
        if shortest < PROBE_SECONDS * spec.sample_rate:
            probe(model, shortest, params)


def check_stft(params: DreamParams, samples: int, items: int, shortest: int | None = None
               ) -> None:
    """The filter update rules' STFTs: computable on `samples`, and within the memory budget."""
    if params.update not in STFT_RULES:
        return
    n_fft, hop = params.n_fft, params.hop
    if hop >= n_fft:
        raise OutOfRange(f"hop {hop} must be below n_fft {n_fft} for update "
                         f"{params.update!r}: the inverse STFT needs overlapping frames "
                         "(n_fft/4 is usual)")
    shortest = samples if shortest is None else shortest
    if shortest <= n_fft // 2:
        raise OutOfRange(f"n_fft {n_fft} is too long for a sound of {shortest} samples at the "
                         f"model rate (at most {2 * shortest - 2} here); use a smaller n_fft "
                         "or longer audio")
    frames = samples // hop + 1
    bins = n_fft // 2 + 1
    # Complex spectra of the signal, the mask source and their product, the mask
    # itself, plus the framed real input and the overlap-add buffer.
    need = items * frames * (bins * (3 * 8 + 4) + 2 * n_fft * 4)
    if need > STFT_BUDGET:
        least = _least_hop(samples, items, n_fft, bins)
        advice = (f"use hop >= {least}, a smaller n_fft or shorter audio" if least < n_fft
                  else "use a smaller n_fft or shorter audio")
        raise ResourceExhausted(
            f"update {params.update!r} with n_fft {n_fft} and hop {hop} needs about "
            f"{need / MB:.0f} MB for its STFTs, over this server's {STFT_BUDGET / MB:.0f} MB "
            f"per request; {advice}")


def _least_hop(samples: int, items: int, n_fft: int, bins: int) -> int:
    per_frame = items * (bins * (3 * 8 + 4) + 2 * n_fft * 4)
    frames = max(1, STFT_BUDGET // per_frame - 1)
    return max(1, math.ceil(samples / frames))


def probe(model: LoadedModel, samples: int, params: DreamParams) -> None:
    """Runs the model once on `samples` of silence: too short for it is OUT_OF_RANGE."""
    try:
        with torch.no_grad():
            model.module.features(torch.zeros(1, samples, device=model.device),
                                  [sel.name for sel in params.layers])
    except Exception:  # noqa: BLE001 - any failure here means "too short for this model"
        what = (f"its shortest octave ({params.octaves} octaves, scale "
                f"{params.octave_scale:g}) is" if params.octaves > 1 else "it is")
        raise OutOfRange(f"the sound is too short for model {model.spec.name}: {what} "
                         f"{samples} samples at {model.spec.sample_rate} Hz; send longer audio"
                         + (" or use fewer octaves" if params.octaves > 1 else "")) from None


def _octave_length(length: int, factor: float) -> int:
    # Mirrors the pipeline's rounding closely enough for a lower bound.
    return max(1, math.floor(length / factor))
