"""`LocalClient`: the client interface, served by an in-process engine (no network).

`audiodream dream --local` and `audiodream morph --local` use it. Requests go
through the same protobuf conversion and validation as on the server, so local
and remote dreams (and morphs) of the same request are identical.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from audiodream.client import Client, Progress, ServerError, layers_of, model_info
from audiodream_proto.v1 import audiodream_pb2 as pb

from . import runtime
from .engine.morph import morph
from .engine.params import Limits, DEFAULT_LIMITS
from .engine.pipeline import dream
from .models.catalog import build_registry
from .models.registry import ModelRegistry
from .service.config import ServerConfig
from .service import convert, morphing, status


class LocalClient(Client):
    """Like `Client`, without a server. Each model loads when first used, so a
    dream builds only the model it dreams with."""

    def __init__(self, device: str = "auto", threads: int = 0,
                 registry: ModelRegistry | None = None, limits: Limits = DEFAULT_LIMITS):
        runtime.configure_threads(threads)
        registry = registry or build_registry(ServerConfig().models_dirs)
        self._models = registry.load(runtime.pick_device(device), lazy=registry.names())
        self.limits = limits

    def close(self) -> None:
        pass

    def models(self):
        self._models.load_all()
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


@contextmanager
def local_server(device: str = "auto", threads: int = 0) -> Iterator[Client]:
    """A real server on a free loopback port inside this process, and a client of it.

    `audiodream stream --local` uses it: a stream needs the server's scheduler
    and sessions, so it runs through the same code as over the network. Every
    model loads on first use, so only the one streamed is built.
    """
    from .service.server import create_server

    runtime.configure_threads(threads)
    config = ServerConfig(port=0, device=device, threads=threads)
    registry = build_registry(config.models_dirs)
    models = registry.load(runtime.pick_device(device), lazy=registry.names())
    server, port, _ = create_server(config, models)
    server.start()
    try:
        with Client(f"127.0.0.1:{port}") as client:
            yield client
    finally:
        server.stop(None)
