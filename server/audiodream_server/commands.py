"""What the server package adds to the `audiodream` command when it is installed.

The client's CLI finds this module through the `audiodream.cli` entry point
(pyproject.toml) and uses, without importing the server by name:
- `COMMANDS`: name -> (main(argv) -> exit code, one line of help). Each reads
  its own arguments (its own -h included): `serve` and the training tools.
- `local_stub(device)`: the in-process engine behind `--local`.
- `local_server(device)`: a loopback server for `stream --local` (yields its address).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from importlib import import_module
from typing import Callable

from . import runtime


class UsageError(Exception):
    """A wrong argument or an unusable setting: one line, exit code 2."""


def serve_parser() -> argparse.ArgumentParser:
    serve = argparse.ArgumentParser(prog="audiodream serve", description="Run the gRPC server.")
    serve.add_argument("--host", help="address to bind [127.0.0.1]")
    serve.add_argument("--port", type=int, help="port, 0 = any free one [50051]")
    serve.add_argument("--device", help="auto, cpu, cuda, cuda:N [auto]")
    serve.add_argument("--threads", type=int, help="torch threads, 0 = one per core [0]")
    serve.add_argument("--max-message-mb", type=int, help="gRPC message limit, MiB [64]")
    serve.add_argument("--max-seconds", type=float, help="longest audio per request [300]")
    serve.add_argument("--max-iterations", type=int, help="most iterations per request [1000]")
    serve.add_argument("--max-active", type=int, help="dreams computing at once [1]")
    serve.add_argument("--max-queued", type=int, help="dreams waiting for a slot [16]")
    serve.add_argument("--max-streams", type=int, help="live streams at once [16]")
    serve.add_argument("--stream-capacity", type=float,
                       help="share of the compute live streams may want together; a stream "
                       "beyond it is refused [0.85; 0 = no check]")
    serve.add_argument("--token", help="require this bearer token; visible in ps, so prefer "
                       "$AUDIODREAM_TOKEN or --token-file")
    serve.add_argument("--token-file", help="read the token from this file's first line "
                       "[$AUDIODREAM_TOKEN_FILE]")
    serve.add_argument("--allow-torchscript", action="store_true", default=None,
                       help="load user TorchScript models: they are programs that run with "
                            "the server's rights, enable only for trusted files "
                            "[$AUDIODREAM_ALLOW_TORCHSCRIPT]")
    serve.add_argument("--metrics-port", type=int,
                       help="serve Prometheus metrics on this HTTP port, 0 = any free one "
                            "[$AUDIODREAM_METRICS_PORT; off]")
    serve.add_argument("--tls-cert", help="PEM certificate: serve TLS only")
    serve.add_argument("--tls-key", help="PEM private key for --tls-cert")
    serve.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                       help="extra folder of models (repeatable); the shipped models and "
                            "~/.local/share/audiodream/models are always read")
    serve.add_argument("--models", metavar="NAME,...",
                       help="serve only these models [every model found; $AUDIODREAM_MODELS]")
    serve.add_argument("--lazy-models", metavar="NAME,...",
                       help="load these on first use, not at start-up; '' = load all at once "
                            "[crepe-full,random-shallow; $AUDIODREAM_LAZY_MODELS]")
    return serve


SETTINGS = ("host", "port", "device", "threads", "max_message_mb", "max_seconds",
            "max_iterations", "max_active", "max_queued", "max_streams", "stream_capacity",
            "token", "token_file", "allow_torchscript", "tls_cert", "tls_key", "metrics_port",
            "models", "lazy_models")


def serve_main(argv: list[str]) -> int:
    """`audiodream serve`: every failure ends in one line on stderr and exit code 2."""
    args = serve_parser().parse_args(argv)
    runtime.configure_environment()
    from .errors import DreamError
    from .service.config import ServerConfig
    from .service.server import serve

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = ServerConfig.from_env()
        for name in SETTINGS:
            if getattr(args, name) is not None:
                setattr(config, name, getattr(args, name))
        if args.models_dir:
            config.models_dir = os.pathsep.join(filter(None, [config.models_dir,
                                                              *args.models_dir]))
        config.resolve_token()
        for path in (config.tls_cert, config.tls_key):
            if path and not os.access(path, os.R_OK):
                raise UsageError(f"cannot read {path} (--tls-cert/--tls-key)")
        check_port(config.host, config.port)  # before minutes of model loading
        serve(config)
    except (UsageError, ValueError, OSError, RuntimeError, DreamError) as exc:
        # A bad setting, no model loaded, no CUDA, unknown --models.
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    return 0


def check_port(host: str, port: int) -> None:
    """The server can listen on host:port (0 = any free port); checked before models load."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") \
            from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UsageError(f"port {port} on {host} is in use (another audiodream "
                                 f"server?): stop it or choose another with --port") from None
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _tool(module: str) -> Callable[[list[str]], int]:
    def main(argv: list[str]) -> int:
        runtime.configure_environment()
        return import_module(module).main(argv) or 0
    return main


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "serve": (serve_main, "run the gRPC server"),
    "data": (_tool("audiodream_server.datasets.cli"),
             "build a training data set (gm-instruments, speech)"),
    "train": (_tool("audiodream_server.training.cli"),
              "train a model on a folder-per-class data set"),
    "convert-yamnet": (_tool("audiodream_server.models.yamnet_convert"),
                       "convert YAMNet's Keras weights for the server"),
}


def local_stub(device: str = "auto"):
    """The engine in this process, answering the client's calls (`--local`)."""
    runtime.configure_environment()
    from .local import LocalStub

    return LocalStub(device=device)


def local_server(device: str = "auto"):
    """A real server on a loopback port in this process (`stream --local`)."""
    runtime.configure_environment()
    from .local import local_server as serve_locally

    return serve_locally(device=device)


def _fail(message: str, code: int) -> int:
    print(f"audiodream: {message}", file=sys.stderr, flush=True)
    return code
