"""The Python client: `Client(address).models() / .layers() / .dream(...)`.

Audio is numpy in the soundfile layout: `[T]` (mono) or `[T, C]`, float32, with
its rate in Hz; or a path / the bytes of a sound file. Results come back in the
layout they went in. Server errors raise `ServerError` with the gRPC status name.

Example (needs a running server)::

    with Client("127.0.0.1:50051") as c:
        out = c.dream(samples, 44100, layers=["conv3:1,2@0.5"], iterations=20)
        print(out.loss[-1], out.output_features)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import grpc
import numpy as np

from .deadlines import DREAM_BASE_SECONDS, LIST_SECONDS, dream_deadline, with_default_port
from .errors import ServerError
from . import replicas
from .morphing import MorphOutput, morph_params
from .messages import PARAM_FIELDS, audio_message, dream_params, dream_request, target_message
from .streaming import DreamStream
from audiodream_proto.v1 import audiodream_pb2 as pb
from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
AUTO = "auto"  # a deadline that fits each call (see deadlines.py)

__all__ = ["Client", "ServerError", "PARAM_FIELDS", "audio_message", "dream_params",
           "dream_request", "target_message"]


@dataclass
class ModelInfo:
    name: str
    sample_rate: int
    fixed_input_samples: int
    description: str
    device: str
    num_classes: int
    trained: bool
    default_layer: str
    domain: str
    parameters: int
    is_default: bool = False
    error: str = ""
    pending: bool = False  # loads on the server's first use


@dataclass
class LayerInfo:
    name: str
    module_type: str
    channels: int
    frame_rate: float
    stride: int


@dataclass
class Layers:
    model: str
    sample_rate: int
    default_layer: str
    layers: list[LayerInfo]
    classes: list[str] = field(default_factory=list)
    domain: str = "waveform"


@dataclass
class Features:
    rms: float
    spectral_centroid_hz: float
    spectral_flatness: float
    spectral_flux: float


@dataclass
class DreamOutput:
    """A dreamed sound: `audio` in the layout of the input, and what was measured."""

    audio: np.ndarray
    sample_rate: int
    loss: list[float]
    input_features: Features
    output_features: Features
    output_gain: float
    model: str
    windows: int
    timing: dict[str, float]
    params: pb.DreamParams
    replica: str = ""  # the server replica that dreamed it ("host:port")
    # Class objectives: (name, score in the input, score in the output) per
    # targeted class, and the other classes' mean score before and after.
    class_changes: list[tuple[str, float, float]] = field(default_factory=list)
    others: tuple[float, float] = (0.0, 0.0)


@dataclass
class Classification:
    """A sound's best classes: (name, index, score 0..1), highest first."""

    model: str
    output: str
    activation: str
    windows: int
    scores: list[tuple[str, int, float]]


Progress = Callable[[pb.DreamProgressUpdate], None]


