"""How a dream sounds: each test pins one defect the sound benchmark found.

They run the shipped default model on sounds made here and measure with
`audiodream_server.listening`, the benchmark's own measures. Bounds are loose
(the benchmark's targets with margin): they catch a defect coming back, not a
decibel of drift.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiodream_server import listening
from audiodream_server.engine import DreamParams, dream
from audiodream_server.engine.initial import initial_signal
from audiodream_server.models.catalog import DEFAULT_MODEL, build_registry

RATE = 44100


@pytest.fixture(scope="module")
def shipped():
    registry = build_registry(pretrained=False).load(torch.device("cpu"))
    return registry


@pytest.fixture(scope="module")
def model(shipped):
    return shipped.get(DEFAULT_MODEL)


def pink(seconds: float, seed: int = 3, level: float = 0.1) -> np.ndarray:
    """Pink noise of RMS `level`, from the engine's own pink init."""
    x = initial_signal("pink", torch.zeros(1, int(seconds * RATE)), RATE, 1.0, 0.0,
                       torch.Generator().manual_seed(seed))[0].numpy()
    return (level * x / x.std()).astype(np.float32)


def clicks(seconds: float, every: float = 0.25) -> np.ndarray:
    """A hi-hat-like pattern: bursts of bright noise with fast decays."""
    rng = np.random.default_rng(5)
    n = int(seconds * RATE)
    x = np.zeros(n, np.float32)
    decay = np.exp(-np.arange(4000) / 400.0)
    for start in range(0, n - 4000, int(every * RATE)):
        x[start:start + 4000] += 0.15 * rng.standard_normal(4000) * decay
    return x


def test_tiny_steps_keep_the_input_whatever_the_iteration_count(model):
    """Defect 1: a per-step peak bound scaled the original down with every step."""
    x = pink(2.0)
    for iterations in (5, 100):
        out = dream(x[None], RATE, model, DreamParams(iterations=iterations, step_size=0.0005))
        c = listening.compare(x, out.audio[0], RATE)
        assert 0.97 < c.retain < 1.1, (iterations, c.retain)


def test_default_dream_keeps_the_input_and_is_audible(model):
    x = clicks(3.0) + pink(3.0, level=0.02)
    out = dream(x[None], RATE, model, DreamParams()).audio[0]
    c = listening.compare(x, out, RATE)
    assert c.change_db > -14          # audible
    assert c.logmel_r > 0.6 and c.onset_r > 0.5   # recognisable, rhythm kept
    assert c.retain > 0.8             # the original is still there at its level


def test_lowpass_filters_the_change_not_the_input(model):
    """Defect 2: the low-pass cut the input's own highs (hi-hats gone)."""
    x = clicks(2.0)
    out = dream(x[None], RATE, model, DreamParams(lowpass_hz=6000.0, loudness="off")).audio[0]
    assert listening.hf_share(out, RATE) > 0.8 * listening.hf_share(x, RATE)
    change = out - x
    assert listening.hf_share(change, RATE) < 1.0  # the change itself is low-passed


def test_window_joins_carry_the_same_change_as_mid_window(model):
    """Defect 3: equal-power fades of correlated changes were louder at joins."""
    x = pink(4.0)
    out = dream(x[None], RATE, model, DreamParams()).audio[0]
    c = listening.compare(x, out, RATE, window=44100, overlap=11025)
    assert abs(c.join_db) < 1.0


def test_no_comb_at_the_strides_of_the_layers(model):
    """Defect 4: lines at k * rate / S (6300 Hz, 900 Hz, 180 Hz multiples for model2)."""
    x = pink(3.0)
    out = dream(x[None], RATE, model, DreamParams()).audio[0]

    def comb(signal):
        freqs, power = listening.long_term_spectrum(signal, RATE)
        prom = listening.prominence(power, float(freqs[1] - freqs[0]))
        return {spacing: prom[[int(round(k * spacing / freqs[1]))
                               for k in range(1, int(20000 // spacing) + 1)]].max()
                for spacing in (6300.0, 900.0, 180.0)}

    assert max(comb(out - x).values()) < 6.0
    # Negative control: the bare gradient of the same objective has the comb.
    with torch.enable_grad():
        window = torch.from_numpy(x[None, :44100]).requires_grad_(True)
        acts = model.module.features(window, [model.spec.default_layer])
        acts[model.spec.default_layer].pow(2).mean().backward()
    assert comb(window.grad[0].numpy())[6300.0] > 10.0


def test_silence_stays_silent(model):
    """A silent tail is not filled with hiss: the change follows the input."""
    x = np.concatenate([clicks(1.5), np.zeros(RATE, np.float32)])
    out = dream(x[None], RATE, model, DreamParams()).audio[0]
    assert np.abs(out[-RATE // 2:]).max() < 1e-4


def test_zero_iterations_are_bit_exact(model):
    x = clicks(1.3)
    out = dream(x[None], RATE, model, DreamParams(iterations=0)).audio[0]
    assert np.array_equal(out, x)


def test_change_output_is_the_difference(model):
    """DreamSound's sonified gradient: the change alone, the same as mix - input."""
    x = 0.5 * clicks(1.5)
    # The change alone is never levelled, so the mix is compared at the dream's own level.
    mixed = dream(x[None], RATE, model, DreamParams(seed=3, loudness="off")).audio[0]
    change = dream(x[None], RATE, model, DreamParams(seed=3, output="change")).audio[0]
    np.testing.assert_allclose(change, mixed - x, atol=1e-5)
    assert np.sqrt(np.mean(change ** 2)) > 0.05 * np.sqrt(np.mean(x ** 2))


def test_mel_model_default_colours_without_gating(shipped):
    """Defect 5: the mel model's step was in other units: nothing at the shared
    default, gating the music away at a little more."""
    mel = shipped.get("instruments-mel")
    x = clicks(2.0) + pink(2.0, level=0.03)
    out = dream(x[None], RATE, mel, DreamParams()).audio[0]
    c = listening.compare(x, out, RATE)
    assert c.change_db > -14            # audible
    assert c.retain > 0.7 and c.logmel_r > 0.8   # not gated away
    louder = dream(x[None], RATE, mel, DreamParams(step_size=0.2)).audio[0]
    # Each band's gain is bounded, so even large steps keep the input there.
    assert listening.compare(x, louder, RATE).logmel_r > 0.6


def test_models_carry_their_own_defaults(shipped):
    mel = shipped.get("instruments-mel")
    assert DreamParams().resolve(mel.spec).step_size == pytest.approx(0.05)
    assert DreamParams(step_size=0.01).resolve(mel.spec).step_size == pytest.approx(0.01)
    assert DreamParams().resolve(shipped.get(DEFAULT_MODEL).spec).step_size == 0.02


def test_more_octaves_do_not_mean_more_noise(model):
    x = clicks(2.0)
    one = listening.compare(x, dream(x[None], RATE, model, DreamParams()).audio[0], RATE)
    three = listening.compare(x, dream(x[None], RATE, model,
                                       DreamParams(octaves=3)).audio[0], RATE)
    assert three.change_db < one.change_db + 2.0
    assert three.hf_out - three.hf_in < 3.0
