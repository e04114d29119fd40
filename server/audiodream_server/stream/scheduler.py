"""Batching live streams: one worker per model runs every due block together.

Streams hand their block's `Job` to the model's scheduler and wait. The worker
takes all jobs waiting at that moment and runs them as one batch: at iteration
i, every job that still wants an iteration and can afford one before its
deadline contributes its items to a single forward/backward pass
(`ascent.step`). A job whose next iteration would end after its deadline stops
early: real time is kept by dreaming less, never by stalling. Each stream's
random shifts are its own, so batching does not change what a stream hears.

Waiting is by signal, never by polling: a stream waits on its job's future,
and the stream's `gone` signal (raised when its call ends) cancels a queued
job and fails a running one at once; the worker drops a job whose future is
already settled before its next pass. `stats()` counts the passes really run:
jobs of different context lengths due together are one batch but separate
passes, and a pass is counted with the jobs it actually stepped.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter
from concurrent.futures import CancelledError, Future, InvalidStateError
from dataclasses import dataclass, field

from ..engine.ascent import Group, step
from ..errors import Cancelled
from ..models.registry import LoadedModel
from ..signals import Signal
from .session import Job

log = logging.getLogger(__name__)

# Fraction of a block kept free for the work after the ascent (resampling, I/O).
SAFETY = 0.15
# Per skipped block, the cost estimate shrinks by this factor until a step runs again.
DECAY = 0.7


@dataclass(frozen=True)
class SchedulerStats:
    """What a scheduler has run so far (a snapshot).

    Attributes:
        batches: rounds of the worker (jobs taken together off the queue).
        passes: forward/backward passes run (one per iteration and context length).
        pass_sizes: number of passes by the number of jobs stepped in each.
        sample_seconds: the current cost estimate, seconds per sample per iteration.
    """

    batches: int = 0
    passes: int = 0
    pass_sizes: dict[int, int] = field(default_factory=dict)
    sample_seconds: float = 0.0

    @property
    def largest_pass(self) -> int:
        """Most jobs (streams) ever stepped in one pass (0 before the first)."""
        return max(self.pass_sizes, default=0)


class StreamScheduler:
    """Runs jobs for one model on one worker thread, batching those that are due together."""

    def __init__(self, model: LoadedModel, max_items: int = 64, sample_seconds: float = 0.0):
        """
        Args:
            max_items: most items (channels of all jobs) taken into one batch.
            sample_seconds: initial cost estimate, seconds per sample per iteration
                (0 = unknown until the first pass measures it).
        """
        self.model = model
        self.max_items = max_items
        self._queue: queue.Queue = queue.Queue()
        self._iteration_seconds = sample_seconds  # running estimate of one step, per sample
        self._stats_lock = threading.Lock()
        self._batches = 0
        self._pass_sizes: Counter[int] = Counter()
        self._thread = threading.Thread(target=self._run, name=f"stream-{model.spec.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def sample_seconds(self) -> float:
        """Measured seconds per sample per iteration (0 until the first pass)."""
        return self._iteration_seconds

    def run(self, job: Job, gone: Signal | None = None, block_seconds: float = 0.0) -> Job:
        """Queues `job`, waits until it is done, returns it.

        Args:
            gone: raised when the job is no longer wanted: the wait ends at once with
                `Cancelled` (a queued job is dropped, a running one is stepped no more).
            block_seconds: the stream's block period (the deadline keeps a share free).
        """
        return self.run_together([job], gone, block_seconds)[0]

    def run_together(self, jobs: list[Job], gone: Signal | None = None,
                     block_seconds: float = 0.0) -> list[Job]:
        """Queues `jobs` as one delivery, so the worker takes them into the same batch
        (as if they had arrived at once); waits until all are done."""
        entries = [(job, Future(), block_seconds) for job in jobs]
        self._queue.put(entries)
        forget = gone.subscribe(lambda: _abandon(entries)) if gone is not None else None
        try:
            return [future.result() for _, future, _ in entries]
        except CancelledError:
            raise Cancelled("the stream ended while its block was queued") from None
        finally:
            if forget is not None:
                forget()

    def stats(self) -> SchedulerStats:
        """A snapshot of what this scheduler has run."""
        with self._stats_lock:
            return SchedulerStats(self._batches, sum(self._pass_sizes.values()),
                                  dict(self._pass_sizes), self._iteration_seconds)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            items = sum(len(job.x) for job, _, _ in batch)
            while items < self.max_items:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.extend(more)
                items += sum(len(job.x) for job, _, _ in more)
            batch = [entry for entry in batch if entry[1].set_running_or_notify_cancel()]
            if not batch:
                continue
            with self._stats_lock:
                self._batches += 1
            try:
                self._ascend(batch)
            except BaseException as exc:  # the waiting streams get the error, the worker lives
                log.exception("stream batch failed")
                for _, future, _ in batch:
                    _settle(future, exc)
                continue
            for job, future, _ in batch:
                _settle(future, job)

    def _ascend(self, batch) -> None:
        most = max((job.iterations for job, _, _ in batch), default=0)
        for i in range(most):
            # A job whose stream left (its future failed) is stepped no more.
            wanting = [(job, block) for job, future, block in batch
                       if job.iterations_run < job.iterations and not future.done()]
            if not wanting:
                return
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
                with self._stats_lock:
                    self._pass_sizes[len(same)] += 1
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


def _abandon(entries) -> None:
    """The stream left: a queued job is cancelled, a running one fails at once
    (the worker skips it from its next pass on)."""
    for _, future, _ in entries:
        if not future.cancel():
            _settle(future, Cancelled("the stream ended while its block was dreamed"))


def _settle(future: Future, outcome) -> None:
    """Sets a result or exception unless the future was settled already (abandoned)."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass  # abandoned by its stream meanwhile: nobody waits for it


def _by_length(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped by context length (only equal lengths stack into one batch)."""
    groups: dict[int, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.x.shape[-1], []).append(job)
    return list(groups.values())
