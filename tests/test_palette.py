"""The dream palette: DreamSound's filter rules, target sounds, style, octaves."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import torch

from audiodream import Client
from audiodream_proto.v1 import audiodream_pb2 as pb
from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc
from audiodream_server.engine import DreamParams, LayerSelection, dream
from audiodream_server.engine import updates
from audiodream_server.engine.objectives import gram
from audiodream_server.errors import InvalidArgument
from sounds import tone

RULES = ["add", "hardcut", "hardcut_add", "target_filter", "flip"]


def cf(x):
    return np.ascontiguousarray(x.T)


def noise(seconds, rate, seed=0, channels=1):
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal((channels, int(seconds * rate)))).astype(np.float32)


def test_hardcut_threshold_in_db_below_the_peak():
    x = torch.from_numpy(cf(tone(1.0, 44100)))
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    p = DreamParams(update="hardcut", threshold=-120.0)
    # STFT -> ISTFT with a Hann window at 75 % overlap: float32 round-trip error.
    assert torch.allclose(updates.apply(x, g, x, None, p), x, atol=1e-5)
    # 0 dB passes only the gradient's loudest bin: almost nothing of x is left.
    peak_only = updates.apply(x, g, x, None, DreamParams(update="hardcut", threshold=0.0))
    assert peak_only.pow(2).mean() < 1e-3 * x.pow(2).mean()
    some = updates.apply(x, g, x, None, DreamParams(update="hardcut", threshold=-10.0))
    assert 1e-3 < (some - x).abs().max()
    # A lower threshold passes more bins.
    mask = updates.hard_cut_mask(torch.stft(g, 2048, 512, return_complex=True,
                                            window=torch.hann_window(2048)), -30.0, 1.0)
    looser = updates.hard_cut_mask(torch.stft(g, 2048, 512, return_complex=True,
                                              window=torch.hann_window(2048)), -40.0, 1.0)
    assert 0 < mask.mean() < looser.mean() <= 1


def test_flip_swaps_the_roles_of_sound_and_gradient():
    gen = torch.Generator().manual_seed(1)
    x0 = torch.from_numpy(cf(tone(1.0, 44100)))
    x = x0 + 0.05 * torch.randn(x0.shape, generator=gen)
    g = torch.randn(x0.shape, generator=gen)
    p = DreamParams(update="flip", step_size=0.1)
    flipped = updates.apply(x, g, x0, None, p)
    # flip: the current sound builds the mask, the gradient is filtered and added ...
    assert torch.allclose(flipped, x + 0.1 * updates.filtered(g, x, p), atol=1e-6)
    # ... where hardcut lets the gradient build the mask and filters the sound.
    hard = updates.apply(x, g, x0, None, DreamParams(update="hardcut"))
    assert torch.allclose(hard, updates.filtered(x, g, p), atol=1e-6)
    assert not torch.allclose(flipped, hard, atol=1e-3)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 96000, 192000])
def test_every_rule_keeps_odd_lengths_exact_and_bounded(default_model, rule, rate):
    x = noise(0.37, rate)[:, :-1] if int(0.37 * rate) % 2 == 0 else noise(0.37, rate)
    assert x.shape[1] % 2 == 1
    target = noise(0.2, 16000, seed=5)
    out = dream(x, rate, default_model, DreamParams(update=rule, iterations=2),
                target=target, target_rate=16000)
    assert out.audio.shape == x.shape
    assert np.isfinite(out.audio).all() and np.abs(out.audio).max() <= 1.0


def test_target_filter_follows_the_target_not_a_stale_state(default_model):
    x = cf(tone(1.5, 44100))
    low = cf(tone(1.0, 44100, freq=100.0))
    high = noise(0.7, 44100, seed=3)
    params = DreamParams(update="target_filter", iterations=4, step_size=0.05)
    a = dream(x, 44100, default_model, params, target=low, target_rate=44100).audio
    b = dream(x, 44100, default_model, params, target=high, target_rate=44100).audio
    again = dream(x, 44100, default_model, params, target=low, target_rate=44100).audio
    assert not np.allclose(a, b, atol=1e-3)
    assert np.array_equal(a, again)


def _distance(model, audio, reference, layer, transform):
    with torch.no_grad():
        a = model.module.features(torch.from_numpy(audio), [layer])[layer]
        r = model.module.features(torch.from_numpy(reference), [layer])[layer]
    return float((transform(a) - transform(r)).pow(2).mean())


def test_style_loss_decreases_over_iterations(default_model):
    x = cf(tone(1.0, 44100))
    target = noise(1.0, 44100, seed=2)
    # A distance has a minimum: fixed normalised steps must be small to settle in it.
    params = DreamParams(objective="style", iterations=30, step_size=0.025,
                         layers=(LayerSelection("conv2"),))
    out = dream(x, 44100, default_model, params, target=target, target_rate=44100)
    style_loss = [-v for v in out.loss]  # the objective is minus the Gram distance
    assert style_loss[-1] < 0.3 * style_loss[0]
    assert np.mean(style_loss[20:]) < np.mean(style_loss[:10])
    before = _distance(default_model, x, target, "conv2", gram)
    after = _distance(default_model, out.audio, target, "conv2", gram)
    assert after < before


def test_style_with_content_weight_stays_closer_to_the_input(default_model):
    x = cf(tone(1.0, 44100))
    target = noise(1.0, 44100, seed=2)
    base = dict(objective="style", iterations=10, step_size=0.025,
                layers=(LayerSelection("conv2"),))
    free = dream(x, 44100, default_model, DreamParams(**base), target=target, target_rate=44100)
    held = dream(x, 44100, default_model, DreamParams(**base, content_weight=50.0),
                 target=target, target_rate=44100)
    ident = lambda a: a  # noqa: E731
    assert _distance(default_model, held.audio, x, "conv2", ident) < \
        _distance(default_model, free.audio, x, "conv2", ident)


def test_target_features_move_activations_toward_the_target(default_model):
    x = cf(tone(1.0, 44100))
    target = cf(tone(1.0, 44100, freq=440.0, seed=4))
    params = DreamParams(objective="target_features", iterations=20, step_size=0.025,
                         layers=(LayerSelection("conv1"),))
    out = dream(x, 44100, default_model, params, target=target, target_rate=44100)
    ident = lambda a: a  # noqa: E731
    assert _distance(default_model, out.audio, target, "conv1", ident) < \
        0.8 * _distance(default_model, x, target, "conv1", ident)
    assert out.loss[-1] > out.loss[0]


def test_short_target_is_looped_and_stereo_served_by_mono(default_model):
    x = cf(tone(2.0, 48000, channels=2))
    params = DreamParams(objective="target_features", iterations=2)
    out = dream(x, 48000, default_model, params, target=noise(0.1, 22050), target_rate=22050)
    assert out.audio.shape == x.shape


def test_octaves_one_is_the_plain_dream_and_more_change_it(default_model):
    x = cf(tone(2.5, 44100))
    plain = dream(x, 44100, default_model, DreamParams(iterations=4, seed=1)).audio
    one = dream(x, 44100, default_model, DreamParams(iterations=4, seed=1, octaves=1,
                                                    octave_scale=2.0)).audio
    assert np.array_equal(plain, one)
    three = dream(x, 44100, default_model, DreamParams(iterations=4, seed=1, octaves=3))
    assert three.audio.shape == x.shape and np.abs(three.audio).max() <= 1.0
    assert not np.allclose(three.audio, plain, atol=1e-3)
    assert len(three.loss) == 12


def test_missing_target_is_refused(default_model):
    for params in (DreamParams(objective="style"), DreamParams(update="target_filter")):
        with pytest.raises(InvalidArgument, match="target"):
            dream(cf(tone(0.5, 44100)), 44100, default_model, params)


BAD = {
    "threshold": (dict(threshold=1.0), grpc.StatusCode.OUT_OF_RANGE, "threshold"),
    "threshold nan": (dict(threshold=float("nan")), grpc.StatusCode.INVALID_ARGUMENT, "threshold"),
    "power": (dict(power=9.0), grpc.StatusCode.OUT_OF_RANGE, "power"),
    "n_fft odd": (dict(n_fft=1001), grpc.StatusCode.OUT_OF_RANGE, "n_fft"),
    "n_fft small": (dict(n_fft=4), grpc.StatusCode.OUT_OF_RANGE, "n_fft"),
    "hop": (dict(hop=0), grpc.StatusCode.OUT_OF_RANGE, "hop"),
    "hop > n_fft": (dict(n_fft=256, hop=512), grpc.StatusCode.OUT_OF_RANGE, "hop"),
    "octaves": (dict(octaves=9), grpc.StatusCode.OUT_OF_RANGE, "octaves"),
    "octave_scale": (dict(octave_scale=1.0), grpc.StatusCode.OUT_OF_RANGE, "octave_scale"),
    "content_weight": (dict(content_weight=-1.0), grpc.StatusCode.OUT_OF_RANGE, "content"),
    "update": (dict(update="smear"), grpc.StatusCode.INVALID_ARGUMENT, "hardcut"),
    "no target": (dict(objective="style"), grpc.StatusCode.INVALID_ARGUMENT, "target"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_palette_values_name_their_range(server_address, case):
    fields, code, word = BAD[case]
    x = tone(0.5, 44100)
    request = pb.DreamRequest(audio=pb.Audio(pcm=x.tobytes(), sample_rate=44100, channels=1),
                              params=pb.DreamParams(**fields))
    with grpc.insecure_channel(server_address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.DreamServiceStub(channel).Dream(request)
    assert info.value.code() == code
    assert word in info.value.details()


def test_target_over_the_wire_and_in_a_stream(server_address):
    x = tone(1.0, 44100)[:, 0]
    with Client(server_address) as c:
        a = c.dream(x, 44100, update="target_filter", iterations=3,
                    target=(noise(0.5, 44100, seed=1)[0], 44100)).audio
        b = c.dream(x, 44100, update="target_filter", iterations=3,
                    target=(noise(0.5, 44100, seed=9)[0] * 0.1 + tone(0.5, 44100)[:, 0], 44100)
                    ).audio
        assert a.shape == x.shape and not np.allclose(a, b, atol=1e-4)
        with c.stream(44100, 1, 2048, iterations=1, offline=True, objective="style",
                      target=(noise(0.3, 22050)[0], 22050)) as s:
            blocks = [x[i:i + 2048] for i in range(0, 2048 * 8, 2048)]
            outs = list(s.process(blocks[:4]))
            s.control(update="target_filter", target=(tone(0.3, 22050)[:, 0], 22050))
            outs += list(s.process(blocks[4:]))
        assert len(outs) == 8 and not s.warnings
