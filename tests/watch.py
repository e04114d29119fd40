"""Waiting on what a child process writes, not on the clock.

`Output` reads a child's pipe on a thread (raw chunks, so progress bars that end
lines with a carriage return are seen too), keeps the text, optionally copies it
to a log file, and wakes every waiter on each chunk and at the end of the pipe.
`wait_for` returns as soon as a pattern appears; its timeout is only a safety net
for a child that hangs, never a measure of speed.
"""

from __future__ import annotations

import codecs
import os
import re
import threading
import time
from typing import IO


class Output:
    """The text a child process writes to `pipe` (opened in binary mode)."""

    def __init__(self, pipe: IO[bytes], copy_to: IO[str] | None = None):
        self._fd = pipe.fileno()
        self._copy = copy_to
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            chunk = os.read(self._fd, 65536)
            text = self._decoder.decode(chunk, final=not chunk)
            if self._copy is not None and text:
                self._copy.write(text)
                self._copy.flush()
            with self._changed:
                self._text += text
                self._ended = not chunk
                self._changed.notify_all()
            if not chunk:
                return

    def text(self) -> str:
        with self._changed:
            return self._text

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 180.0):
        """Waits until `pattern` (a regular expression, multiline) has matched `count`
        times; returns the last match, or None if the pipe ended or `timeout` passed."""
        regex = re.compile(pattern, re.MULTILINE)

        def found():
            matches = list(regex.finditer(self._text))
            return matches[count - 1] if len(matches) >= count else None

        with self._changed:
            self._changed.wait_for(lambda: self._ended or found() is not None, timeout)
            return found()

    def wait_closed(self, timeout: float = 60.0) -> bool:
        """Waits for the end of the pipe (the child exited or closed it)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


def poll_until(predicate, timeout: float = 120.0, interval: float = 0.02) -> bool:
    """Asks `predicate()` until it is true; False after `timeout` seconds.

    Only for state that announces no change: another process's metrics page,
    read over HTTP. Anything that can be waited on (a reply, a line of output,
    a condition in this process) is waited on instead.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
