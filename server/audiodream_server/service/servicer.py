"""DreamService: protobuf in, engine call, protobuf out. Errors leave via `status`."""

from __future__ import annotations

import queue
import threading
import time

from audiodream.v1 import audiodream_pb2 as pb
from audiodream.v1 import audiodream_pb2_grpc as pb_grpc

from ..engine.params import Limits, DEFAULT_LIMITS
from ..engine.pipeline import Progress, dream
from ..models.registry import ResidentModels
from . import convert, status
from ..stream import StreamHub
from .gate import ComputeGate
from .streaming import StreamCall

PROGRESS_INTERVAL = 0.1  # seconds between progress events


class DreamServicer(pb_grpc.DreamServiceServicer):
    def __init__(self, models: ResidentModels, limits: Limits = DEFAULT_LIMITS,
                 gate: ComputeGate | None = None, max_batch: int = 32,
                 streams: StreamHub | None = None):
        self.models = models
        self.limits = limits
        self.gate = gate or ComputeGate()
        self.max_batch = max_batch
        self.streams = streams or StreamHub()

    @status.unary
    def ListModels(self, request, context):
        failed = [pb.ModelInfo(name=name, error=reason)
                  for name, reason in self.models.failed.items()]
        return pb.ListModelsResponse(models=[convert.model_info(m) for m in self.models] + failed,
                                     default_model=self.models.default)

    @status.unary
    def ListLayers(self, request, context):
        return convert.layers_response(self.models.get(request.model))

    @status.unary
    def Dream(self, request, context):
        return self._dream(request, context)

    @status.streaming
    def DreamProgress(self, request, context):
        events: queue.Queue = queue.Queue()
        start = time.perf_counter()
        last = [0.0]

        def on_progress(p: Progress) -> None:
            now = time.perf_counter()
            if now - last[0] >= PROGRESS_INTERVAL or p.step == p.steps:
                last[0] = now
                events.put(pb.DreamEvent(progress=pb.DreamProgressUpdate(
                    stage="dreaming", iteration=p.step, iterations=p.steps, loss=p.loss,
                    elapsed_seconds=now - start)))

        def work() -> None:
            try:
                events.put(pb.DreamEvent(result=self._dream(request, context, on_progress)))
            except BaseException as exc:  # handed to the RPC thread, which maps it
                events.put(exc)

        threading.Thread(target=work, name="dream-progress", daemon=True).start()
        yield pb.DreamEvent(progress=pb.DreamProgressUpdate(stage="queued"))
        while True:
            item = events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.HasField("result"):
                return

    @status.streaming
    def StreamDream(self, request_iterator, context):
        call = StreamCall(self.models, self.streams, self.limits, context.is_active)
        yield from call.responses(request_iterator)

    def _dream(self, request, context, progress=None) -> pb.DreamResponse:
        start = time.perf_counter()
        inputs = convert.dream_inputs(request, self.limits)
        model = self.models.get(inputs.params.model)
        # Refuse bad requests before they wait for a compute slot.
        inputs.params.validate(self.limits).resolve(model.spec)
        with self.gate.slot(context.is_active) as queued:
            result = dream(inputs.audio, inputs.rate, model, inputs.params,
                           target=inputs.target, target_rate=inputs.target_rate,
                           limits=self.limits, max_batch=self.max_batch, progress=progress,
                           should_stop=lambda: not context.is_active())
        response = convert.result_to_proto(result, model)
        response.timing.queue_seconds = queued
        response.timing.total_seconds = time.perf_counter() - start
        return response
