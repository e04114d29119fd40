"""Building, starting and stopping the gRPC server.

`create_server` returns `(server, port)` without starting it, so tests can bind
port 0. `serve` is the long-running entry point: health and reflection,
SIGTERM -> NOT_SERVING -> grace period -> stop.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from audiodream.v1 import audiodream_pb2 as pb
from audiodream.v1 import audiodream_pb2_grpc as pb_grpc

from ..models.catalog import build_registry
from ..models.registry import ModelRegistry, ResidentModels
from .. import runtime
from .auth import TokenInterceptor
from .config import ServerConfig
from ..stream import StreamHub
from .gate import ComputeGate
from .servicer import DreamServicer

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DreamService"].full_name


@dataclass
class Services:
    """The servicers behind a server, for shutdown and for tests."""

    dream: DreamServicer
    health: health.HealthServicer


def create_server(config: ServerConfig, models: ResidentModels
                  ) -> tuple[grpc.Server, int, Services]:
    """A configured, unstarted server bound to `config.host:config.port` (0 = any free port)."""
    options = [("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    interceptors = [TokenInterceptor(config.token)] if config.token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers,
                                                    thread_name_prefix="rpc"),
                         options=options, interceptors=interceptors)
    servicer = DreamServicer(models, config.limits,
                             ComputeGate(config.max_active, config.max_queued), config.max_batch,
                             StreamHub(config.max_streams))
    pb_grpc.add_DreamServiceServicer_to_server(servicer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert or config.tls_key:
        port = server.add_secure_port(address, _tls_credentials(config))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port} (in use or not allowed)")
    return server, port, Services(servicer, health_servicer)


def _tls_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    if not (config.tls_cert and config.tls_key):
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    with open(config.tls_key, "rb") as key, open(config.tls_cert, "rb") as cert:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])


def load_models(config: ServerConfig, registry: ModelRegistry | None = None) -> ResidentModels:
    device = runtime.pick_device(config.device)
    models = (registry or build_registry(config.models_dirs)).load(device)
    if not len(models):
        raise RuntimeError("no model could be loaded; see the errors above")
    return models


def serve(config: ServerConfig) -> None:
    """Runs until SIGTERM or SIGINT."""
    threads = runtime.configure_threads(config.threads)
    models = load_models(config)
    server, port, services = create_server(config, models)
    server.start()
    names = ", ".join(m.spec.name for m in models)
    for name, reason in models.failed.items():
        print(f"audiodream: model {name} not served: {reason}", flush=True)
    device = next(iter(models)).device
    # Tests and scripts read this line to find the port when started with --port 0.
    print(f"audiodream listening on {config.host}:{port} (device {device}, {threads} threads, "
          f"models: {names}; default {models.default})", flush=True)

    stopping = threading.Event()

    def on_signal(signum, frame):
        log.info("signal %s: stopping (grace %.0f s)", signum, config.grace_seconds)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stopping.wait(0.5):
        pass
    services.health.enter_graceful_shutdown()
    server.stop(config.grace_seconds).wait()
    services.dream.streams.close()
    print("audiodream stopped", flush=True)
