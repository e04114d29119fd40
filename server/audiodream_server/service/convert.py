"""Protobuf <-> engine types. No logic beyond filling defaults and checking shapes."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from audiodream_proto.params import PARAMS
from audiodream_proto.v1 import audiodream_pb2 as pb

from ..engine import audio as audio_io
from ..engine.classify import Scores
from ..engine.features import Features
from ..engine.params import ClassTarget, DreamParams, LayerSelection, Limits
from ..engine.pipeline import DreamResult
from ..errors import InvalidArgument
from ..models.registry import LoadedModel
from ..stream.settings import StreamSettings

_DEFAULTS = DreamParams()
# The table's fields; each is set in a message when it has a value (unset = the
# default, or the settings in force). Proto3 strings and bools have no presence:
# "" and false read as unset.
_FIELDS = pb.DreamParams.DESCRIPTOR.fields_by_name
_SCALARS = tuple(row.name for row in PARAMS)


def _is_set(msg: pb.DreamParams, name: str) -> bool:
    return msg.HasField(name) if _FIELDS[name].has_presence else bool(getattr(msg, name))


def params_from_proto(msg: pb.DreamParams, base: DreamParams = _DEFAULTS) -> DreamParams:
    """Fields set in `msg` override `base` (the defaults, or the settings in force)."""
    values = {name: getattr(msg, name) for name in _SCALARS if _is_set(msg, name)}
    if msg.model:
        values["model"] = msg.model
    if msg.classes:
        values["classes"] = tuple(
            ClassTarget(c.name, c.index if c.HasField("index") else None,
                        c.weight if c.HasField("weight") else 1.0)
            for c in msg.classes)
    if msg.layers:
        values["layers"] = tuple(
            LayerSelection(sel.name, tuple(sel.channels),
                           sel.weight if sel.HasField("weight") else 1.0)
            for sel in msg.layers)
    return replace(base, **values)


def params_to_proto(params: DreamParams) -> pb.DreamParams:
    """The message of `params`: every field with a value (None = unset)."""
    msg = pb.DreamParams(model=params.model, **{
        name: getattr(params, name) for name in _SCALARS if getattr(params, name) is not None})
    for target in params.classes:
        entry = msg.classes.add(name=target.name, weight=target.weight)
        if target.index is not None:
            entry.index = target.index
    for sel in params.layers:
        msg.layers.add(name=sel.name, channels=list(sel.channels), weight=sel.weight)
    return msg


def audio_from_proto(msg: pb.Audio, limits: Limits, what: str = "audio") -> tuple[np.ndarray, int]:
    """An Audio message -> validated `([C, T] float32, rate)`."""
    kind = msg.WhichOneof("data")
    if kind == "encoded":
        samples, rate = audio_io.decode(msg.encoded, limits)
    elif kind == "pcm":
        rate = msg.sample_rate
        samples = audio_io.from_pcm(msg.pcm, rate, msg.channels, limits)
    else:
        raise InvalidArgument(f"{what} is empty: set `encoded` (a sound file) or `pcm`")
    audio_io.validate(samples, rate, limits, what)
    return samples, rate


@dataclass
class DreamInputs:
    """What a DreamRequest asks for, decoded and checked (model-independent part)."""

    audio: np.ndarray
    rate: int
    params: DreamParams
    target: np.ndarray | None = None
    target_rate: int = 0


def dream_inputs(request: pb.DreamRequest, limits: Limits) -> DreamInputs:
    audio, rate = audio_from_proto(request.audio, limits)
    inputs = DreamInputs(audio, rate, params_from_proto(request.params))
    if request.HasField("target"):
        inputs.target, inputs.target_rate = audio_from_proto(request.target, limits, "target")
    return inputs


def audio_to_proto(samples: np.ndarray, rate: int, fmt: str) -> pb.Audio:
    msg = pb.Audio(sample_rate=rate, channels=samples.shape[0], format=fmt)
    if fmt == "pcm":
        msg.pcm = audio_io.to_pcm(samples)
    else:
        msg.encoded = audio_io.encode(samples, rate, fmt)
    return msg


def features_to_proto(f: Features) -> pb.Features:
    return pb.Features(rms=f.rms, spectral_centroid_hz=f.spectral_centroid_hz,
                       spectral_flatness=f.spectral_flatness, spectral_flux=f.spectral_flux)


def result_to_proto(result: DreamResult, model: LoadedModel) -> pb.DreamResponse:
    return pb.DreamResponse(
        audio=audio_to_proto(result.audio, result.sample_rate, result.params.output_format),
        loss=result.loss,
        input_features=features_to_proto(result.input_features),
        output_features=features_to_proto(result.output_features),
        output_gain=result.output_gain, model=model.spec.name,
        model_sample_rate=model.spec.sample_rate, windows=result.windows,
        params=params_to_proto(result.params),
        timing=pb.Timing(prepare_seconds=result.prepare_seconds,
                         dream_seconds=result.dream_seconds),
        class_changes=[pb.ClassChange(name=c.name, index=c.index, before=c.before,
                                      after=c.after) for c in result.class_changes],
        others_before=result.others_before, others_after=result.others_after)


def classify_response(scores: Scores, model: LoadedModel, top: int) -> pb.ClassifyResponse:
    return pb.ClassifyResponse(
        model=model.spec.name, output=scores.output, activation=scores.activation,
        windows=scores.windows,
        scores=[pb.ClassScore(name=name, index=index, score=score)
                for index, name, score in scores.top(top)])


def model_info(model: LoadedModel) -> pb.ModelInfo:
    spec = model.spec
    return pb.ModelInfo(
        name=spec.name, sample_rate=spec.sample_rate,
        fixed_input_samples=spec.fixed_input_samples, description=spec.description,
        device=str(model.device), num_classes=len(spec.classes), trained=spec.trained,
        default_layer=spec.default_layer, domain=spec.domain, parameters=model.parameters)


def layers_response(model: LoadedModel) -> pb.ListLayersResponse:
    spec = model.spec
    return pb.ListLayersResponse(
        model=spec.name, sample_rate=spec.sample_rate, default_layer=spec.default_layer,
        classes=list(spec.classes), domain=spec.domain,
        layers=[pb.LayerInfo(name=layer.name, module_type=layer.module_type,
                             channels=layer.channels, stride=layer.stride,
                             frame_rate=layer.frame_rate(spec.sample_rate))
                for layer in spec.layers])


def stream_settings_from_proto(config: pb.StreamConfig) -> StreamSettings:
    return StreamSettings(sample_rate=config.sample_rate, channels=config.channels,
                          block_size=config.block_size or 2048, window=config.window,
                          mode=config.mode or "process", delay=config.delay,
                          offline=config.offline, slack=config.slack,
                          transport_seconds=config.transport_ms / 1000.0)


def stream_ready(settings: StreamSettings, params: DreamParams, model: LoadedModel,
                 latency: int) -> pb.StreamResponse:
    config = pb.StreamConfig(params=params_to_proto(params), sample_rate=settings.sample_rate,
                             channels=settings.channels, block_size=settings.block_size,
                             window=settings.window, mode=settings.mode, delay=settings.delay,
                             offline=settings.offline, slack=settings.slack,
                             transport_ms=settings.transport_seconds * 1000.0)
    return pb.StreamResponse(ready=pb.StreamReady(
        config=config, latency_samples=latency, model=model.spec.name,
        model_sample_rate=model.spec.sample_rate))


def block_from_chunk(chunk: pb.AudioChunk, settings: StreamSettings) -> np.ndarray:
    """An AudioChunk -> `[C, B]`; raises InvalidArgument on a wrong size or non-finite samples."""
    expected = 4 * settings.block_size * settings.channels
    if len(chunk.pcm) != expected:
        raise InvalidArgument(f"chunk {chunk.seq} has {len(chunk.pcm)} bytes; blocks of "
                              f"{settings.block_size} frames x {settings.channels} channels "
                              f"of float32 are {expected} bytes")
    block = np.frombuffer(chunk.pcm, dtype="<f4").reshape(settings.block_size, settings.channels)
    audio_io.check_samples(block, f"chunk {chunk.seq}")
    return np.ascontiguousarray(block.T, dtype=np.float32)


def chunk_from_block(seq: int, block: np.ndarray) -> pb.StreamResponse:
    return pb.StreamResponse(audio=pb.AudioChunk(seq=seq, pcm=audio_io.to_pcm(block)))
