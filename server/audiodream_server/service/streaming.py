"""One StreamDream call: config, then blocks and controls in, blocks and stats out.

Only a bad StreamConfig ends the call with a status; a bad chunk or control is
answered in-band with a StreamWarning and the stream goes on. Every chunk gets
exactly one chunk back, with the same `seq` and size.

A stream takes its slot in the hub as soon as it opens and must send its config
within `config_seconds`, so idle calls cannot pile up unaccounted. A live stream
is admitted against the real-time capacity from its settings alone, before its
session is built (a short context costs a trial forward pass), so a refused
stream costs nothing. The call itself is a coroutine; its blocking work
(opening, each block) runs on the streams' thread pool, one thread per admitted
stream at most. When the call ends (the client left or cancelled), its `gone`
signal frees a block waiting in the scheduler at once.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from audiodream_proto.v1 import audiodream_pb2 as pb

from ..engine.params import DreamParams, Limits
from ..errors import (Cancelled, DeadlineExceeded, DreamError, FailedPrecondition,
                      InvalidArgument, OutOfRange)
from ..models.registry import ResidentModels
from ..signals import Signal
from ..stream import STREAM_DEFAULTS, StreamHub, StreamSession, StreamSettings
from ..stream.capacity import Claim, Plan
from ..stream.session import window_samples
from ..stream.settings import MODES
from . import budget, convert
from .status import Malformed

STATS_SECONDS = 1.0  # audio time between StreamStats messages


@dataclass
class _Period:
    """Measurements since the last StreamStats."""

    seconds: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    degraded: bool = False


class StreamCall:
    """Drives one stream: `responses(requests)` is the RPC's async response iterator."""

    def __init__(self, models: ResidentModels, hub: StreamHub, limits: Limits,
                 executor: Executor, config_seconds: float = 10.0, metrics=None,
                 replica: str = ""):
        self.models = models
        self.hub = hub
        self.limits = limits
        self.executor = executor
        self.config_seconds = config_seconds
        self.metrics = metrics
        self.replica = replica
        self._told_to_move = False
        self.gone = Signal()  # raised when the call ends
        self.blocks = 0
        self.late = 0
        self._live_session: StreamSession | Plan | None = None
        self._period = _Period()

    async def responses(self, requests):
        loop = asyncio.get_running_loop()
        requests = aiter(requests)
        with self.hub.admit():
            try:
                first = await asyncio.wait_for(anext(requests), self.config_seconds)
            except StopAsyncIteration:
                return
            except asyncio.TimeoutError:
                raise DeadlineExceeded(f"no StreamConfig within {self.config_seconds:g} s of "
                                       "opening the stream; send it first") from None
            if isinstance(first, Malformed):
                raise first.error()
            if first.WhichOneof("msg") != "config":
                raise InvalidArgument("the first StreamDream message must be a StreamConfig")
            claim = Claim(lambda: (self._live_session,
                                  self.hub.scheduler(self._live_session.model)))
            try:
                session = await loop.run_in_executor(self.executor, self._open, first.config,
                                                     claim)
                self._live_session = session
                yield self._ready(session)
                async for request in requests:
                    if isinstance(request, Malformed):
                        yield warning("malformed", f"{request.error()}; message ignored")
                        continue
                    kind = request.WhichOneof("msg")
                    if kind == "audio":
                        replies = await loop.run_in_executor(self.executor, self._block,
                                                             session, request.audio)
                    elif kind == "control":
                        session, replies = await loop.run_in_executor(
                            self.executor, self._control, session, request.control)
                        self._live_session = session
                    else:
                        replies = [warning("unexpected_config", "StreamConfig is only allowed "
                                           "first; use Control to change")]
                    if self.hub.draining and not self._told_to_move:
                        self._told_to_move = True
                        yield self._move_warning()  # before this block's answer
                    for reply in replies:
                        yield reply
            finally:
                # Raised first: an opening still running on its thread sees it and
                # gives back a claim it takes after this release.
                self.gone.set()  # a block waiting in the scheduler gives up at once
                self.hub.capacity.release(claim)

    # -- opening and changing -----------------------------------------------------------

    def _open(self, config: pb.StreamConfig, claim: Claim) -> StreamSession:
        session = self._session(convert.params_from_proto(config.params, STREAM_DEFAULTS),
                                convert.stream_settings_from_proto(config), claim)
        if config.HasField("target"):
            session.set_target(*convert.audio_from_proto(config.target, self.limits, "target"))
        _check_target(session, session.params)
        return session

    def _session(self, params: DreamParams, settings: StreamSettings,
                 claim: Claim | None = None) -> StreamSession:
        """Builds the session; with `claim`, first admits it against the capacity."""
        model = self.models.get(params.model)
        params = params.validate(self.limits).resolve(model.spec)
        resolved = settings.resolve(model.spec, self.limits)
        if claim is not None:
            self._admit(claim, Plan(resolved, params, model))
        try:
            _check_short_window(resolved, model)
        except OutOfRange:
            if not resolved.context_chosen:
                raise
            # The default context is too short for this model: its own window.
            resolved = settings.resolve(model.spec, self.limits, own_window=True)
            if claim is not None:  # a longer context asks more: admitted again
                self.hub.capacity.release(claim)
                self._admit(claim, Plan(resolved, params, model))
        session = StreamSession(resolved, params, model)
        budget.check_stft(params, session.window_samples, session.settings.channels)
        return session

    def _admit(self, claim: Claim, plan: Plan) -> None:
        self._live_session = plan
        self.hub.capacity.admit(claim)
        if self.gone.is_set():  # the call ended while it opened
            self.hub.capacity.release(claim)
            raise Cancelled("the stream ended while it opened")

    def _ready(self, session: StreamSession) -> pb.StreamResponse:
        ready = convert.stream_ready(session.settings, session.params, session.model,
                                     session.latency)
        ready.ready.replica = self.replica
        return ready

    def _move_warning(self) -> pb.StreamResponse:
        left = max(0.0, self.hub.drain_deadline - time.monotonic())
        return warning("draining", f"this server is shutting down; the stream ends in about "
                       f"{left:.0f} s: reopen it on another replica")

    def _control(self, session: StreamSession, control: pb.Control):
        """Applies a Control at this block boundary; returns the session and any replies."""
        try:
            if control.mode and control.mode not in MODES:
                raise InvalidArgument(f"unknown mode {control.mode!r}; "
                                      f"allowed: {', '.join(MODES)}")
            params = convert.params_from_proto(control.params, session.params)
            if params.model != session.model.spec.name:
                # Another model: its layers, rate and window differ, so start afresh.
                if not control.params.layers:
                    params = replace(params, layers=())
                settings = replace(session.settings, window=0,
                                   mode=control.mode or session.settings.mode)
                new = self._session(params, settings)
                return new, [warning("model_changed", f"now dreaming with {params.model}; "
                                     "the stream state was reset"), self._ready(new)]
            params = params.validate(self.limits).resolve(session.model.spec)
            # The same STFT rules as at open: a filter rule that cannot run would
            # fail every stream batched with this one.
            budget.check_stft(params, session.window_samples, session.settings.channels)
            if control.HasField("target"):
                session.set_target(*convert.audio_from_proto(control.target, self.limits,
                                                             "target"))
            waiting = _morph_waits_for_target(session, control.mode)
            if not waiting:
                _check_target(session, params, control.mode)
        except DreamError as exc:
            return session, [warning("invalid_control", f"control ignored: {exc}")]
        session.update(params, control.mode or None)
        if control.reset:
            session.reset()
        if waiting:
            # A host may send the mode before its target arrives (a buffer is read
            # asynchronously): the input passes through until the target comes.
            return session, [warning("no_target", "morph mode has no target yet: the input "
                                     "passes through until one arrives")]
        return session, []

    # -- audio --------------------------------------------------------------------------

    def _block(self, session: StreamSession, chunk: pb.AudioChunk):
        arrival = time.perf_counter()
        settings = session.settings
        replies = []
        try:
            block = convert.block_from_chunk(chunk, settings)
        except DreamError as exc:
            replies.append(warning("invalid_audio", f"{exc}; silence used instead", chunk.seq))
            block = np.zeros((settings.channels, settings.block_size), np.float32)
        job = session.begin(block, arrival)
        if job is not None:
            scheduler = self.hub.scheduler(session.model)
            job = scheduler.run(job, self.gone, settings.block_seconds)
        out = session.finish(job)
        done = time.perf_counter()
        self.blocks += 1
        if job is not None and done > job.deadline:
            self.late += 1
        wanted = job.iterations if job is not None else 0
        ran = job.iterations_run if job is not None else 0
        if self.metrics is not None:
            self.metrics.stream_block(session.model.spec.name, done - arrival,
                                      settings.block_seconds,
                                      job is not None and done > job.deadline, wanted, ran)
        self._period.seconds.append(done - arrival)
        self._period.iterations.append(ran)
        if ran < wanted and not self._period.degraded:
            self._period.degraded = True
            replies.append(warning("degraded", f"ran {ran} of {wanted} iterations to keep "
                                   "real time", chunk.seq))
        if not np.isfinite(out).all():
            # The model diverged on this block: the client gets silence, never NaN.
            out = np.where(np.isfinite(out), out, 0.0).astype(np.float32)
            replies.append(warning("non_finite", "the dream produced NaN or infinite samples; "
                                   "they were replaced by silence (try a smaller step_size "
                                   "or a longer window)", chunk.seq))
        replies.append(convert.chunk_from_block(chunk.seq, out))
        if len(self._period.seconds) * settings.block_seconds >= STATS_SECONDS:
            replies.append(self._stats(settings.block_seconds))
        return replies

    def _stats(self, block_seconds: float) -> pb.StreamResponse:
        period, self._period = self._period, _Period()
        mean = float(np.mean(period.seconds))
        return pb.StreamResponse(stats=pb.StreamStats(
            blocks=self.blocks, mean_block_seconds=mean,
            max_block_seconds=float(np.max(period.seconds)),
            real_time_factor=mean / block_seconds, late_blocks=self.late,
            iterations_run=float(np.mean(period.iterations)),
            capacity_used=self.hub.capacity.used()))


