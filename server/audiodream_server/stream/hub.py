"""All live streams of a server: how many, and one batching scheduler per model."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import Busy, Unavailable
from ..models.registry import LoadedModel
from .capacity import DEFAULT_LIMIT, Capacity
from .scheduler import StreamScheduler


class StreamHub:
    """Admits streams up to `max_streams` (and live ones up to the real-time
    `capacity`, `capacity.py`) and shares a scheduler per model."""

    def __init__(self, max_streams: int = 16, max_items: int = 64,
                 capacity: float = DEFAULT_LIMIT):
        self.max_streams = max_streams
        self.max_items = max_items
        self.capacity = Capacity(capacity)
        self._lock = threading.Condition()
        self._active = 0
        self._schedulers: dict[str, StreamScheduler] = {}
        self.draining = False
        self.drain_deadline = 0.0  # time.monotonic() when draining streams are cut

    def drain(self, seconds: float) -> None:
        """Refuses new streams; running ones are warned to move within `seconds`."""
        self.drain_deadline = time.monotonic() + seconds
        self.draining = True

    @property
    def active(self) -> int:
        return self._active

    def wait_active(self, wanted: Callable[[int], bool], timeout: float) -> bool:
        """Waits until `wanted(streams holding a slot)` is true (woken by every stream
        that opens or ends, no polling); False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: wanted(self._active), timeout)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Holds a stream slot for the duration of a stream."""
        with self._lock:
            if self.draining:
                raise Unavailable("this server is shutting down; open the stream on another "
                                  "replica")
            if self._active >= self.max_streams:
                raise Busy(f"{self._active} streams are running, the most this server takes; "
                           "try again later", "streams_full")
            self._active += 1
            self._lock.notify_all()
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._lock.notify_all()

    def scheduler(self, model: LoadedModel) -> StreamScheduler:
        with self._lock:
            name = model.spec.name
            if name not in self._schedulers:
                self._schedulers[name] = StreamScheduler(model, self.max_items)
            return self._schedulers[name]

    def close(self) -> None:
        with self._lock:
            schedulers, self._schedulers = list(self._schedulers.values()), {}
        for s in schedulers:
            s.close()
