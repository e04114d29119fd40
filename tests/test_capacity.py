"""Real-time capacity: a live stream the server cannot serve in time is refused.

The server adds up what its live streams want of the compute (iterations x
context x the measured cost of a step, per block period) and refuses a new one
that would take it over the limit, with RESOURCE_EXHAUSTED and the numbers,
instead of making every stream late (`stream/capacity.py`).
"""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from audiodream import Client
from audiodream.client import ServerError
from conftest import start_server
from audiodream_server.errors import ResourceExhausted
from audiodream_server.stream.capacity import Capacity, Claim

B = 2048


def _claim(iterations: int, seconds_per_sample: float, offline: bool = False) -> Claim:
    """A claim with the numbers `capacity.demand` reads (window 11025 model samples)."""
    session = SimpleNamespace(
        settings=SimpleNamespace(offline=offline, channels=1, block_seconds=B / 48000,
                                 window=12000),
        params=SimpleNamespace(iterations=iterations), window_samples=11025)
    scheduler = SimpleNamespace(sample_seconds=seconds_per_sample)
    return Claim(lambda: (session, scheduler))


def test_demands_add_up_and_the_one_that_does_not_fit_is_refused():
    capacity = Capacity(limit=0.85)
    per_sample = 0.2 * (B / 48000) / 11025 / 4  # 4 iterations = 20 % of a block
    first, second = _claim(4, per_sample), _claim(4, per_sample)
    capacity.admit(first)
    capacity.admit(second)
    assert capacity.used() == pytest.approx(0.4)
    capacity.admit(_claim(4, per_sample))
    capacity.admit(_claim(4, per_sample))  # 0.8
    with pytest.raises(ResourceExhausted, match="capacity"):
        capacity.admit(_claim(4, per_sample))
    capacity.admit(_claim(4, per_sample, offline=True))  # not real time: no demand
    capacity.release(first)
    capacity.admit(_claim(4, per_sample))  # room again


def test_a_lone_stream_and_an_unmeasured_model_are_admitted_and_0_turns_it_off():
    capacity = Capacity(limit=0.85)
    capacity.admit(_claim(1000, 1e-6))  # alone: it degrades rather than being refused
    capacity.admit(_claim(4, 0.0))  # a model never measured counts as free
    with pytest.raises(ResourceExhausted):
        capacity.admit(_claim(1, 1e-6))
    unlimited = Capacity(limit=0.0)
    for _ in range(5):
        unlimited.admit(_claim(1000, 1e-6))


def test_the_server_refuses_a_live_stream_it_cannot_serve_and_keeps_the_others(models):
    """A stream asking 1000 iterations per block wants many times the machine (on any
    CPU: a step costs more than 0.05 ms); a second live stream is refused with
    RESOURCE_EXHAUSTED and the reason, an offline one is still served, the first
    stream goes on, and once it ends a live stream gets in again. The refused stream
    is refused before its session is built: no trial forward pass runs for it (an
    admitted one with the same short context runs one)."""
    server, address = start_server(models, stream_capacity=0.85)
    block = (0.3 * np.sin(np.arange(B) * 2 * np.pi * 220 / 48000)).astype(np.float32)
    try:
        with Client(address) as c:
            with c.stream(48000, 1, B, iterations=1000) as hog:
                hog.send(block)
                hog.receive()  # its first block measured the cost of a step
                with pytest.raises(ServerError) as refused, _forward_calls() as calls:
                    c.stream(48000, 1, B, iterations=1)
                assert calls == []  # refused before any model work
                assert refused.value.code == "RESOURCE_EXHAUSTED"
                assert "real time" in refused.value.message
                assert "iterations" in refused.value.message  # says what to lower
                with c.stream(48000, 1, B, iterations=1, offline=True) as rendering:
                    rendering.send(block)
                    assert len(rendering.receive()[1]) == B
                hog.send(block)
                assert len(hog.receive()[1]) == B
            capacity = server.services.dream.streams.capacity
            assert capacity.wait_live(0, timeout=30)  # the server saw the call end
            with _forward_calls() as calls, c.stream(48000, 1, B, iterations=1) as again:
                assert calls  # the control: opening this context costs a trial pass
                again.send(block)
                assert len(again.receive()[1]) == B
    finally:
        server.stop(None)


@contextmanager
def _forward_calls():
    """Lists the torch modules run (any thread) while the block runs."""
    calls: list[str] = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, output: calls.append(type(module).__name__))
    try:
        yield calls
    finally:
        hook.remove()
