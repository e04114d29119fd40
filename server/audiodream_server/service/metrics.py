"""Metrics: what a server is doing, in Prometheus' text format on its own HTTP port.

Counting is always on (a few microseconds per call); the HTTP endpoint is
served only when asked for (`--metrics-port`, AUDIODREAM_METRICS_PORT). Each
server has its own registry, so several servers in one process (tests, benches)
count apart.

Names follow Prometheus' conventions: the unit in the name (`_seconds`),
`_total` on counters, and labels from small, fixed sets only: the RPC method
(five), the status code (seventeen), the model (those loaded), the rejection
reason (listed in `REASONS`). A stream's id would be an unbounded label, so
per-stream figures (a block's real-time factor, late blocks, iterations
dropped) go into histograms and counters per model; each stream's own figures
travel to its client in StreamStats.

    audiodream_rpc_handled_total{method, code}        calls ended, by status
    audiodream_rpc_duration_seconds{method}           call duration (histogram)
    audiodream_rpc_in_flight{method}                  calls running now
    audiodream_dream_compute_seconds_total{model}     seconds spent dreaming ...
    audiodream_dream_audio_seconds_total{model}       ... for this much audio
    audiodream_dream_compute_seconds_per_audio_second{model}  their ratio per dream
    audiodream_queue_depth                            dreams waiting (decoding or queued)
    audiodream_queue_wait_seconds                     time queued for a compute slot
    audiodream_dreams_active                          dreams computing now
    audiodream_streams_active                         live streams now
    audiodream_stream_blocks_total{model}             stream blocks answered
    audiodream_stream_block_real_time_factor{model}   block processing time / block duration
    audiodream_stream_late_blocks_total{model}        blocks answered after their deadline
    audiodream_stream_degraded_blocks_total{model}    blocks that ran fewer iterations
    audiodream_stream_iterations_skipped_total{model} iterations dropped to keep real time
    audiodream_rejections_total{reason}               calls refused, by reason
    audiodream_model_loaded{model}                    1 loaded, 0 failed to load
    audiodream_device_info{device}                    1, on the device models run on
    audiodream_draining                               1 once shutting down

The queue depth and active streams are the autoscaling signals (see
docker/k8s/): both are read from the live gate and hub at scrape time.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Callable

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server

# Call durations from a ListModels (~1 ms) to a long offline dream (minutes).
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
               60, 120, 300)
# Real-time factors: below 1 keeps up; the interesting range is around 1.
RTF_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.85, 1.0, 1.25, 1.5, 2, 4)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Why a call was refused: the admission reasons, then the status codes of bad requests.
REASONS = ("queue_full", "streams_full", "draining", "unauthenticated", "invalid_argument",
           "out_of_range", "not_found", "resource_exhausted", "failed_precondition",
           "deadline_exceeded")


class Metrics:
    """One server's metrics. Hooks are called by the servicer, the stream calls and `status`."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.handled = Counter("audiodream_rpc_handled", "RPCs ended, by method and status code",
                               ["method", "code"], registry=r)
        self.duration = Histogram("audiodream_rpc_duration_seconds", "RPC duration",
                                  ["method"], buckets=RPC_BUCKETS, registry=r)
        self.in_flight = Gauge("audiodream_rpc_in_flight", "RPCs running now", ["method"],
                               registry=r)
        self.compute = Counter("audiodream_dream_compute_seconds",
                               "Seconds spent computing offline dreams", ["model"], registry=r)
        self.audio = Counter("audiodream_dream_audio_seconds",
                             "Seconds of audio dreamed offline", ["model"], registry=r)
        self.compute_ratio = Histogram("audiodream_dream_compute_seconds_per_audio_second",
                                       "Compute seconds per second of audio, per dream",
                                       ["model"], buckets=RTF_BUCKETS + (8, 16, 32, 64),
                                       registry=r)
        self.queue_wait = Histogram("audiodream_queue_wait_seconds",
                                    "Seconds a dream waited for a compute slot",
                                    buckets=WAIT_BUCKETS, registry=r)
        self.blocks = Counter("audiodream_stream_blocks", "Stream blocks answered", ["model"],
                              registry=r)
        self.block_rtf = Histogram("audiodream_stream_block_real_time_factor",
                                   "A stream block's processing time over its duration",
                                   ["model"], buckets=RTF_BUCKETS, registry=r)
        self.late = Counter("audiodream_stream_late_blocks",
                            "Stream blocks answered after their deadline", ["model"],
                            registry=r)
        self.degraded = Counter("audiodream_stream_degraded_blocks",
                                "Stream blocks that ran fewer iterations than asked",
                                ["model"], registry=r)
        self.skipped = Counter("audiodream_stream_iterations_skipped",
                               "Iterations dropped to keep streams in real time", ["model"],
                               registry=r)
        self.rejections = Counter("audiodream_rejections", "Calls refused, by reason",
                                  ["reason"], registry=r)
        for reason in REASONS:
            self.rejections.labels(reason)  # every reason shows, at 0, from the start
        self.draining = Gauge("audiodream_draining", "1 once the server is shutting down",
                              registry=r)
        self._http = None

    # -- live state, read at scrape time -------------------------------------------------

    def watch(self, queue_depth: Callable[[], float], dreams_active: Callable[[], float],
              streams_active: Callable[[], float]) -> None:
        """Gauges computed from the server's own state when scraped."""
        for name, text, read in (
                ("audiodream_queue_depth", "Dreams waiting: being decoded or queued for a "
                 "compute slot", queue_depth),
                ("audiodream_dreams_active", "Dreams computing now", dreams_active),
                ("audiodream_streams_active", "Live streams now", streams_active)):
            Gauge(name, text, registry=self.registry).set_function(read)

    def watch_models(self, models) -> None:
        """Model state and device, from the resident models when scraped."""
        self.registry.register(_ModelCollector(models))

    # -- hooks ---------------------------------------------------------------------------

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def dreamed(self, model: str, audio_seconds: float, compute_seconds: float,
                queue_seconds: float) -> None:
        self.compute.labels(model).inc(compute_seconds)
        self.audio.labels(model).inc(audio_seconds)
        if audio_seconds > 0:
            self.compute_ratio.labels(model).observe(compute_seconds / audio_seconds)
        self.queue_wait.observe(queue_seconds)

    def stream_block(self, model: str, seconds: float, block_seconds: float, late: bool,
                     wanted: int, ran: int) -> None:
        self.blocks.labels(model).inc()
        if block_seconds > 0:
            self.block_rtf.labels(model).observe(seconds / block_seconds)
        if late:
            self.late.labels(model).inc()
        if ran < wanted:
            self.degraded.labels(model).inc()
            self.skipped.labels(model).inc(wanted - ran)

    # -- per-RPC counts, durations and codes ---------------------------------------------

    def instrument(self, method: str, handler, response_streaming: bool):
        """Wraps a handler (coroutine or async generator) to count it."""
        self.in_flight.labels(method)
        self.duration.labels(method)
        if response_streaming:
            @functools.wraps(handler)
            async def streaming(request, context):
                with self._call(method, context) as outcome:
                    async for item in handler(request, context):
                        yield item
                    outcome[0] = "OK"
            return streaming

        @functools.wraps(handler)
        async def unary(request, context):
            with self._call(method, context) as outcome:
                response = await handler(request, context)
                outcome[0] = "OK"
                return response
        return unary

    def _call(self, method: str, context):
        return _Call(self, method, context)

    # -- the HTTP endpoint ---------------------------------------------------------------

    def serve(self, host: str, port: int) -> int:
        """Serves /metrics on host:port (0 = any free port); returns the port."""
        self._http, _ = start_http_server(port, host, self.registry)
        return self._http.server_port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class _Call:
    """Times one call and counts how it ended (OK, the status it aborted with, CANCELLED)."""

    def __init__(self, metrics: Metrics, method: str, context):
        self.metrics, self.method, self.context = metrics, method, context
        self.outcome = [None]

    def __enter__(self):
        self.start = time.perf_counter()
        self.metrics.in_flight.labels(self.method).inc()
        return self.outcome

    def __exit__(self, kind, exc, tb):
        m = self.metrics
        m.in_flight.labels(self.method).dec()
        m.duration.labels(self.method).observe(time.perf_counter() - self.start)
        code = self.outcome[0]
        if code is None:
            if kind is not None and issubclass(kind, (asyncio.CancelledError, GeneratorExit)):
                code = "CANCELLED"
            else:
                code = _code_name(self.context.code()) or "UNKNOWN"
        m.handled.labels(self.method, code).inc()
        return False


def _code_name(code) -> str | None:
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio may hand back the numeric code
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    return None


class _ModelCollector:
    """audiodream_model_loaded and audiodream_device_info, read from the models."""

    def __init__(self, models):
        self.models = models

    def describe(self):
        return []

    def collect(self):
        loaded = GaugeMetricFamily("audiodream_model_loaded",
                                   "1 when the model is loaded, 0 when it failed to load",
                                   labels=["model"])
        device = GaugeMetricFamily("audiodream_device_info", "The device models run on",
                                   labels=["device"])
        devices = set()
        for model in self.models:
            loaded.add_metric([model.spec.name], 1)
            devices.add(str(model.device))
        for name in self.models.failed:
            loaded.add_metric([name], 0)
        for name in sorted(devices):
            device.add_metric([name], 1)
        yield loaded
        yield device
