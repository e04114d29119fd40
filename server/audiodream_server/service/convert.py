"""Protobuf <-> engine types. No logic beyond filling defaults and checking shapes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
# Choice fields: an empty string means "the default".
_CHOICES = ("objective", "update", "init", "grad_norm", "output_format", "phase", "output",
            "morph_interpolation", "loudness",
            "class_output", "auto_class")
# Scalars with presence: unset means "the default".
_OPTIONALS = ("iterations", "step_size", "seed", "init_frequency_hz", "init_gain",
              "time_jitter", "lowpass_hz", "mix_original", "smoothing_coefficient",
              "smoothing_kernel", "mix", "class_index", "window_overlap", "threshold",
              "power", "n_fft", "hop", "content_weight", "octaves", "octave_scale",
              "gl_iters", "follow_input", "morph_amount", "morph_detail",
              "ceiling_db")


def params_from_proto(msg: pb.DreamParams, base: DreamParams = _DEFAULTS) -> DreamParams:
    """Fields set in `msg` override `base` (the defaults, or the settings in force)."""
    values = {}
    for name in _CHOICES:
        if getattr(msg, name):
            values[name] = getattr(msg, name)
    for name in _OPTIONALS:
        if msg.HasField(name):
            values[name] = getattr(msg, name)
    if msg.model:
        values["model"] = msg.model
    if msg.class_name:
        values["class_name"] = msg.class_name
    if msg.negate:
        values["negate"] = True
    if msg.exclusive:
        values["exclusive"] = True
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
    return DreamParams(**{**base.__dict__, **values})


def params_to_proto(params: DreamParams) -> pb.DreamParams:
    msg = pb.DreamParams(
        model=params.model, objective=params.objective, update=params.update,
        iterations=params.iterations, step_size=params.step_size, seed=params.seed,
        init=params.init, init_frequency_hz=params.init_frequency_hz,
        init_gain=params.init_gain, time_jitter=params.time_jitter,
        lowpass_hz=params.lowpass_hz, mix_original=params.mix_original,
        smoothing_coefficient=params.smoothing_coefficient,
        smoothing_kernel=params.smoothing_kernel, grad_norm=params.grad_norm, mix=params.mix,
        class_name=params.class_name, negate=params.negate,
        window_overlap=params.window_overlap, output_format=params.output_format,
        threshold=params.threshold, power=params.power, n_fft=params.n_fft, hop=params.hop,
        content_weight=params.content_weight, octaves=params.octaves,
        octave_scale=params.octave_scale, phase=params.phase, gl_iters=params.gl_iters,
        follow_input=params.follow_input, output=params.output,
        morph_amount=params.morph_amount, morph_interpolation=params.morph_interpolation,
        morph_detail=params.morph_detail, loudness=params.loudness,
        ceiling_db=params.ceiling_db, class_output=params.class_output,
        exclusive=params.exclusive, auto_class=params.auto_class)
    for target in params.classes:
        entry = msg.classes.add(name=target.name, weight=target.weight)
        if target.index is not None:
            entry.index = target.index
    if params.class_index is not None:
        msg.class_index = params.class_index
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
