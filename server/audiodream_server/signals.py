"""Signals: a flag raised once, whose raising reaches every waiter at once.

A thread waiting for its work to finish must also learn at once that the work
is no longer wanted (the caller left), without waking up now and then to ask.
A `Signal` is a one-way flag with subscribers: `set()` runs every subscribed
callback on the setting thread, exactly once, and wakes `wait()`. A callback
subscribed after the signal was raised runs immediately, so there is no window
in which a raise is missed.

    >>> gone = Signal()
    >>> heard = []
    >>> forget = gone.subscribe(lambda: heard.append("gone"))
    >>> gone.set(); gone.set()
    >>> heard, gone.is_set()
    (['gone'], True)
"""

from __future__ import annotations

import itertools
import threading
from typing import Callable


class Signal:
    """A flag that is raised once; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._callbacks: dict[int, Callable[[], object]] = {}
        self._keys = itertools.count()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until raised (or `timeout` seconds pass); True once raised."""
        return self._event.wait(timeout)

    def set(self) -> None:
        """Raises the flag: every subscriber is called once, on this thread."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = list(self._callbacks.values()), {}
        for callback in callbacks:
            callback()

    def subscribe(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Calls `callback()` when the flag is raised (now, if it already is).
        Returns a function that unsubscribes it (harmless after the raise)."""
        with self._lock:
            if not self._event.is_set():
                key = next(self._keys)
                self._callbacks[key] = callback
                return lambda: self._forget(key)
        callback()
        return lambda: None

    def _forget(self, key: int) -> None:
        with self._lock:
            self._callbacks.pop(key, None)
