"""Real-time capacity: what the live streams ask of the server, and who may join.

Every live (not offline) stream wants, per second of audio,

    demand = K * C * W * c / T_block

of the compute: K iterations per block on C channels of a W-sample context,
at c seconds per sample and iteration (its model's scheduler measures c on
every pass, batched or not), every T_block seconds. The demands of all live
streams add up (all schedulers share the cores). A new stream is admitted when

    sum(demand of the others) + demand(new) <= limit

or when it would be alone (a lone stream that asks too much degrades, as
before: fewer iterations per block). So the server refuses the stream that
would make every stream late, with RESOURCE_EXHAUSTED and the numbers, instead
of taking it. `limit` < 1 leaves room for the work around the ascent
(resampling, transport); 0 turns the check off. A model whose cost was never
measured counts as free until its first block.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from ..engine.params import DreamParams
from ..errors import ResourceExhausted
from ..models.registry import LoadedModel
from .scheduler import StreamScheduler
from .session import StreamSession, window_samples
from .settings import StreamSettings

DEFAULT_LIMIT = 0.85


@dataclass(frozen=True)
class Plan:
    """A stream about to open: what `demand` reads, known before its session is
    built (so a stream is admitted or refused before any costly set-up)."""

    settings: StreamSettings
    params: DreamParams
    model: LoadedModel

    @property
    def window_samples(self) -> int:
        return window_samples(self.settings, self.model.spec)


def demand(session: StreamSession | Plan, scheduler: StreamScheduler) -> float:
    """Share of one second of compute this stream wants per second (0 = unknown/offline)."""
    s = session.settings
    if s.offline:
        return 0.0
    samples = session.params.iterations * s.channels * session.window_samples
    return samples * scheduler.sample_seconds / s.block_seconds


class Claim:
    """One admitted live stream; `current` gives its session (or, while it opens, its
    `Plan`) and scheduler now (a Control may replace the session, e.g. on a model
    change)."""

    def __init__(self, current: Callable[[], tuple[StreamSession | Plan, StreamScheduler]]):
        self.current = current

    def demand(self) -> float:
        return demand(*self.current())


class Capacity:
    """The live streams' claims on the server's compute.

    Args:
        limit: most total demand admitted (see the module docstring); 0 = no check.
    """

    def __init__(self, limit: float = DEFAULT_LIMIT):
        self.limit = limit
        self._lock = threading.Condition()
        self._claims: list[Claim] = []

    @property
    def live(self) -> int:
        """Live streams admitted now."""
        with self._lock:
            return len(self._claims)

    def wait_live(self, most: int, timeout: float) -> bool:
        """Waits until at most `most` live streams remain (a closed call's claim is
        released by the server a moment after the client leaves); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._claims) <= most, timeout)

    def used(self) -> float:
        """Total demand of the live streams now."""
        with self._lock:
            claims = list(self._claims)
        return sum(c.demand() for c in claims)

    def admit(self, claim: Claim) -> None:
        """Adds `claim`, or raises ResourceExhausted when it does not fit."""
        with self._lock:
            others = sum(c.demand() for c in self._claims)
            wanted = claim.demand()
            if self.limit and self._claims and wanted and others + wanted > self.limit:
                session = claim.current()[0]
                raise ResourceExhausted(
                    f"this server cannot dream one more stream in real time: the "
                    f"{len(self._claims)} live stream(s) use {others:.0%} of its capacity and "
                    f"this one ({session.params.iterations} iterations per block on a "
                    f"{session.settings.window}-frame context) would need {wanted:.0%} more "
                    f"(limit {self.limit:.0%}); use fewer iterations or a shorter window, "
                    "stream offline, or try later")
            self._claims.append(claim)

    def release(self, claim: Claim) -> None:
        with self._lock:
            if claim in self._claims:
                self._claims.remove(claim)
                self._lock.notify_all()
