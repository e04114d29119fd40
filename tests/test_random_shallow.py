"""The random shallow network (Ulyanov & Lebedev): listed, seeded, and it moves a sound's
feature correlations toward a target's under the `style` objective, through the server."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiodream import Client
from audiodream_server.models.catalog import build_registry
from audiodream_server.models.random_shallow import RandomShallow
from conftest import start_server

RATE = 44100


def test_weights_are_a_function_of_the_seed():
    a, b, c = RandomShallow(seed=0), RandomShallow(seed=0), RandomShallow(seed=1)
    wa, wb, wc = (m.stages["conv"][0].weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    # He scaling: std sqrt(2 / fan_in), fan_in = 1025 bins x 11 frames.
    assert float(wa.std()) == pytest.approx((2 / (1025 * 11)) ** 0.5, rel=0.01)


@pytest.fixture(scope="module")
def address():
    models = build_registry(shipped=False, pretrained=False).load(
        torch.device("cpu"), ["random-shallow"])
    server, address = start_server(models)
    yield address
    server.stop(None)


def test_listed_and_style_dream_approaches_the_target(address):
    t = np.arange(RATE) / RATE
    x = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    target = (0.3 * np.sign(np.sin(2 * np.pi * 330 * t))).astype(np.float32)
    with Client(address) as c:
        info = {m.name: m for m in c.models()}["random-shallow"]
        assert not info.trained and info.num_classes == 0
        layers = c.layers("random-shallow").layers
        assert [(layer.name, layer.channels) for layer in layers] == [("conv", 2048)]
        out = c.dream(x, RATE, model="random-shallow", objective="style", iterations=3,
                      target=(target, RATE))
    # The style objective is minus the Gram distance: it rises toward the target's.
    assert out.loss[-1] > out.loss[0]
    assert out.audio.shape == x.shape and np.abs(out.audio - x).max() > 1e-3
