"""Server configuration: one dataclass, filled from flags and AUDIODREAM_* variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from ..engine.params import Limits

ENV_PREFIX = "AUDIODREAM_"


def user_models_dir() -> Path:
    """Where a user's own models go: $XDG_DATA_HOME/audiodream/models (~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return Path(base) / "audiodream" / "models"


@dataclass
class ServerConfig:
    """Everything `audiodream serve` can be told.

    Attributes:
        host, port: where to listen; 127.0.0.1 keeps the server private by default.
        device: "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:N".
        threads: torch intra-op threads; 0 = the number of cores.
        max_message_mb: gRPC send/receive limit, MiB (a 30 s stereo 48 kHz float32
            file is 11.5 MB, over gRPC's 4 MiB default).
        max_seconds: longest audio accepted per request.
        max_iterations: most iterations one request may ask for.
        max_active: dreams computing at once; max_queued: dreams waiting for a slot.
        max_batch: windows per forward/backward pass (memory bound).
        max_streams: live StreamDream calls at once.
        stream_capacity: most share of the compute the live streams may want
            together (measured per block); a stream beyond it is refused with
            RESOURCE_EXHAUSTED. 0 = admit up to max_streams.
        grace_seconds: time in-flight work gets after SIGTERM.
        stream_config_seconds: a new stream must send its StreamConfig this soon.
        token: when set, DreamService and reflection calls need
            `authorization: Bearer <token>` (prefer AUDIODREAM_TOKEN or
            `token_file` to a command-line flag, which `ps` shows).
        token_file: a file whose first line is the token (read at start-up).
        allow_torchscript: load user TorchScript models. An archive is a program
            that runs with the server's rights: enable only for files you trust.
        tls_cert, tls_key: PEM files; when both are set the server speaks TLS only.
        metrics_port: serve Prometheus metrics over HTTP on this port, on `host`
            (0 = any free port); -1 = off (the default).
        models_dir: extra model folders, separated by os.pathsep (":"); the
            shipped models and the user folder (`user_models_dir()`) always count.
        models: the models to serve, comma-separated; "" = every model found.
        lazy_models: models built on first use rather than at start-up,
            comma-separated ("" = none): the heavy ones by default (CREPE full,
            22 M parameters), so a server starts fast and small.
    """

    host: str = "127.0.0.1"
    port: int = 50051
    device: str = "auto"
    threads: int = 0
    max_message_mb: int = 64
    max_seconds: float = 300.0
    max_iterations: int = 1000
    max_active: int = 1
    max_queued: int = 16
    max_batch: int = 32
    max_streams: int = 16
    stream_capacity: float = 0.85
    grace_seconds: float = 10.0
    stream_config_seconds: float = 10.0
    metrics_port: int = -1
    models_dir: str = ""
    token: str = ""
    token_file: str = ""
    allow_torchscript: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    models: str = ""
    lazy_models: str = "crepe-full,random-shallow"

    @classmethod
    def from_env(cls, environ=os.environ) -> "ServerConfig":
        """Defaults overridden by AUDIODREAM_<FIELD> variables (e.g. AUDIODREAM_PORT)."""
        config = cls()
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                kind = type(getattr(config, f.name))
                try:
                    setattr(config, f.name, _parse_bool(raw) if kind is bool else kind(raw))
                except ValueError:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid "
                                     f"{kind.__name__}") from None
        return config

    def resolve_token(self) -> "ServerConfig":
        """Reads `token_file` into `token` (the file wins); returns self."""
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as f:
                    token = f.readline().strip()
            except OSError as exc:
                raise ValueError(f"cannot read the token file: {exc.strerror}") from None
            if not token:
                raise ValueError("the token file is empty")
            self.token = token
        return self

    @property
    def models_dirs(self) -> list[Path]:
        extra = [Path(d) for d in self.models_dir.split(os.pathsep) if d]
        user = user_models_dir()
        return ([user] if user.is_dir() and user not in extra else []) + extra

    @property
    def model_names(self) -> list[str] | None:
        """The chosen models, or None for all."""
        return _names(self.models) or None

    @property
    def lazy_model_names(self) -> list[str]:
        return _names(self.lazy_models)

    @property
    def limits(self) -> Limits:
        return Limits(max_iterations=self.max_iterations, max_seconds=self.max_seconds)

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)
