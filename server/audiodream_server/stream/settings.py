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
MAX_SLACK_SECONDS = 10.0
# Streams dream a little per block; 4 iterations per block is the default.
# A sample is dreamed only while it is in the context before it is heard: with
# delay D it gets K * (D / B + 1) steps (8 at the defaults) against an offline
# dream's 20, so a stream's steps are larger (a change of about -10 dB either way).
STREAM_DEFAULTS = DreamParams(iterations=4, step_size=0.06)
# The context dreamed per block when the client leaves `window` at 0: a sample
# is changed only during the D + B frames before it is heard, so a longer
# context adds what the network hears around it, at a cost proportional to its
# length (chosen from bench/stream_bench.py and bench/sound_bench.py, README).
STREAM_CONTEXT_SECONDS = 0.25
# Time allowed for a reply to reach the client (and the client's worker to
# wake), when the client does not say: loopback measured 0.2-0.7 ms.
TRANSPORT_SECONDS = 0.003


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
        slack: frames the client can wait, after a block is complete, for its
            reply before it plays a gap (its pre-roll; 0 = block_size).
        transport_seconds: the client's round trip beyond the server's work
            (0 = TRANSPORT_SECONDS).
        context_chosen: set by `resolve`: the window is the server's default
            context, not the client's choice.
    """

    sample_rate: int
    channels: int
    block_size: int = 2048
    window: int = 0
    mode: str = "process"
    delay: int = 0
    offline: bool = False
    slack: int = 0
    transport_seconds: float = 0.0
    context_chosen: bool = False

    def resolve(self, spec: ModelSpec, limits: Limits = DEFAULT_LIMITS,
                own_window: bool = False) -> "StreamSettings":
        """Checks against `spec` and fills window and delay. Raises on bad values.

        Args:
            own_window: with window 0, use the model's window instead of the
                default context (for a model that cannot dream a shorter one).
        """
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
        delay = self.delay or self.block_size
        # Process mode's default context is short (a sample is changed only while
        # it waits to be heard); generate mode's loop is the model's window.
        chosen = not self.window and not own_window and self.mode == "process"
        if self.window:
            window = self.window
        elif chosen:
            window = min(longest, max(2 * self.block_size, delay + self.block_size,
                                      round(STREAM_CONTEXT_SECONDS * self.sample_rate)))
        elif self.mode == "morph":
            window = min(natural, MORPH_WINDOW_BLOCKS * self.block_size)
        else:
            window = natural
        if not 2 * self.block_size <= window <= longest:
            raise OutOfRange(f"window must be in {2 * self.block_size}..{longest} frames "
                             f"(2 blocks .. the model's window or {MAX_WINDOW_SECONDS:g} s), "
                             f"got {window}")
        if not self.block_size <= delay <= window - self.block_size:
            raise OutOfRange(f"delay must be in {self.block_size}..{window - self.block_size} "
                             f"frames (block_size .. window - block_size), got {delay}")
        if self.slack < 0 or self.slack > MAX_SLACK_SECONDS * self.sample_rate:
            raise OutOfRange(f"slack must be in 0..{int(MAX_SLACK_SECONDS * self.sample_rate)} "
                             f"frames ({MAX_SLACK_SECONDS:g} s), got {self.slack}")
        if not 0.0 <= self.transport_seconds <= MAX_SLACK_SECONDS:
            raise OutOfRange(f"transport_ms must be in 0..{MAX_SLACK_SECONDS * 1000:g}, got "
                             f"{self.transport_seconds * 1000:g}")
        return replace(self, window=window, delay=delay, context_chosen=chosen)

    @property
    def block_seconds(self) -> float:
        return self.block_size / self.sample_rate

    @property
    def budget_seconds(self) -> float:
        """How long after a block arrives its reply may take to leave the server:

            budget = max(B / 10, min(slack - transport, B))    (as durations)

        The reply must reach the client before its slack runs out, and the
        block's work must end within one block period whatever the slack, or
        the next block would wait behind it and the stream would fall behind
        for good (a slack longer than a block absorbs jitter, not more work)."""
        slack = (self.slack or self.block_size) / self.sample_rate
        transport = self.transport_seconds or TRANSPORT_SECONDS
        return max(0.1 * self.block_seconds, min(slack - transport, self.block_seconds))
