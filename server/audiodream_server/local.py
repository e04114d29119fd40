"""The service without a network: `LocalStub` answers the client's calls in-process.

`audiodream dream --local` (and morph, classify, models, layers) hands a
`LocalStub` to the client in place of the gRPC stub: the same request messages
go through the same conversion and validation as on the server, so local and
remote dreams of the same request are identical. Failures are raised as
`grpc.RpcError`s with the server's status mapping, which the client turns into
its usual `ServerError`. `audiodream stream --local` needs the server's
scheduler and sessions, so it gets a real server on a loopback port instead
(`local_server`).
"""

from __future__ import annotations

import queue
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import grpc

from audiodream_proto.v1 import audiodream_pb2 as pb

from . import runtime
from .engine.classify import class_scores
from .engine.morph import morph
from .engine.params import Limits, DEFAULT_LIMITS
from .engine.pipeline import dream
from .models.catalog import build_registry
from .models.registry import ModelRegistry
from .service.config import ServerConfig
from .service import convert, morphing, status


class LocalCallError(grpc.RpcError):
    """A refused or failed local call, shaped as the gRPC error a server would send."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class LocalStub:
    """The unary calls of `DreamServiceStub`, served by an engine in this process.
    Each model loads when first used, so a dream builds only the model it dreams
    with. `timeout` is accepted for the stub's signature; local calls run to the end."""

    def __init__(self, device: str = "auto", threads: int = 0,
                 registry: ModelRegistry | None = None, limits: Limits = DEFAULT_LIMITS):
        runtime.configure_threads(threads)
        registry = registry or build_registry(ServerConfig().models_dirs)
        self._models = registry.load(runtime.pick_device(device), lazy=registry.names())
        self.limits = limits

    def ListModels(self, request: pb.ListModelsRequest, timeout=None) -> pb.ListModelsResponse:
        def run():
            self._models.load_all()
            failed = [pb.ModelInfo(name=name, error=reason)
                      for name, reason in self._models.failed.items()]
            return pb.ListModelsResponse(
                models=[convert.model_info(m) for m in self._models] + failed,
                default_model=self._models.default)
        return _guard(run)

    def ListLayers(self, request: pb.ListLayersRequest, timeout=None) -> pb.ListLayersResponse:
        return _guard(lambda: convert.layers_response(self._models.get(request.model)))

    def Dream(self, request: pb.DreamRequest, timeout=None) -> pb.DreamResponse:
        return _guard(lambda: self._dream(request, None))

    def DreamProgress(self, request: pb.DreamRequest, timeout=None) -> Iterator[pb.DreamEvent]:
        """The dream runs on a thread; its progress and result arrive here in order."""
        events: queue.Queue = queue.Queue()

        def on_step(p):
            events.put(pb.DreamEvent(progress=pb.DreamProgressUpdate(
                stage="dreaming", iteration=p.step, iterations=p.steps, loss=p.loss)))

        def run():
            try:
                events.put(pb.DreamEvent(result=_guard(lambda: self._dream(request, on_step))))
            except BaseException as exc:  # noqa: BLE001 - handed to the reader
                events.put(exc)

        threading.Thread(target=run, name="local-dream", daemon=True).start()
        while True:
            item = events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.HasField("result"):
                return

    def Morph(self, request: pb.MorphRequest, timeout=None) -> pb.MorphResponse:
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
        return _guard(run)

    def Classify(self, request: pb.ClassifyRequest, timeout=None) -> pb.ClassifyResponse:
        def run():
            audio, rate = convert.audio_from_proto(request.audio, self.limits)
            model = self._models.get(request.model)
            scores = class_scores(model, audio, rate, request.output)
            return convert.classify_response(scores, model, request.top or 5)
        return _guard(run)

    def _dream(self, request: pb.DreamRequest, on_step) -> pb.DreamResponse:
        start = time.perf_counter()
        inputs = convert.dream_inputs(request, self.limits)
        model = self._models.get(inputs.params.model)
        result = dream(inputs.audio, inputs.rate, model, inputs.params,
                       target=inputs.target, target_rate=inputs.target_rate,
                       limits=self.limits, progress=on_step)
        response = convert.result_to_proto(result, model)
        response.timing.total_seconds = time.perf_counter() - start
        return response


def _guard(fn):
    """Runs `fn`, raising its failure as the server would report it."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - same mapping as the server's
        code, message = status.status_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            raise
        raise LocalCallError(code, message) from exc


@contextmanager
def local_server(device: str = "auto", threads: int = 0) -> Iterator[str]:
    """A real server on a free loopback port inside this process; yields its address.

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
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)
