"""Dreaming in the mel domain: resynthesis, exactness at 0 iterations, ascent, modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiodream_server.engine import DreamParams, LayerSelection, dream
from audiodream_server.errors import InvalidArgument
from audiodream_server.models.calibration import calibrate_batchnorm, calibration_audio
from audiodream_server.models.melcnn import LogMel, MelCNN, mel_filterbank
from audiodream_server.models.registry import LoadedModel, check_declaration
from sounds import tone


@pytest.fixture(scope="module")
def mel_model():
    torch.manual_seed(0)
    module = MelCNN("melcnn-test", [f"c{i}" for i in range(5)])
    calibrate_batchnorm(module, calibration_audio(16, 44100, 44100))
    check_declaration(module)
    module.eval().requires_grad_(False)
    return LoadedModel(module, torch.device("cpu"))


def cf(x):
    return np.ascontiguousarray(x.T)


def test_filterbank_covers_the_band_with_unit_area_filters():
    w = mel_filterbank(44100, 2048, 96, 30.0, 16000.0)
    hz_per_bin = 44100 / 2048
    assert w.shape == (96, 1025) and (w >= 0).all()
    assert torch.allclose(w.sum(dim=1) * hz_per_bin, torch.ones(96), rtol=0.25)
    ones = torch.ones(2, 96, 10)
    assert torch.allclose(LogMel().linear_gain(ones), torch.ones(2, 1025, 10), atol=1e-5)


def test_zero_iterations_with_original_phase_give_back_the_input(mel_model):
    x = cf(tone(2.3, 44100, channels=2))
    out = dream(x, 44100, mel_model, DreamParams(iterations=0))
    # Nothing is dreamed, so nothing changes: exactly the input.
    assert np.array_equal(out.audio, x)
    one = dream(x, 44100, mel_model, DreamParams(iterations=1, step_size=0.0))
    # A step of 0 still goes through STFT -> gain 1 -> ISTFT: the round-trip error.
    assert np.abs(one.audio - x).max() < 1e-5


@pytest.mark.parametrize("phase", ["original", "griffinlim"])
def test_mel_dream_is_exact_in_length_finite_bounded_and_rises(mel_model, phase):
    x = cf(tone(2.7, 48000))
    out = dream(x, 48000, mel_model, DreamParams(iterations=8, step_size=0.05, phase=phase,
                                                 gl_iters=8))
    assert out.audio.shape == x.shape and np.isfinite(out.audio).all()
    assert np.abs(out.audio).max() <= 1.0
    assert out.loss[-1] > out.loss[0]
    assert np.abs(out.audio - x).max() > 1e-3


def test_single_filter_and_whole_layer_modes_differ(mel_model):
    x = cf(tone(1.0, 44100))
    single = dream(x, 44100, mel_model, DreamParams(
        iterations=5, step_size=0.05, layers=(LayerSelection("block2", (3,)),))).audio
    whole = dream(x, 44100, mel_model, DreamParams(
        iterations=5, step_size=0.05, objective="mean", layers=(LayerSelection("block2"),))).audio
    assert not np.allclose(single, whole, atol=1e-4)


def test_filter_rules_are_refused_in_the_mel_domain(mel_model):
    with pytest.raises(InvalidArgument, match="mel"):
        dream(cf(tone(0.5, 44100)), 44100, mel_model, DreamParams(update="hardcut"))


def test_style_in_the_mel_domain(mel_model):
    x = cf(tone(1.0, 44100))
    rng = np.random.default_rng(0)
    target = (0.2 * rng.standard_normal((1, 44100))).astype(np.float32)
    out = dream(x, 44100, mel_model, DreamParams(objective="style", iterations=10,
                                                 step_size=0.01), target=target,
                target_rate=44100)
    assert np.mean(out.loss[-3:]) > np.mean(out.loss[:3])


@pytest.fixture(scope="module")
def shipped_mel():
    from audiodream_server.models.catalog import build_registry

    models = build_registry(pretrained=False, untrained_models=False).load(
        torch.device("cpu"), ["instruments-mel"])
    return models.get("instruments-mel")


def test_shipped_mel_model_dreams_in_the_mel_domain(shipped_mel):
    assert shipped_mel.spec.domain == "mel" and shipped_mel.spec.trained
    x = cf(tone(2.2, 48000, channels=2))
    assert np.array_equal(dream(x, 48000, shipped_mel, DreamParams(iterations=0)).audio, x)
    still = dream(x, 48000, shipped_mel, DreamParams(iterations=1, step_size=0.0))
    assert np.abs(still.audio - x).max() < 1e-5  # the STFT round trip, nothing more
    out = dream(x, 48000, shipped_mel, DreamParams(iterations=10, step_size=0.1))
    assert out.audio.shape == x.shape and np.isfinite(out.audio).all()
    assert np.abs(out.audio).max() <= 1.0 and out.loss[-1] > out.loss[0]
    assert np.abs(out.audio - x).max() > 1e-3