class Client:
    """A connection to an audiodream server, or to several replicas of one.

    Args:
        address: "host:port" ("host" alone means port 50051); several replicas as
            "host:port,host:port,..." or a name that resolves to many,
            "dns:///host:port". Calls are balanced round-robin; the safe ones are
            retried on another replica when one is UNAVAILABLE (see `replicas`).
        max_message_mb: send/receive limit, MiB; must not exceed the server's.
        timeout: seconds per call; None = no deadline; "auto" [default] = 30 s
            for listings, for a dream a deadline that grows with its audio,
            channels and iterations (`deadlines.dream_deadline`), none for streams.
        token: sent as `authorization: Bearer <token>` when the server wants one.
        tls_ca: PEM file of the CA that signed the server's certificate; set it
            (or `tls=True` for the system's CAs) to speak TLS.
        stub: answer the calls with this object instead of a connection; it has the
            unary methods of `DreamServiceStub` and raises `grpc.RpcError`s (the
            server package's `LocalStub` runs the engine in-process: `--local`).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, max_message_mb: int = 64,
                 timeout: float | str | None = AUTO, token: str = "", tls: bool = False,
                 tls_ca: str = "", stub=None):
        if isinstance(timeout, str) and timeout != AUTO:
            raise ValueError(f"timeout: seconds, None or {AUTO!r}, not {timeout!r}")
        limit = max_message_mb * 1024 * 1024
        self.timeout = timeout
        self.max_message_bytes = limit
        self._channel: grpc.Channel | None = None
        if stub is not None:
            self.address, self.replicas, self._stub = "in-process", 1, stub
            return
        address = ",".join(with_default_port(a) for a in replicas.split(address))
        self.address = address
        target, self.replicas = replicas.channel_target(address)
        options = [("grpc.max_receive_message_length", limit),
                   ("grpc.max_send_message_length", limit),
                   ("grpc.enable_retries", 1),
                   # gRPC keeps a request for retries only up to this size (256 KiB
                   # by default, less than 2 s of audio); a dream is safe to retry
                   # whatever its size.
                   ("grpc.per_rpc_retry_buffer_size", limit),
                   ("grpc.service_config", replicas.service_config(self.replicas))]
        if target != address.strip():
            # Names were resolved to addresses: TLS still checks the first name.
            options.append(("grpc.default_authority", replicas.split(address)[0]))
        if tls or tls_ca:
            roots = open(tls_ca, "rb").read() if tls_ca else None
            self._channel = grpc.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates=roots), options)
        else:
            self._channel = grpc.insecure_channel(target, options)
        if token:
            self._channel = grpc.intercept_channel(self._channel, _TokenAdder(token))
        self._stub = pb_grpc.DreamServiceStub(self._channel)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def models(self) -> list[ModelInfo]:
        response = self._call(self._stub.ListModels, pb.ListModelsRequest())
        return [model_info(m, response.default_model) for m in response.models]

    def layers(self, model: str = "") -> Layers:
        return layers_of(self._call(self._stub.ListLayers, pb.ListLayersRequest(model=model)))

    def dream(self, audio, sample_rate: int | None = None, *, model: str = "",
              layers: Iterable = (), target=None, progress: Progress | None = None,
              **params) -> DreamOutput:
        """Dreams a sound.

        Args:
            audio: numpy `[T]` or `[T, C]` (needs `sample_rate`), a path, or file bytes.
            model: model name; "" = the server's default.
            layers: "NAME[:CH,CH...][@WEIGHT]" strings, (name, channels, weight)
                tuples or dicts; empty = the model's default layer.
            target: a target sound (path, file bytes, or (array, rate)) for the
                style / target_features objectives and the target_filter rule.
            progress: called with each progress update (uses DreamProgress).
            **params: any DreamParams field, e.g. iterations=20, step_size=0.02;
                `classes` takes "NAME[@W],..." strings, (name, weight) pairs or
                ints (indices), e.g. objective="class", classes=["C4,E4,G4"].
        """
        request = dream_request(audio, sample_rate, model, layers, params)
        if target is not None:
            request.target.CopyFrom(target_message(target))
        return dream_output(self._execute(request, progress), audio)

    def morph(self, a, b, a_rate: int | None = None, b_rate: int | None = None, *,
              model: str = "", **params) -> MorphOutput:
        """Morphs sound A toward sound B through an autoencoder model (Morph RPC).

        Args:
            a, b: numpy `[T]` / `[T, C]` (with `a_rate` / `b_rate`), paths or file bytes.
            model: an autoencoder model; "" = the server's first one.
            **params: MorphParams fields: amount (0..1), curve (amounts over time),
                group_amounts (per latent channel group), interpolation ("linear",
                "spherical"), phase ("blend", "griffinlim"), gl_iters, detail (0..1),
                output_format.
        Returns:
            the morph in A's layout, rate and length.
        """
        request = pb.MorphRequest(a=audio_message(a, a_rate), b=audio_message(b, b_rate),
                                  params=morph_params(model, **params))
        r = self._morph(request)
        audio = decode_audio(r.audio)
        if isinstance(a, np.ndarray) and np.ndim(a) == 1 and audio.shape[1] == 1:
            audio = audio[:, 0]
        return MorphOutput(
            audio=audio, sample_rate=r.audio.sample_rate, output_gain=r.output_gain,
            model=r.model, a_features=_features(r.a_features),
            b_features=_features(r.b_features), output_features=_features(r.output_features),
            latent_frames=r.latent_frames, latent_frame_rate=r.latent_frame_rate,
            latent_size=r.latent_size, amounts=list(r.amounts),
            timing={"queue": r.timing.queue_seconds, "prepare": r.timing.prepare_seconds,
                    "morph": r.timing.dream_seconds, "total": r.timing.total_seconds},
            params=r.params)

    def classify(self, audio, sample_rate: int | None = None, *, model: str = "",
                 top: int = 5, output: str = "") -> Classification:
        """What `model` hears in a sound: its `top` classes, best first.

        Args:
            audio: as for `dream`.
            output: the output to read ("" = the model's classes; basic-pitch:
                "note", "onset", "contour").
        """
        request = pb.ClassifyRequest(audio=audio_message(audio, sample_rate), model=model,
                                     top=top, output=output)
        r = self._call(self._stub.Classify, request, DREAM_BASE_SECONDS)
        return Classification(r.model, r.output, r.activation, r.windows,
                              [(s.name, s.index, s.score) for s in r.scores])

    def stream(self, sample_rate: int, channels: int = 1, block_size: int = 2048, *,
               model: str = "", layers: Iterable = (), mode: str = "process",
               window: int = 0, delay: int = 0, offline: bool = False, slack: int = 0,
               transport_ms: float = 0.0, target=None, reopen: bool = False, on_move=None,
               **params) -> DreamStream:
        """Opens a StreamDream call; `iterations` counts per block [4].

        Args:
            sample_rate, channels, block_size: the audio you will send (frames).
            mode: "process" (dream the input) or "generate" (free-running loop).
            window: context frames (0 = the server's default context); delay: output
                delay in frames (0 = one block); offline: never drop iterations.
            slack: frames this client can wait for a reply after sending a block
                (0 = one block); transport_ms: its round trip beyond the server's work.
            target: a target sound, as for `dream`.
            reopen: when the stream's replica shuts down or dies, reopen the
                stream on another with the same settings and go on (off: the
                stream ends with a ServerError). Each move is in `stream.moves`.
            on_move: called with each `Move` (for logging).
        """
        config = pb.StreamConfig(params=dream_params(model, layers, params),
                                 sample_rate=sample_rate, channels=channels,
                                 block_size=block_size, window=window, mode=mode, delay=delay,
                                 offline=offline, slack=slack, transport_ms=transport_ms)
        if target is not None:
            config.target.CopyFrom(target_message(target))
        return DreamStream(self._stub, config, self._deadline(None), reopen=reopen, on_move=on_move,
                           attempts=replicas.attempts_for(self.replicas))

    def _morph(self, request: pb.MorphRequest) -> pb.MorphResponse:
        return self._call(self._stub.Morph, request, DREAM_BASE_SECONDS)

    def _execute(self, request: pb.DreamRequest, progress: Progress | None) -> pb.DreamResponse:
        if progress is None:
            return self._call(self._stub.Dream, request, dream_deadline(request))
        deadline = self._deadline(dream_deadline(request))
        # gRPC retries a call only until its first reply: a DreamProgress whose
        # replica went away mid-dream is retried here, from the start (a seeded
        # dream gives the same sound on any replica).
        attempts = replicas.attempts_for(self.replicas)
        for attempt in range(attempts):
            result = None
            try:
                # Read to the end, so the call ends OK on both sides (leaving after
                # the result would cancel it: the server would count CANCELLED).
                for event in self._stub.DreamProgress(request, timeout=deadline):
                    if event.HasField("result"):
                        result = event.result
                    else:
                        progress(event.progress)
            except grpc.RpcError as exc:
                if exc.code() is grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts \
                        and result is None:
                    progress(pb.DreamProgressUpdate(stage="retrying"))
                    continue
                if result is None:
                    raise ServerError(exc.code().name, exc.details()) from None
            if result is None:
                raise ServerError("UNKNOWN", "the server ended DreamProgress without a result")
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _deadline(self, auto: float | None) -> float | None:
        if self.timeout == AUTO or isinstance(self.timeout, str):
            return auto
        return self.timeout

    def _call(self, method, request, deadline: float | None = LIST_SECONDS):
        """A unary call (all of them are safe to retry: see `replicas`). gRPC's policy
        retries it on another replica; should every attempt there meet a replica going
        away, it is made again here, the same number of times. `deadline` is the
        automatic one (see `timeout`)."""
        attempts = replicas.attempts_for(self.replicas)
        for attempt in range(attempts):
            try:
                return method(request, timeout=self._deadline(deadline))
            except grpc.RpcError as exc:
                if exc.code() is grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                    continue
                raise ServerError(exc.code().name, exc.details()) from None
        raise AssertionError("unreachable: the last attempt returns or raises")


class _TokenAdder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamStreamClientInterceptor):
    """Adds the bearer token to every call's metadata."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        metadata = list(details.metadata or []) + [self._header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with_token(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready = credentials, wait_for_ready
        self.compression = compression


def dream_output(response: pb.DreamResponse, like) -> DreamOutput:
    audio = decode_audio(response.audio)
    if isinstance(like, np.ndarray) and np.ndim(like) == 1 and audio.shape[1] == 1:
        audio = audio[:, 0]
    return DreamOutput(
        audio=audio, sample_rate=response.audio.sample_rate, loss=list(response.loss),
        input_features=_features(response.input_features),
        output_features=_features(response.output_features),
        output_gain=response.output_gain, model=response.model, windows=response.windows,
        timing={"queue": response.timing.queue_seconds,
                "prepare": response.timing.prepare_seconds,
                "dream": response.timing.dream_seconds,
                "total": response.timing.total_seconds},
        params=response.params, replica=response.replica,
        class_changes=[(c.name, c.before, c.after) for c in response.class_changes],
        others=(response.others_before, response.others_after))


def decode_audio(msg: pb.Audio) -> np.ndarray:
    """Audio -> `[T, C]` float32."""
    if msg.WhichOneof("data") == "pcm":
        return np.frombuffer(msg.pcm, dtype="<f4").reshape(-1, msg.channels).astype(np.float32)
    import io

    import soundfile as sf

    samples, _ = sf.read(io.BytesIO(msg.encoded), dtype="float32", always_2d=True)
    return samples


def model_info(m: pb.ModelInfo, default: str = "") -> ModelInfo:
    return ModelInfo(m.name, m.sample_rate, m.fixed_input_samples, m.description, m.device,
                     m.num_classes, m.trained, m.default_layer, m.domain, m.parameters,
                     m.name == default, m.error, m.pending)


def layers_of(r: pb.ListLayersResponse) -> Layers:
    return Layers(r.model, r.sample_rate, r.default_layer,
                  [LayerInfo(x.name, x.module_type, x.channels, x.frame_rate, x.stride)
                   for x in r.layers], list(r.classes), r.domain)


def _features(f: pb.Features) -> Features:
    return Features(f.rms, f.spectral_centroid_hz, f.spectral_flatness, f.spectral_flux)
