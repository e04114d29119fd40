"""Settings of one live stream, validated once when the stream opens."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine import audio as audio_io
from ..engine.params import DEFAULT_LIMITS, DreamParams, Limits
from ..errors import InvalidArgument, OutOfRange
from ..models.spec import ModelSpec

MODES = ("process", "generate", "morph")
MORPH_WINDOW_BLOCKS = 4  # morph mode's default context: no gradient, a short context does
MIN_BLOCK, MAX_BLOCK = 64, 16384
MAX_WINDOW_SECONDS = 10.0
# Streams dream a little per block; 4 iterations per block is the default.
# A sample is dreamed only while it is in the context before it is heard: with
# delay D it gets K * (D / B + 1) steps (8 at the defaults) against an offline
# dream's 20, so a stream's steps are larger (a change of about -10 dB either way).
STREAM_DEFAULTS = DreamParams(iterations=4, step_size=0.06)


@dataclass(frozen=True)
class StreamSettings:
    """How a stream is cut and timed. Frames are at the client's rate.

    Attributes:
        sample_rate, channels: the client's audio format.
        block_size: frames per chunk, in and out.
        window: context dreamed each block (0 = the model's window). Shorter
            contexts cost proportionally less; a fixed-window model must accept
            them (checked when the stream opens).
        mode: "process" (dream the input), "generate" (free-running) or "morph"
            (toward a target's code; its default window is 4 blocks).
        delay: output delay = reported latency (0 = block_size).
        offline: never drop iterations to keep up with real time.
    """

    sample_rate: int
    channels: int
    block_size: int = 2048
    window: int = 0
    mode: str = "process"
    delay: int = 0
    offline: bool = False

    def resolve(self, spec: ModelSpec, limits: Limits = DEFAULT_LIMITS) -> "StreamSettings":
        """Checks against `spec` and fills window and delay. Raises on bad values."""
        audio_io.check_format(self.sample_rate, self.channels, limits)
        if self.mode not in MODES:
            raise InvalidArgument(f"unknown mode {self.mode!r}; allowed: {', '.join(MODES)}")
        if not MIN_BLOCK <= self.block_size <= MAX_BLOCK:
            raise OutOfRange(f"block_size must be in {MIN_BLOCK}..{MAX_BLOCK} frames, "
                             f"got {self.block_size}")
        if spec.fixed_input_samples:
            # A fixed-window model hears at most its own window.
            natural = round(spec.fixed_input_samples * self.sample_rate / spec.sample_rate)
            longest = natural
        else:
            natural = self.sample_rate
            longest = int(MAX_WINDOW_SECONDS * self.sample_rate)
        default = min(natural, MORPH_WINDOW_BLOCKS * self.block_size) \
            if self.mode == "morph" else natural
        window = self.window or default
        if not 2 * self.block_size <= window <= longest:
            raise OutOfRange(f"window must be in {2 * self.block_size}..{longest} frames "
                             f"(2 blocks .. the model's window or {MAX_WINDOW_SECONDS:g} s), "
                             f"got {window}")
        delay = self.delay or self.block_size
        if not self.block_size <= delay <= window - self.block_size:
            raise OutOfRange(f"delay must be in {self.block_size}..{window - self.block_size} "
                             f"frames (block_size .. window - block_size), got {delay}")
        return replace(self, window=window, delay=delay)

    @property
    def block_seconds(self) -> float:
        return self.block_size / self.sample_rate
