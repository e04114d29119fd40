"""Dreaming a sound file of any size the server accepts: transfer format, or segments.

gRPC carries each request and reply as one message under a size limit (64 MiB
by default on both ends). A 5-minute stereo 48 kHz song is 115 MB as float32
PCM, so the reply alone would not fit. `dream_file` picks, in this order:

1. one request with the file as it is and a float32 PCM reply, when both fit;
2. one request with a FLAC reply (24-bit, lossless for any 16- or 24-bit
   source), when that fits;
3. otherwise segments of the input as float32 PCM, each small enough to fit
   both ways, overlapping by `OVERLAP_SECONDS`. Each segment is dreamed at
   the dream's own level (`loudness: off`; its reported bound gain g_k is
   undone), its change  change_k = out_k / g_k - in_k  is taken, and the
   changes are joined by crossfades that sum to one over the overlaps,

       change(t) = w(t) * change_a(t) + (1 - w(t)) * change_b(t),
       w(t) = cos^2(pi/2 * (t - t0) / overlap)      over the overlap,

   added to the untouched input, and the whole result gets one gain by the
   request's `loudness` and `ceiling_db`, exactly as the server's engine
   applies them (`audiodream_server/engine/loudness.py`), so that segments
   cannot come back at different levels.

Segments need the input as the start (`init` input, the default): with another
start the change depends on a signal the client never sees. Loss and features
of a segmented dream are the segments' own, averaged weighted by length (the
output's RMS times the final gain).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import soundfile as sf

from .client import DreamOutput, Features

# Bytes per sample of each reply format, worst case (the server's own estimates).
REPLY_BYTES = {"pcm": 4.0, "flac": 3.1}
OVERHEAD = 256 * 1024  # parameters, features, timing, protobuf framing
OVERLAP_SECONDS = 4.0  # several model windows, so both sides of a join heard context
LOUDNESS_MODES = ("rms", "peak", "normalize", "off")


def plan(size_bytes: int, frames: int, channels: int, limit: int) -> str:
    """'pcm', 'flac' (one request) or 'segments', for a file of `size_bytes`.

    >>> plan(10_000_000, 2_000_000, 2, 64 << 20)
    'pcm'
    >>> plan(57_600_000, 14_400_000, 2, 64 << 20)
    'segments'
    >>> plan(40_000_000, 10_000_000, 2, 64 << 20)
    'flac'
    """
    if size_bytes + OVERHEAD <= limit:
        for fmt, per_sample in REPLY_BYTES.items():
            if frames * channels * per_sample + OVERHEAD <= limit:
                return fmt
    return "segments"


def segment_frames(channels: int, limit: int) -> int:
    """Most frames per segment so that float32 PCM fits the limit both ways."""
    return max(1, (limit - OVERHEAD) // (4 * channels))


def dream_file(client, path: str, *, progress=None, **kwargs) -> DreamOutput:
    """Dreams the sound file at `path`; `kwargs` as for `Client.dream`."""
    limit = getattr(client, "max_message_bytes", None)
    if limit is None:  # in-process: no message to fit
        return client.dream(path, progress=progress, **kwargs)
    info = sf.info(path)
    how = plan(os.path.getsize(path), info.frames, info.channels, limit)
    if how != "segments":
        kwargs["output_format"] = kwargs.get("output_format") or how  # the caller's wins
        return client.dream(path, progress=progress, **kwargs)
    return dream_segments(client, path, segment_frames(info.channels, limit),
                          progress=progress, **kwargs)


def dream_segments(client, path: str, frames_per_segment: int, *, progress=None,
                   **kwargs) -> DreamOutput:
    """Dreams `path` in overlapping segments of at most `frames_per_segment` frames."""
    if kwargs.get("init") not in (None, "", "input"):
        raise ValueError(f"{path} is too large for one message, and only a dream that starts "
                         "from the input (--init input) can be dreamed in segments; send a "
                         "shorter file or raise the message limit (--max-message-mb)")
    if kwargs.pop("output", None) == "change":
        raise ValueError(f"{path} is too large for one message; --change-only works on "
                         "shorter files only (or raise --max-message-mb)")
    loudness = kwargs.pop("loudness", None) or "rms"
    ceiling_db = kwargs.pop("ceiling_db", None)
    ceiling_db = 0.0 if ceiling_db is None else ceiling_db
    if loudness not in LOUDNESS_MODES:
        raise ValueError(f"unknown loudness {loudness!r}; allowed: {', '.join(LOUDNESS_MODES)}")
    kwargs.pop("output_format", None)
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    total = len(audio)
    overlap = min(int(OVERLAP_SECONDS * rate), frames_per_segment // 4)
    starts = _segment_starts(total, frames_per_segment, overlap)
    change = np.zeros_like(audio)
    outputs: list[DreamOutput] = []
    for k, first in enumerate(starts):
        last = min(first + frames_per_segment, total)
        on_step = None if progress is None else _offset_progress(progress, k, len(starts))
        segment = audio[first:last]
        out = client.dream(segment, rate, loudness="off", progress=on_step, **kwargs)
        piece = out.audio.reshape(segment.shape) / np.float32(out.output_gain) - segment
        fade = _fades(last - first, overlap if k > 0 else 0,
                      overlap if k + 1 < len(starts) else 0)
        change[first:last] += piece * fade[:, None]
        outputs.append(out)
    result = audio + change
    gain = _gain(result, audio, loudness, ceiling_db)
    if gain != 1.0:
        result = result * np.float32(gain)
    return _combine(outputs, result.astype(np.float32, copy=False), rate, gain,
                    [min(s + frames_per_segment, total) - s for s in starts])


def _segment_starts(total: int, size: int, overlap: int) -> list[int]:
    """Starts of segments of `size` frames overlapping by `overlap`, covering `total`."""
    if total <= size:
        return [0]
    hop = size - overlap
    count = math.ceil((total - overlap) / hop)
    return [min(k * hop, total - size) for k in range(count)]


def _fades(length: int, fade_in: int, fade_out: int) -> np.ndarray:
    """A gain per frame: cos^2 fades that sum to one with the neighbours' (see the docstring)."""
    w = np.ones(length, np.float32)
    if fade_in:
        w[:fade_in] = np.sin(0.5 * np.pi * (np.arange(fade_in) + 0.5) / fade_in) ** 2
    if fade_out:
        w[length - fade_out:] *= np.cos(0.5 * np.pi * (np.arange(fade_out) + 0.5) / fade_out) ** 2
    return w


