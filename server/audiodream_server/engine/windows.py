"""Fixed-length models: cut a long signal into overlapping windows and join them back.

Windows of W samples start every hop = W - O samples (O = overlap); the end is
zero-padded so the last window is whole. The dreamed *changes* of neighbouring
windows are joined with a raised-cosine crossfade over the O overlapping samples:

    fade_in(t)  = sin^2(pi/2 * (t + 1/2) / O),   t = 0..O-1
    fade_out(t) = cos^2(pi/2 * (t + 1/2) / O)
    fade_in + fade_out = 1

The fades sum to one in amplitude, not in power: neighbouring windows hear the
same sound and their changes there are strongly correlated, so equal-power fades
(sin, cos) made every join about 1.8 dB louder than mid-window. Both fades are
smooth, so joins cannot click.
"""

from __future__ import annotations

import math

import torch


def plan(length: int, window: int, overlap: int) -> tuple[int, int]:
    """Returns `(count, hop)` for a signal of `length` samples."""
    hop = window - overlap
    if length <= window:
        return 1, hop
    return 1 + math.ceil((length - window) / hop), hop


def split(signal: torch.Tensor, window: int, overlap: int) -> torch.Tensor:
    """`[C, T]` -> `[C * n, W]`, window-major within each channel."""
    channels, length = signal.shape
    count, hop = plan(length, window, overlap)
    padded = torch.nn.functional.pad(signal, (0, (count - 1) * hop + window - length))
    frames = padded.unfold(1, window, hop)  # [C, n, W]
    return frames.reshape(channels * count, window).contiguous()


def crossfade_weights(count: int, window: int, overlap: int, device=None) -> torch.Tensor:
    """`[n, W]` weights: fades in except on the first window, out except on the last."""
    t = (torch.arange(overlap, dtype=torch.float32, device=device) + 0.5) / overlap
    fade_in = torch.sin(0.5 * math.pi * t) ** 2
    fade_out = 1.0 - fade_in
    weights = torch.ones(count, window, device=device)
    if count > 1:
        weights[1:, :overlap] = fade_in
        weights[:-1, window - overlap:] = fade_out
    return weights


def overlap_add(frames: torch.Tensor, channels: int, length: int, overlap: int) -> torch.Tensor:
    """Inverse of `split` for dreamed changes: `[C * n, W]` -> `[C, T]`, crossfaded joins."""
    window = frames.shape[-1]
    count, hop = plan(length, window, overlap)
    weighted = frames.reshape(channels, count, window) * crossfade_weights(
        count, window, overlap, frames.device)
    out = frames.new_zeros(channels, (count - 1) * hop + window)
    # A loop of slice-adds over the n windows: much cheaper on a CPU than fold.
    for k in range(count):
        out[:, k * hop:k * hop + window] += weighted[:, k]
    return out[:, :length]


def agree(frames: torch.Tensor, channels: int, overlap: int) -> torch.Tensor:
    """Makes neighbouring windows `[C * n, W]` equal where they overlap, in place.

    Each overlap becomes the crossfade of the two windows there, the value
    `overlap_add` would give: the same as split(overlap_add(frames)), touching
    only the overlaps.
    """
    window = frames.shape[-1]
    view = frames.view(channels, -1, window)
    if view.shape[1] < 2 or overlap == 0:
        return frames
    fade_in = crossfade_weights(2, window, overlap, frames.device)[1, :overlap]
    left, right = view[:, :-1, window - overlap:], view[:, 1:, :overlap]
    blended = right * fade_in + left * (1.0 - fade_in)
    left.copy_(blended)
    right.copy_(blended)
    return frames
