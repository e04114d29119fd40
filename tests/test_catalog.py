"""The models directory: user TorchScript models, bad files refused, the server unharmed."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from audiodream import Client
from audiodream_server.models.catalog import build_registry
from audiodream_server.service.config import ServerConfig
from audiodream_server.service.server import create_server
from sounds import tone


class TinyEncoder(torch.nn.Module):
    """A user's own model: two conv layers on 16 kHz audio, any length."""

    def __init__(self):
        super().__init__()
        self.enc1 = torch.nn.Conv1d(1, 8, 65, stride=4, padding=32)
        self.enc2 = torch.nn.Conv1d(8, 12, 9, stride=2, padding=4)

    def features(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        h1 = torch.tanh(self.enc1(audio.unsqueeze(1)))
        h2 = torch.tanh(self.enc2(h1))
        return {"enc1": h1, "enc2": h2}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.features(audio)["enc2"]


class Boom:
    """Unpickling this would write a file: proof that nothing gets unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_user_model(folder, name="tiny-user"):
    torch.manual_seed(0)
    scripted = torch.jit.script(TinyEncoder())
    scripted.save(str(folder / f"{name}.pt"))
    (folder / f"{name}.json").write_text(json.dumps({
        "name": name, "format": "torchscript", "file": f"{name}.pt", "sample_rate": 16000,
        "layers": [{"name": "enc1", "channels": 8, "stride": 4, "module_type": "Conv1d"},
                   {"name": "enc2", "channels": 12, "stride": 8, "module_type": "Conv1d"}],
        "default_layer": "enc2", "description": "a user's TorchScript model"}))


def write_bad_files(folder, marker):
    (folder / "broken.json").write_text("{ not json")
    (folder / "alien.json").write_text(json.dumps(
        {"name": "alien", "arch": "transformer9000", "sample_rate": 44100, "classes": ["a", "b"]}))
    # A "checkpoint" whose weights are a pickle that would run code.
    (folder / "trojan.json").write_text(json.dumps(
        {"name": "trojan", "arch": "model2", "sample_rate": 44100, "classes": ["a", "b"]}))
    (folder / "trojan.safetensors").write_bytes(pickle.dumps(Boom(str(marker))))
    # A "TorchScript" archive that is a pickle too.
    (folder / "fake-script.pt").write_bytes(pickle.dumps(Boom(str(marker))))
    (folder / "fake-script.json").write_text(json.dumps({
        "name": "fake-script", "format": "torchscript", "sample_rate": 16000,
        "layers": [{"name": "x", "channels": 1}]}))


@pytest.fixture()
def user_server(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    write_user_model(folder)
    marker = tmp_path / "pwned"
    write_bad_files(folder, marker)
    registry = build_registry([folder], shipped=False, pretrained=False, torchscript=True)
    models = registry.load(torch.device("cpu"))
    server, port, _ = create_server(ServerConfig(port=0), models)
    server.start()
    yield f"127.0.0.1:{port}", marker
    server.stop(None)


def test_user_torchscript_model_is_listed_and_dreamed(user_server):
    address, _ = user_server
    with Client(address) as c:
        names = {m.name: m for m in c.models()}
        assert names["tiny-user"].sample_rate == 16000 and not names["tiny-user"].error
        assert names["tiny-user"].fixed_input_samples == 0
        layers = c.layers("tiny-user")
        assert [layer.name for layer in layers.layers] == ["enc1", "enc2"]
        assert layers.layers[1].frame_rate == pytest.approx(2000.0)
        x = tone(1.3, 44100)[:, 0]
        out = c.dream(x, 44100, model="tiny-user", layers=["enc1:0,3"], iterations=5)
        assert out.audio.shape == x.shape and out.loss[-1] > out.loss[0]
        assert out.windows == 1  # any-length model: the whole sound at once


def test_bad_files_are_listed_as_failed_and_nothing_is_unpickled(user_server):
    address, marker = user_server
    with Client(address) as c:
        failed = {m.name: m.error for m in c.models() if m.error}
        assert set(failed) >= {"broken", "alien", "trojan", "fake-script"}
        assert "JSON" in failed["broken"] and "transformer9000" in failed["alien"]
        assert "safetensors" in failed["trojan"] and "TorchScript" in failed["fake-script"]
        assert not marker.exists()
        # The server carries on with the good ones.
        out = c.dream(np.zeros(8000, np.float32) + 0.1, 16000, model="tiny-user", iterations=1)
        assert out.audio.shape == (8000,)


def test_duplicate_names_are_refused(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        write_user_model(tmp_path / sub, name="same")
    registry = build_registry([tmp_path / "a", tmp_path / "b"], shipped=False,
                              pretrained=False, untrained_models=False, torchscript=True)
    models = registry.load(torch.device("cpu"))
    assert [m.spec.name for m in models] == ["same"]
    assert any("already registered" in reason for reason in models.failed.values())


def test_missing_models_dir_is_reported(tmp_path):
    registry = build_registry([tmp_path / "nowhere"], shipped=False, pretrained=False)
    models = registry.load(torch.device("cpu"))
    assert "model2" in [m.spec.name for m in models]
    assert any("not found" in reason for reason in models.failed.values())


def test_torchscript_is_off_unless_the_operator_enables_it(tmp_path, monkeypatch):
    """An archive is a program: by default it is listed as refused and never loaded."""
    write_user_model(tmp_path)
    models = build_registry([tmp_path], shipped=False, pretrained=False,
                            untrained_models=False).load(torch.device("cpu"))
    assert not len(models)
    (reason,) = models.failed.values()
    assert "disabled" in reason and "AUDIODREAM_ALLOW_TORCHSCRIPT" in reason
    assert str(tmp_path) not in reason
    # The environment variable (or --allow-torchscript) turns it on.
    from audiodream_server.service.config import ServerConfig
    from audiodream_server.service.server import load_models

    monkeypatch.setenv("AUDIODREAM_ALLOW_TORCHSCRIPT", "1")
    config = ServerConfig.from_env()
    config.models_dir = str(tmp_path)
    assert config.allow_torchscript
    names = [m.spec.name for m in load_models(config, build_registry(
        [tmp_path], shipped=False, pretrained=False, untrained_models=False,
        torchscript=config.allow_torchscript))]
    assert names == ["tiny-user"]
    monkeypatch.setenv("AUDIODREAM_ALLOW_TORCHSCRIPT", "0")
    assert not ServerConfig.from_env().allow_torchscript
