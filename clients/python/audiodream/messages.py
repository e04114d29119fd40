"""Request messages from the client's arguments: audio, targets, dream parameters.

Shared by `Client` (Dream, Morph, Classify) and `DreamStream` (StreamConfig,
Control); the parameter keywords are the parameter table's.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np

from audiodream_proto.params import KEYWORDS
from audiodream_proto.v1 import audiodream_pb2 as pb

from .classes import class_targets
from .layers import parse_layer

# DreamParams fields a caller may set by keyword (the parameter table's).
PARAM_FIELDS = KEYWORDS


def dream_params(model: str, layers: Iterable, params: dict) -> pb.DreamParams:
    """DreamParams from keyword arguments; None values are left unset."""
    unknown = set(params) - set(PARAM_FIELDS)
    if unknown:
        raise TypeError(f"unknown dream parameter(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(PARAM_FIELDS)}")
    params = dict(params)
    classes = params.pop("classes", None)
    msg = pb.DreamParams(model=model, **{k: v for k, v in params.items() if v is not None})
    if classes:
        msg.classes.extend(class_targets(classes))
    for layer in layers:
        name, channels, weight = _layer_tuple(layer)
        sel = msg.layers.add(name=name, channels=channels)
        if weight is not None:
            sel.weight = weight
    return msg


def dream_request(audio, sample_rate: int | None, model: str, layers: Iterable,
                  params: dict) -> pb.DreamRequest:
    """Builds a DreamRequest from client-side arguments."""
    return pb.DreamRequest(audio=audio_message(audio, sample_rate),
                           params=dream_params(model, layers, params))


def audio_message(audio, sample_rate: int | None) -> pb.Audio:
    """numpy `[T]`/`[T, C]` + rate, a path, or file bytes -> Audio."""
    if isinstance(audio, (str, os.PathLike)):
        with open(audio, "rb") as f:
            return pb.Audio(encoded=f.read())
    if isinstance(audio, (bytes, bytearray)):
        return pb.Audio(encoded=bytes(audio))
    samples = np.asarray(audio, dtype="<f4")
    if samples.ndim not in (1, 2):
        raise ValueError(f"audio must be [T] or [T, C], got shape {samples.shape}")
    if not sample_rate:
        raise ValueError("numpy audio needs its sample_rate in Hz")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    return pb.Audio(pcm=np.ascontiguousarray(samples).tobytes(), sample_rate=sample_rate,
                    channels=channels)


def target_message(target) -> pb.Audio:
    """A target given as a path, file bytes, or an (array, rate) pair -> Audio."""
    if isinstance(target, tuple):
        return audio_message(*target)
    return audio_message(target, None)


def _layer_tuple(layer) -> tuple[str, Sequence[int], float | None]:
    if isinstance(layer, str):
        return parse_layer(layer)
    if isinstance(layer, dict):
        return layer["name"], list(layer.get("channels", ())), layer.get("weight")
    name, *rest = layer
    channels = list(rest[0]) if rest else []
    weight = rest[1] if len(rest) > 1 else None
    return name, channels, weight
