"""`serve` stops on SIGTERM / SIGINT whichever thread the kernel hands the signal to.

A process with gRPC's threads may have a signal delivered to any of them; a main
thread blocked on a lock is then never woken to run a Python handler, and the
server would never stop (seen once in CI: SIGTERM under load, killed after 60 s).
Here a helper thread sends the signal to itself, once the main thread is waiting.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = """
import signal, sys, threading
from audiodream_server.service import server

waiting = threading.Event()
set_wakeup_fd = signal.set_wakeup_fd

def noted(fd, **kwargs):  # the main thread is about to wait
    previous = set_wakeup_fd(fd, **kwargs)
    if fd != -1:
        waiting.set()
    return previous

signal.set_wakeup_fd = noted

def from_another_thread():
    waiting.wait()
    signal.pthread_kill(threading.get_ident(), signal.SIG{name})

threading.Thread(target=from_another_thread).start()
print("stopped by", server.wait_for_stop_signal(), flush=True)
"""


@pytest.mark.parametrize("name", ["TERM", "INT"])
def test_a_signal_taken_by_another_thread_still_stops_the_wait(name):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(name=name)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    number = getattr(signal, f"SIG{name}")
    assert result.stdout.strip() == f"stopped by {number}"