def _check_short_window(settings: StreamSettings, model) -> None:
    """A fixed-window model given a shorter context must still compute its layers
    (a trial forward pass)."""
    spec = model.spec
    samples = window_samples(settings, spec)
    if not spec.fixed_input_samples or samples == spec.fixed_input_samples:
        return
    try:
        with torch.no_grad():
            model.module.features(torch.zeros(1, samples, device=model.device),
                                  spec.layer_names)
    except Exception as exc:  # noqa: BLE001 - any failure means "too short for it"
        raise OutOfRange(f"model {spec.name} cannot dream a {settings.window}-frame "
                         f"context ({exc}); use window 0 (its own window)") from None


def _morph_waits_for_target(session: StreamSession, mode: str) -> bool:
    """A Control into morph mode on an autoencoder, before any target was sent."""
    return (mode or session.settings.mode) == "morph" and session.morph_target is None \
        and callable(getattr(session.model.module, "encode_mel", None))


def _check_target(session: StreamSession, params: DreamParams, mode: str = "") -> None:
    if (mode or session.settings.mode) == "morph":
        if session.morph_target is None and callable(
                getattr(session.model.module, "encode_mel", None)):
            raise InvalidArgument("morph mode needs a target sound: send one in StreamConfig "
                                  "or Control")
        if session.morph_target is None:
            raise FailedPrecondition(f"model {session.model.spec.name!r} cannot morph: "
                                     "morph mode needs an autoencoder model "
                                     "(e.g. instruments-ae)")
    if params.needs_target() and session.target is None:
        raise InvalidArgument(f"objective {params.objective!r} with update {params.update!r} "
                              "needs a target sound: send one in StreamConfig or Control")


def warning(code: str, message: str, seq: int = 0) -> pb.StreamResponse:
    return pb.StreamResponse(warning=pb.StreamWarning(code=code, message=message, seq=seq))