def _gain(out: np.ndarray, reference: np.ndarray, mode: str, ceiling_db: float) -> float:
    """The server's loudness rule (engine/loudness.py), for the joined result."""
    def rms(a):
        return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))

    peak_out = float(np.abs(out).max()) if out.size else 0.0
    ceiling = 10.0 ** (ceiling_db / 20.0)
    num, den = {"rms": (rms(reference), rms(out)),
                "peak": (float(np.abs(reference).max()) if reference.size else 0.0, peak_out),
                "normalize": (ceiling, peak_out), "off": (1.0, 1.0)}[mode]
    gain = num / den if num > 0.0 and den > 0.0 else 1.0
    if peak_out * gain > ceiling:
        gain = ceiling / peak_out
    return gain


def _offset_progress(progress, index: int, count: int):
    """Maps a segment's progress onto the whole file's."""
    def update(event):
        progress(SimpleNamespace(iteration=index * event.iterations + event.iteration,
                                 iterations=count * event.iterations, loss=event.loss))
    return update


def _combine(outputs: list[DreamOutput], audio: np.ndarray, rate: int, gain: float,
             lengths: list[int]) -> DreamOutput:
    weights = np.asarray(lengths, np.float64) / sum(lengths)
    pairs = list(zip(weights, outputs, strict=True))

    def mean_features(which: str) -> Features:
        fields = ("rms", "spectral_centroid_hz", "spectral_flatness", "spectral_flux")
        mean = Features(*(float(sum(w * getattr(getattr(o, which), f) for w, o in pairs))
                          for f in fields))
        if which == "output_features":  # the segments' own level, then the final gain
            mean.rms = gain * float(sum(w * o.output_features.rms / o.output_gain
                                        for w, o in pairs))
        return mean

    steps = min(len(o.loss) for o in outputs)
    loss = [float(sum(w * o.loss[i] for w, o in pairs)) for i in range(steps)]
    timing = {key: float(sum(o.timing[key] for o in outputs)) for key in outputs[0].timing}
    first = outputs[0]
    params = type(first.params)()
    params.CopyFrom(first.params)
    params.output = "mix"
    return replace(first, audio=audio, sample_rate=rate, loss=loss,
                   input_features=mean_features("input_features"),
                   output_features=mean_features("output_features"), output_gain=gain,
                   windows=sum(o.windows for o in outputs), timing=timing, params=params)

