"""The Morph RPC: protobuf <-> `engine.morph`, run on the compute slots like a Dream."""

from __future__ import annotations

import threading
import time

from audiodream_proto.v1 import audiodream_pb2 as pb

from ..engine.morph import MorphParams, MorphResult, is_morph_model, morph
from ..engine.params import Limits
from ..errors import FailedPrecondition
from ..models.registry import LoadedModel, ResidentModels
from . import budget, convert

_DEFAULTS = MorphParams()


def params_from_proto(msg: pb.MorphParams) -> MorphParams:
    """Set fields override the defaults."""
    values: dict = {}
    for name in ("model", "interpolation", "phase", "output_format"):
        if getattr(msg, name):
            values[name] = getattr(msg, name)
    for name in ("amount", "gl_iters", "detail"):
        if msg.HasField(name):
            values[name] = getattr(msg, name)
    if msg.curve:
        values["curve"] = tuple(msg.curve)
    if msg.group_amounts:
        values["group_amounts"] = tuple(msg.group_amounts)
    return MorphParams(**{**_DEFAULTS.__dict__, **values})


def params_to_proto(params: MorphParams) -> pb.MorphParams:
    return pb.MorphParams(model=params.model, amount=params.amount, curve=list(params.curve),
                          group_amounts=list(params.group_amounts),
                          interpolation=params.interpolation, phase=params.phase,
                          gl_iters=params.gl_iters, detail=params.detail,
                          output_format=params.output_format)


def morph_model(models: ResidentModels, name: str) -> LoadedModel:
    """The named model, or the first autoencoder when no name is given (models
    not built yet are built in turn until one is found: the shipped autoencoder
    comes first)."""
    if name:
        return models.get(name)
    for model in models:
        if is_morph_model(model):
            return model
    for pending in getattr(models, "pending", ()):
        try:
            model = models.get(pending)
        except FailedPrecondition:
            continue
        if is_morph_model(model):
            return model
    raise FailedPrecondition("this server holds no autoencoder model to morph with; "
                             "train one with `audiodream train DATA --arch autoencoder`")


def result_to_proto(result: MorphResult, model: LoadedModel) -> pb.MorphResponse:
    return pb.MorphResponse(
        audio=convert.audio_to_proto(result.audio, result.sample_rate,
                                     result.params.output_format),
        a_features=convert.features_to_proto(result.a_features),
        b_features=convert.features_to_proto(result.b_features),
        output_features=convert.features_to_proto(result.output_features),
        output_gain=result.output_gain, model=model.spec.name,
        latent_frames=result.latent_frames, latent_frame_rate=result.latent_frame_rate,
        latent_size=result.latent_size, params=params_to_proto(result.params),
        amounts=result.amounts, timing=pb.Timing(dream_seconds=result.seconds))


async def serve(servicer, request: pb.MorphRequest) -> pb.MorphResponse:
    """Decodes and checks on the prepare pool, morphs on a compute slot."""
    start = time.perf_counter()
    limits: Limits = servicer.limits

    def prepare():
        params = params_from_proto(request.params).validate()
        # The reply has A's shape: refuse what could not be sent back.
        budget.check_request(pb.DreamRequest(audio=request.a, params=pb.DreamParams(
            output_format=params.output_format)), limits, servicer.max_message_bytes)
        a, rate_a = convert.audio_from_proto(request.a, limits, "sound A")
        b, rate_b = convert.audio_from_proto(request.b, limits, "sound B")
        model = morph_model(servicer.models, params.model)
        return a, rate_a, b, rate_b, params, model

    stop = threading.Event()  # set when the caller leaves: the morph ends, freeing its slot

    def work(prepared) -> pb.MorphResponse:
        a, rate_a, b, rate_b, params, model = prepared
        return result_to_proto(morph(a, rate_a, b, rate_b, model, params, limits,
                                     should_stop=stop.is_set), model)

    response, queued, prepared = await servicer.computed("morph", prepare, work, stop)
    response.timing.queue_seconds = queued
    response.timing.prepare_seconds = prepared - start
    response.timing.total_seconds = time.perf_counter() - start
    return response
