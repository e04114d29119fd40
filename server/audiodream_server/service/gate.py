"""Admission control for compute: a few dreams run, a few wait, the rest are refused.

On a small machine, two dreams at once only share the same cores and both get
slower; torch also spins up threads per dream. So at most `active` dreams
compute at a time and at most `waiting` queue for a slot; beyond that a request
is refused at once with RESOURCE_EXHAUSTED rather than left hanging.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import Cancelled, ResourceExhausted


class ComputeGate:
    def __init__(self, active: int = 1, waiting: int = 16):
        self._slots = threading.Semaphore(active)
        self._lock = threading.Lock()
        self._waiting = 0
        self._max_waiting = waiting

    @contextmanager
    def slot(self, still_wanted: Callable[[], bool] = lambda: True) -> Iterator[float]:
        """Holds a compute slot; yields the seconds spent queueing."""
        with self._lock:
            if self._waiting >= self._max_waiting:
                raise ResourceExhausted(f"server busy: {self._waiting} dreams already queued; "
                                        "try again later")
            self._waiting += 1
        start = time.perf_counter()
        try:
            while not self._slots.acquire(timeout=0.1):
                if not still_wanted():
                    raise Cancelled("the caller left while queued")
        finally:
            with self._lock:
                self._waiting -= 1
        try:
            yield time.perf_counter() - start
        finally:
            self._slots.release()
