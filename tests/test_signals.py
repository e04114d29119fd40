"""`Signal`: raised once, heard by every subscriber and waiter at once."""

from __future__ import annotations

import threading

from audiodream_server.signals import Signal


def test_subscribers_run_once_on_the_raising_thread_and_late_ones_at_once():
    gone = Signal()
    heard: list[str] = []
    gone.subscribe(lambda: heard.append(threading.current_thread().name))
    forget = gone.subscribe(lambda: heard.append("forgotten"))
    forget()
    raiser = threading.Thread(target=gone.set, name="raiser")
    raiser.start()
    raiser.join()
    gone.set()  # a second raise changes nothing
    assert heard == ["raiser"]
    gone.subscribe(lambda: heard.append("late"))  # already raised: runs now
    assert heard == ["raiser", "late"] and gone.is_set()


def test_a_waiter_is_woken_by_the_raise():
    gone = Signal()
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: gone.wait() and woke.set())
    waiter.start()
    assert not woke.is_set()
    gone.set()
    waiter.join(timeout=60)
    assert woke.is_set()
