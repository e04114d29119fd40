"""Client side of the Morph RPC: the request from keyword arguments, the typed result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from audiodream_proto.v1 import audiodream_pb2 as pb


@dataclass
class MorphOutput:
    """A morphed sound in A's layout and rate, and what was measured.

    Attributes:
        amounts: amount per latent frame (mean over channel groups), start to end.
        latent_frames, latent_frame_rate, latent_size: the code's shape
            (frames, frames per second, numbers per frame).
    """

    audio: np.ndarray
    sample_rate: int
    output_gain: float
    model: str
    a_features: object
    b_features: object
    output_features: object
    latent_frames: int
    latent_frame_rate: float
    latent_size: int
    amounts: list[float]
    timing: dict[str, float]
    params: pb.MorphParams


def morph_params(model: str = "", amount: float | None = None, curve: Sequence[float] = (),
                 group_amounts: Sequence[float] = (), interpolation: str = "",
                 phase: str = "", gl_iters: int | None = None, detail: float | None = None,
                 output_format: str = "") -> pb.MorphParams:
    """MorphParams; None and empty values are left unset (the server's defaults)."""
    msg = pb.MorphParams(model=model, curve=list(curve), group_amounts=list(group_amounts),
                         interpolation=interpolation, phase=phase, output_format=output_format)
    for name, value in (("amount", amount), ("gl_iters", gl_iters), ("detail", detail)):
        if value is not None:
            setattr(msg, name, value)
    return msg
