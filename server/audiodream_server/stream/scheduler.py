"""Batching live streams: one worker per model runs every due block together.

Streams hand their block's `Job` to the model's scheduler and wait. The worker
takes all jobs waiting at that moment and runs them as one batch: at iteration
i, every job that still wants an iteration and can afford one before its
deadline contributes its items to a single forward/backward pass
(`ascent.step`). A job whose next iteration would end after its deadline stops
early: real time is kept by dreaming less, never by stalling. Each stream's
random shifts are its own, so batching does not change what a stream hears.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from ..engine.ascent import Group, step
from ..errors import Cancelled
from ..models.registry import LoadedModel
from .session import Job

log = logging.getLogger(__name__)

# Fraction of a block kept free for the work after the ascent (resampling, I/O).
SAFETY = 0.15
# Per skipped block, the cost estimate shrinks by this factor until a step runs again.
DECAY = 0.7


class StreamScheduler:
    """Runs jobs for one model on one worker thread, batching those that are due together."""

    def __init__(self, model: LoadedModel, max_items: int = 64):
        self.model = model
        self.max_items = max_items
        self._queue: queue.Queue = queue.Queue()
        self._iteration_seconds = 0.0  # running estimate of one step, per sample
        self.largest_batch = 0  # most streams ever stepped together (for stats and tests)
        self._thread = threading.Thread(target=self._run, name=f"stream-{model.spec.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def sample_seconds(self) -> float:
        """Measured seconds per sample per iteration (0 until the first pass)."""
        return self._iteration_seconds

    def run(self, job: Job, still_wanted=lambda: True, block_seconds: float = 0.0) -> Job:
        """Queues `job`, waits until it is done, returns it."""
        future: Future = Future()
        self._queue.put((job, future, block_seconds))
        while True:
            try:
                return future.result(timeout=0.1)
            except FutureTimeout:
                if not still_wanted():
                    future.cancel()
                    raise Cancelled("the stream ended while its block was queued") from None

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            items = len(first[0].x)
            while items < self.max_items:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
                items += len(more[0].x)
            batch = [entry for entry in batch if entry[1].set_running_or_notify_cancel()]
            try:
                self._ascend(batch)
            except BaseException as exc:  # the waiting streams get the error, the worker lives
                log.exception("stream batch failed")
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for job, future, _ in batch:
                future.set_result(job)

    def _ascend(self, batch) -> None:
        most = max((job.iterations for job, _, _ in batch), default=0)
        for i in range(most):
            wanting = [(job, block) for job, _, block in batch
                       if job.iterations_run < job.iterations]
            # One more step costs about this much for everyone still wanting one.
            cost = self._iteration_seconds * sum(job.x.numel() for job, _ in wanting)
            ready_by = time.perf_counter() + cost
            active = [job for job, block in wanting if self._affordable(job, ready_by, block)]
            if not active:
                if i == 0:
                    # Nothing ran, so nothing re-measures the cost: let the estimate
                    # decay, or one slow step would keep every later block at zero.
                    self._iteration_seconds *= DECAY
                return
            self.largest_batch = max(self.largest_batch, len(active))
            start = time.perf_counter()
            done = []
            for same in _by_length(active):  # one pass per context length
                groups = []
                for job in same:
                    if job.group is None:  # kept across iterations: guide computed once
                        job.group = Group(job.x, job.x0, job.params, 0, job.iterations,
                                          target=job.target, reference=job.reference)
                    job.group.x, job.group.iteration = job.x, i
                    job.group.shift = (job.shifts[i].to(job.x.device)
                                       if job.shifts is not None else None)
                    groups.append(job.group)
                done.extend(zip(same, step(self.model, groups), strict=True))
            spent = time.perf_counter() - start
            # Cost grows with the samples in the batch: keep a per-sample estimate,
            # quick to rise (a machine that just got busier makes the next step
            # slow too: plan for it at once) and slow to fall.
            per_sample = spent / sum(job.x.numel() for job in active)
            self._iteration_seconds = max(per_sample, 0.7 * self._iteration_seconds
                                          + 0.3 * per_sample)
            for job, (x, value) in done:
                job.x = x
                job.iterations_run += 1
                job.loss.append(float(value.mean()))

    @staticmethod
    def _affordable(job: Job, ready_by: float, block_seconds: float) -> bool:
        return math.isinf(job.deadline) or ready_by <= job.deadline - SAFETY * block_seconds


def _by_length(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped by context length (only equal lengths stack into one batch)."""
    groups: dict[int, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.x.shape[-1], []).append(job)
    return list(groups.values())
