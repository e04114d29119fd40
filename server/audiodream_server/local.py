"""`LocalClient`: the client interface, served by an in-process engine (no network).

`audiodream dream --local` and `audiodream morph --local` use it. Requests go
through the same protobuf conversion and validation as on the server, so local
and remote dreams (and morphs) of the same request are identical.
"""

from __future__ import annotations

import time

from audiodream.client import Client, Progress, ServerError, layers_of, model_info
from audiodream.v1 import audiodream_pb2 as pb

from . import runtime
from .engine.morph import morph
from .engine.params import Limits, DEFAULT_LIMITS
from .engine.pipeline import dream
from .models.catalog import build_registry
from .models.registry import ModelRegistry
from .service.config import ServerConfig
from .service import convert, morphing, status


class LocalClient(Client):
    """Like `Client`, without a server. Loads the models on construction."""

    def __init__(self, device: str = "auto", threads: int = 0,
                 registry: ModelRegistry | None = None, limits: Limits = DEFAULT_LIMITS):
        runtime.configure_threads(threads)
        self._models = (registry or build_registry(ServerConfig().models_dirs)).load(
            runtime.pick_device(device))
        self.limits = limits

    def close(self) -> None:
        pass

    def models(self):
        return [model_info(convert.model_info(m), self._models.default) for m in self._models]

    def layers(self, model: str = ""):
        return layers_of(self._guard(lambda: convert.layers_response(self._models.get(model))))

    def _execute(self, request: pb.DreamRequest, progress: Progress | None) -> pb.DreamResponse:
        def run():
            start = time.perf_counter()
            inputs = convert.dream_inputs(request, self.limits)
            model = self._models.get(inputs.params.model)
            on_step = None
            if progress is not None:
                def on_step(p):
                    progress(pb.DreamProgressUpdate(stage="dreaming", iteration=p.step,
                                                    iterations=p.steps, loss=p.loss))
            result = dream(inputs.audio, inputs.rate, model, inputs.params,
                           target=inputs.target, target_rate=inputs.target_rate,
                           limits=self.limits, progress=on_step)
            response = convert.result_to_proto(result, model)
            response.timing.total_seconds = time.perf_counter() - start
            return response

        return self._guard(run)

    def _morph(self, request: pb.MorphRequest) -> pb.MorphResponse:
        def run():
            start = time.perf_counter()
            params = morphing.params_from_proto(request.params).validate()
            a, rate_a = convert.audio_from_proto(request.a, self.limits, "sound A")
            b, rate_b = convert.audio_from_proto(request.b, self.limits, "sound B")
            model = morphing.morph_model(self._models, params.model)
            result = morph(a, rate_a, b, rate_b, model, params, self.limits)
            response = morphing.result_to_proto(result, model)
            response.timing.total_seconds = time.perf_counter() - start
            return response

        return self._guard(run)

    @staticmethod
    def _guard(fn):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - same mapping as the server's
            code, message = status.status_of(exc)
            if code.name == "INTERNAL":
                raise
            raise ServerError(code.name, message) from exc
