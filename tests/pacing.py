"""Pacing a client in real time against a clock, as an audio host does.

A host sends block k when its sound card reaches k * period, whatever the
previous send cost; so does `Pacer.wait_turn`. Sleeping a fixed period after
every block instead would drift late by the cost of each send. This is not a
wait for the server: it models when a real-time client has audio to send.
"""

from __future__ import annotations

import time


class Pacer:
    """Yields turns at `start + k * period` on the monotonic clock."""

    def __init__(self, period: float):
        self.period = period
        self._start = time.monotonic()
        self._turn = 0

    def wait_turn(self) -> None:
        """Returns at the next turn's time (at once if it is already past)."""
        due = self._start + self._turn * self.period
        self._turn += 1
        ahead = due - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
