"""DreamService: protobuf in, engine call, protobuf out. Errors leave via `status`.

Handlers are coroutines on the server's event loop, so an idle or slow call
holds no thread. Blocking work runs on bounded thread pools: decoding and
checking on `prepare`, dreams on `compute` (entered through the FIFO gate, one
thread per compute slot), stream blocks on `streams` (one thread per admitted
stream). Cheap calls (ListModels, ListLayers) answer on the loop itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from audiodream_proto.v1 import audiodream_pb2 as pb
from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc

from ..engine.params import Limits, DEFAULT_LIMITS
from ..engine.classify import class_scores
from ..engine.pipeline import Progress, dream
from ..models.registry import ResidentModels
from ..errors import Busy, Unavailable
from . import budget, convert, morphing, status
from ..stream import StreamHub
from .gate import ComputeGate
from .metrics import Metrics
from .streaming import StreamCall

PROGRESS_INTERVAL = 0.1  # seconds between progress events
DEFAULT_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class Pools:
    """The thread pools blocking work runs on; see the module docstring."""

    prepare: ThreadPoolExecutor
    compute: ThreadPoolExecutor
    streams: ThreadPoolExecutor

    @classmethod
    def sized(cls, max_active: int, max_streams: int) -> "Pools":
        return cls(ThreadPoolExecutor(2, thread_name_prefix="prepare"),
                   ThreadPoolExecutor(max(1, max_active), thread_name_prefix="dream"),
                   ThreadPoolExecutor(max(1, max_streams), thread_name_prefix="stream"))

    def shutdown(self) -> None:
        for pool in (self.prepare, self.compute, self.streams):
            pool.shutdown(wait=False, cancel_futures=True)


class DreamServicer(pb_grpc.DreamServiceServicer):
    def __init__(self, models: ResidentModels, limits: Limits = DEFAULT_LIMITS,
                 gate: ComputeGate | None = None, max_batch: int = 32,
                 streams: StreamHub | None = None, pools: Pools | None = None,
                 max_message_bytes: int = DEFAULT_MESSAGE_BYTES,
                 config_seconds: float = 10.0, metrics: Metrics | None = None,
                 replica: str = ""):
        self.models = models
        self.limits = limits
        self.gate = gate or ComputeGate()
        self.max_batch = max_batch
        self.streams = streams or StreamHub()
        self.pools = pools or Pools.sized(1, self.streams.max_streams)
        self.max_message_bytes = max_message_bytes
        self.config_seconds = config_seconds
        self._preparing = 0  # requests being decoded and checked (event-loop state)
        self.metrics = metrics or Metrics()
        self.metrics.watch(lambda: self._preparing + self.gate.waiting,
                           lambda: self.gate.running, lambda: self.streams.active)
        self.metrics.watch_models(models)
        self.replica = replica  # "host:port", named in replies

    def drain(self, seconds: float) -> None:
        """Shutting down: new dreams and streams are refused UNAVAILABLE (another replica
        serves them); running streams are warned to move within `seconds`."""
        self.streams.drain(seconds)
        self.metrics.draining.set(1)

    @status.unary
    async def ListModels(self, request, context):
        failed = [pb.ModelInfo(name=name, error=reason)
                  for name, reason in self.models.failed.items()]
        pending = [pb.ModelInfo(name=name, pending=True, description="loads on first use")
                   for name in self.models.pending]
        return pb.ListModelsResponse(
            models=[convert.model_info(m) for m in self.models] + pending + failed,
            default_model=self.models.default)

    @status.unary
    async def ListLayers(self, request, context):
        if self.models.is_ready(request.model):
            return convert.layers_response(self.models.get(request.model))
        # A model that loads on first use is built off the event loop.
        model = await asyncio.get_running_loop().run_in_executor(
            self.pools.prepare, self.models.get, request.model)
        return convert.layers_response(model)

    @status.unary
    async def Dream(self, request, context):
        return await self._dream(request)

    @status.streaming
    async def DreamProgress(self, request, context):
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        start = time.perf_counter()
        last = [0.0]

        def on_progress(p: Progress) -> None:  # on a compute thread
            now = time.perf_counter()
            if now - last[0] >= PROGRESS_INTERVAL or p.step == p.steps:
                last[0] = now
                event = pb.DreamEvent(progress=pb.DreamProgressUpdate(
                    stage="dreaming", iteration=p.step, iterations=p.steps, loss=p.loss,
                    elapsed_seconds=now - start, replica=self.replica))
                loop.call_soon_threadsafe(events.put_nowait, event)

        task = asyncio.ensure_future(self._dream(request, on_progress))
        task.add_done_callback(events.put_nowait)
        try:
            yield pb.DreamEvent(progress=pb.DreamProgressUpdate(stage="queued",
                                                                replica=self.replica))
            while True:
                item = await events.get()
                if item is task:
                    yield pb.DreamEvent(result=task.result())
                    return
                yield item
        finally:
            task.cancel()
            if task.done() and not task.cancelled():
                task.exception()  # the caller left as it failed: nobody to tell

    @status.streaming
    async def StreamDream(self, request_iterator, context):
        call = StreamCall(self.models, self.streams, self.limits, self.pools.streams,
                          self.config_seconds, self.metrics, self.replica)
        async for response in call.responses(request_iterator):
            yield response

    @status.unary
    async def Morph(self, request, context):
        return await morphing.serve(self, request)

    @status.unary
    async def Classify(self, request, context):
        def prepare():
            audio, rate = convert.audio_from_proto(request.audio, self.limits)
            return audio, rate, self.models.get(request.model)

        def work(prepared):
            audio, rate, model = prepared
            return model, class_scores(model, audio, rate, request.output)

        (model, scores), _, _ = await self.computed("classification", prepare, work)
        return convert.classify_response(scores, model, request.top or 5)

    async def computed(self, what: str, prepare, work, stop: threading.Event | None = None):
        """The path of every computing call: refused while draining or when the queue
        is full; `prepare()` (decode, check) on the prepare pool, counted against the
        queue; then `work(prepared)` on the compute pool once the gate lets it in. The
        slot is held until the work really ends, even if the caller left (`stop` is
        set then). Returns `(result, queue seconds, time prepared)`."""
        loop = asyncio.get_running_loop()
        if self.streams.draining:
            raise Unavailable(f"this server is shutting down; send the {what} to another "
                              "replica")
        # Requests being decoded count against the queue too, so a flood of large
        # requests cannot pile up in memory ahead of the gate.
        if self._preparing + self.gate.waiting >= self.gate.max_waiting + self.gate.active:
            raise Busy(f"server busy: {self._preparing + self.gate.waiting} requests already "
                       "waiting; try again later", "queue_full")
        self._preparing += 1
        try:
            prepared = await loop.run_in_executor(self.pools.prepare, prepare)
        finally:
            self._preparing -= 1
        prepared_at = time.perf_counter()
        queued = await self.gate.acquire()
        try:
            running = loop.run_in_executor(self.pools.compute, work, prepared)
        except BaseException:
            self.gate.release()
            raise
        running.add_done_callback(self._finished)
        try:
            result = await asyncio.shield(running)
        except asyncio.CancelledError:
            if stop is not None:
                stop.set()
            raise
        return result, queued, prepared_at

    async def _dream(self, request, progress=None) -> pb.DreamResponse:
        start = time.perf_counter()

        def prepare():
            # Refuse bad or oversized requests before they wait for a compute slot.
            budget.check_request(request, self.limits, self.max_message_bytes)
            inputs = convert.dream_inputs(request, self.limits)
            model = self.models.get(inputs.params.model)
            params = inputs.params.validate(self.limits).resolve(model.spec)
            budget.check_dream(inputs.audio, inputs.rate, params, model,
                               self.max_message_bytes, self.max_batch)
            return inputs, model

        stop = threading.Event()

        def work(prepared) -> tuple[pb.DreamResponse, float]:
            inputs, model = prepared
            result = dream(inputs.audio, inputs.rate, model, inputs.params,
                           target=inputs.target, target_rate=inputs.target_rate,
                           limits=self.limits, max_batch=self.max_batch, progress=progress,
                           should_stop=stop.is_set)
            return convert.result_to_proto(result, model), inputs.audio.shape[-1] / inputs.rate

        (response, seconds), queued, _ = await self.computed("dream", prepare, work, stop)
        response.timing.queue_seconds = queued
        response.timing.total_seconds = time.perf_counter() - start
        response.replica = self.replica
        self.metrics.dreamed(response.model, seconds, response.timing.dream_seconds, queued)
        return response

    def _finished(self, running: asyncio.Future) -> None:
        self.gate.release()
        if not running.cancelled():
            running.exception()  # retrieved: a dream whose caller left is not an error
