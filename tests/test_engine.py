"""The dream pipeline, in process: exactness, ascent, determinism, shapes, joins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiodream_server.engine import DreamParams, LayerSelection, dream
from audiodream_server.engine.objectives import objective
from audiodream_server.errors import InvalidArgument, NotFound, OutOfRange
from audiodream_server.models.registry import check_declaration
from sounds import tone


def chan_first(x):
    return np.ascontiguousarray(x.T)


def test_zero_iterations_return_the_input_exactly(default_model):
    x = chan_first(tone(1.7, 48000, channels=2))
    out = dream(x, 48000, default_model, DreamParams(iterations=0))
    assert np.array_equal(out.audio, x)
    assert out.output_gain == 1.0 and out.loss == []


def test_objective_rises_over_twenty_iterations(default_model):
    x = chan_first(tone(2.0, 44100))
    out = dream(x, 44100, default_model, DreamParams(iterations=20))
    assert len(out.loss) == 20
    assert out.loss[-1] > 2 * out.loss[0]
    assert not np.array_equal(out.audio, x)
    assert np.abs(out.audio).max() <= 1.0


def test_ascent_raises_the_objective_measured_independently(default_model):
    """Re-measure the objective on the returned audio without jitter: it went up.

    The ascent itself is measured, so the output keeps the level the dream gave it
    (`loudness` off): the default puts the input's loudness back, and part of what
    an activation objective gains is level."""
    x = chan_first(tone(1.0, 44100))
    params = DreamParams(iterations=10, layers=(LayerSelection("conv2", (3, 7)),),
                         time_jitter=32, loudness="off").resolve(default_model.spec)
    out = dream(x, 44100, default_model, params)

    def measure(audio):
        with torch.no_grad():
            acts = default_model.module.features(torch.from_numpy(audio), ["conv2"])
            return float(objective(acts, params, "logits").mean())

    assert measure(out.audio) > 1.5 * measure(x)


@pytest.mark.parametrize("rate", [22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2])
def test_dream_preserves_length_rate_and_channels(default_model, rate, channels):
    for seconds in (0.3, 2.9):
        x = chan_first(tone(seconds, rate, channels))
        out = dream(x, rate, default_model, DreamParams(iterations=2))
        assert out.audio.shape == x.shape and out.sample_rate == rate
        assert out.audio.dtype == np.float32 and np.isfinite(out.audio).all()


def test_same_seed_same_output_other_seed_other_output(default_model):
    x = chan_first(tone(1.5, 44100))
    params = DreamParams(iterations=5, time_jitter=100, init="pink", seed=7)
    a = dream(x, 44100, default_model, params).audio
    b = dream(x, 44100, default_model, params).audio
    c = dream(x, 44100, default_model, DreamParams(iterations=5, time_jitter=100, init="pink",
                                                  seed=8)).audio
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_batch_chunking_does_not_change_the_result(default_model):
    x = chan_first(tone(3.0, 44100, channels=2))
    params = DreamParams(iterations=3, time_jitter=50)
    whole = dream(x, 44100, default_model, params, max_batch=64).audio
    chunked = dream(x, 44100, default_model, params, max_batch=3).audio
    np.testing.assert_allclose(whole, chunked, atol=2e-5)


def test_channels_are_dreamed_independently(default_model):
    # The dream itself: the output's one loudness gain is shared by all channels
    # (it keeps the stereo image), so it is left out here (tests/test_loudness.py).
    x = chan_first(tone(1.2, 44100, channels=2))
    p = DreamParams(iterations=4, loudness="off")
    stereo = dream(x, 44100, default_model, p).audio
    left = dream(x[:1], 44100, default_model, p).audio
    np.testing.assert_allclose(stereo[0], left[0], atol=2e-5)


def test_windows_join_without_discontinuity(default_model):
    """Largest sample step near window joins is no larger than elsewhere."""
    rate = 44100
    t = np.arange(int(4.2 * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)[None]
    out = dream(x, rate, default_model, DreamParams(iterations=12, step_size=0.05))
    change = out.audio[0] - x[0]
    assert np.abs(change).max() > 0.05  # the dream really changed the sound
    steps = np.abs(np.diff(out.audio[0]))
    window, overlap = 44100, round(44100 * 0.25)
    hop = window - overlap
    edges = [k * hop for k in range(1, out.windows)] + \
            [k * hop + window for k in range(out.windows - 1)]
    near = np.zeros(steps.size, bool)
    for e in edges:
        near[max(e - 3, 0):e + 3] = True
    assert steps[near].max() <= 1.2 * steps[~near].max()


@pytest.mark.parametrize("init", ["white", "pink", "sine", "silence"])
def test_synthetic_inits_grow_sound_and_stay_bounded(default_model, init):
    x = chan_first(tone(1.0, 44100))
    out = dream(x, 44100, default_model, DreamParams(iterations=6, init=init, step_size=0.05))
    assert np.isfinite(out.audio).all() and np.abs(out.audio).max() <= 1.0
    assert np.sqrt(np.mean(out.audio ** 2)) > 1e-3
    # mix 1 with a synthetic init: the input's own tone is gone from the output
    assert np.corrcoef(out.audio[0], x[0])[0, 1] < 0.5


def test_mix_blends_dry_and_wet(default_model):
    # Linear in `mix` before the output's loudness gain (which depends on the mix).
    x = chan_first(tone(1.0, 44100))
    wet = dream(x, 44100, default_model, DreamParams(iterations=5, loudness="off")).audio
    half = dream(x, 44100, default_model,
                 DreamParams(iterations=5, mix=0.5, loudness="off")).audio
    dry = dream(x, 44100, default_model, DreamParams(iterations=5, mix=0.0)).audio
    assert np.array_equal(dry, x)
    np.testing.assert_allclose(half, (x + wet) / 2, atol=1e-5)


def test_lowpass_removes_high_frequencies_from_the_dream(default_model):
    x = chan_first(tone(1.0, 44100))
    base = dict(iterations=10, step_size=0.05, init="white")
    free = dream(x, 44100, default_model, DreamParams(**base))
    cut = dream(x, 44100, default_model, DreamParams(**base, lowpass_hz=2000.0))
    brightness = free.output_features.spectral_centroid_hz
    assert cut.output_features.spectral_centroid_hz < 0.6 * brightness


def test_mix_original_keeps_the_dream_closer_to_the_input(default_model):
    x = chan_first(tone(1.0, 44100))
    free = dream(x, 44100, default_model, DreamParams(iterations=10))
    held = dream(x, 44100, default_model, DreamParams(iterations=10, mix_original=0.3))
    assert np.abs(held.audio - x).mean() < 0.7 * np.abs(free.audio - x).mean()


def test_layer_channels_and_weights_shape_the_result(default_model):
    x = chan_first(tone(1.0, 44100))
    a = dream(x, 44100, default_model, DreamParams(
        iterations=4, layers=(LayerSelection("conv1", (0,)),))).audio
    b = dream(x, 44100, default_model, DreamParams(
        iterations=4, layers=(LayerSelection("conv1", (5,)),))).audio
    both = dream(x, 44100, default_model, DreamParams(
        iterations=4, layers=(LayerSelection("conv1", (0,)), LayerSelection("conv5", (), 0.5))))
    assert not np.allclose(a, b)
    assert len(both.loss) == 4 and both.loss[-1] > both.loss[0]


@pytest.mark.parametrize("negate", [False, True])
def test_class_objective_moves_the_logit(default_model, negate):
    x = chan_first(tone(1.0, 44100))
    out = dream(x, 44100, default_model, DreamParams(iterations=8, objective="class",
                                                    class_index=3, negate=negate))
    with torch.no_grad():
        before = default_model.module(torch.from_numpy(x))[0, 3]
        after = default_model.module(torch.from_numpy(out.audio))[0, 3]
    assert (after < before) if negate else (after > before)


def test_mean_objective_and_grad_norms_run(default_model):
    x = chan_first(tone(1.0, 44100))
    for norm in ("l2", "mean_abs"):
        out = dream(x, 44100, default_model, DreamParams(iterations=5, objective="mean",
                                                        grad_norm=norm))
        assert out.loss[-1] > out.loss[0]


@pytest.mark.parametrize("params,error", [
    (DreamParams(iterations=-1), OutOfRange),
    (DreamParams(iterations=10**6), OutOfRange),
    (DreamParams(step_size=float("nan")), InvalidArgument),
    (DreamParams(step_size=-0.1), OutOfRange),
    (DreamParams(objective="love"), InvalidArgument),
    (DreamParams(smoothing_kernel=8), OutOfRange),
    (DreamParams(layers=(LayerSelection("conv99"),)), NotFound),
    (DreamParams(layers=(LayerSelection("conv0", (16,)),)), OutOfRange),
    (DreamParams(objective="class"), InvalidArgument),
    (DreamParams(objective="class", class_name="Dog"), NotFound),
    (DreamParams(objective="class", class_index=10), OutOfRange),
])
def test_bad_parameters_raise_with_their_kind(default_model, params, error):
    with pytest.raises(error):
        dream(chan_first(tone(0.5, 44100)), 44100, default_model, params)


def test_models_declare_what_they_are(models):
    for m in models:
        check_declaration(m.module)
        assert m.spec.sample_rate == 44100 and m.spec.fixed_input_samples == 44100
        assert not m.spec.trained
    # Parameter counts of the paper (Model1 ~400 k, Model2 ~300 k), within 10 %.
    assert models.get("model1").parameters == pytest.approx(400_000, rel=0.1)
    assert models.get("model2").parameters == pytest.approx(300_000, rel=0.1)


def test_calibrated_random_model_has_live_deep_gradients(default_model):
    x = torch.from_numpy(chan_first(tone(1.0, 44100))).requires_grad_(True)
    acts = default_model.module.features(x, ["conv7"])
    (g,) = torch.autograd.grad(acts["conv7"].pow(2).mean(), x)
    assert g.abs().mean() > 1e-8


def test_waveform_conv_equals_torch_conv1d():
    """The fast first convolution computes what nn.Conv1d computes, gradients included."""
    from audiodream_server.models.bisig import WaveformConv

    torch.manual_seed(0)
    fast = WaveformConv(1, 16, 129, stride=7, padding=64)
    reference = torch.nn.Conv1d(1, 16, 129, stride=7, padding=64)
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(3, 1, 44100, requires_grad=True)
    y_fast, y_ref = fast(x), reference(x)
    assert y_fast.shape == y_ref.shape
    # float32 sums over 129 taps in another order: agree to ~1e-6 of the scale.
    assert torch.allclose(y_fast, y_ref, atol=1e-5)
    (g_fast,) = torch.autograd.grad(y_fast.pow(2).sum(), x)
    (g_ref,) = torch.autograd.grad(y_ref.pow(2).sum(), x)
    assert torch.allclose(g_fast, g_ref, rtol=1e-4, atol=1e-4)
