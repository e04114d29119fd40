"""Admission control for compute: a few dreams run, a few wait in order, the rest are refused.

On a small machine, two dreams at once only share the same cores and both get
slower; torch also spins up threads per dream. So at most `active` dreams
compute at a time and at most `waiting` queue for a slot; beyond that a request
is refused at once with RESOURCE_EXHAUSTED rather than left hanging.

The gate lives on the server's event loop (no locks, no polling): a waiter is a
future in a FIFO queue, and a released slot goes to the oldest waiter still
there, so nobody waits longer than their turn. Other threads (a test, an
operator's probe) may wait for a state of the gate with `wait_until`, woken on
every change.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Callable

from ..errors import Busy


class ComputeGate:
    def __init__(self, active: int = 1, waiting: int = 16):
        self.active = active
        self.max_waiting = waiting
        self._free = active
        self._waiters: deque[asyncio.Future] = deque()
        self._changed = threading.Condition()  # notified on every change, for `wait_until`

    @property
    def running(self) -> int:
        """Slots taken now."""
        return self.active - self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> float:
        """Takes a compute slot (call `release` once done); returns the seconds spent queued."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            self._notify()
            return 0.0
        if len(self._waiters) >= self.max_waiting:
            raise Busy(f"server busy: {len(self._waiters)} dreams already queued, "
                       "the most it queues; try again later", "queue_full")
        start = time.perf_counter()
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        self._notify()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot as we left: pass it on
            else:
                self._waiters.remove(turn)
                self._notify()
            raise
        return time.perf_counter() - start

    def release(self) -> None:
        """Frees a slot: the oldest waiter gets it, else it becomes free."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                self._notify()
                return
        self._free += 1
        self._notify()

    def wait_until(self, wanted: Callable[["ComputeGate"], bool], timeout: float) -> bool:
        """From another thread: waits until `wanted(gate)` is true (e.g. `lambda g:
        g.waiting == 3`), woken on every change; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: wanted(self), timeout)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
