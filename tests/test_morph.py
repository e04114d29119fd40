"""Morph: the shipped autoencoder, the Morph RPC, the CLI and the live morph stream mode,
all through a real server on a free port."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodream import Client, ServerError
from audiodream import cli
from audiodream_server.engine.features import features
from audiodream_server.models.catalog import build_registry, shipped_models_dir
from conftest import start_server

RATE = 44100
AE = "instruments-ae"


def note(seconds: float, rate: int, f0: float, brightness: float, channels: int = 1,
         seed: int = 0) -> np.ndarray:
    """A harmonic note `[T, C]` with an attack and decay; `brightness` in 0..1 sets how
    slowly its 20 partials fall off (dark ~ a flute, bright ~ a brass note)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    rolloff = 0.25 + 0.7 * brightness
    x = sum(rolloff ** k * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.28))
            for k in range(20) if f0 * (k + 1) < rate / 2)
    env = np.minimum(t / 0.02, 1.0) * np.exp(-t / (2 * seconds))
    x = 0.5 * x * env / np.abs(x * env).max()
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def ae_models():
    models = build_registry(pretrained=False).load(torch.device("cpu"), [AE, "model2"])
    assert AE in [m.spec.name for m in models], models.failed
    return models


@pytest.fixture(scope="module")
def address(ae_models):
    server, address = start_server(ae_models, max_seconds=20.0)
    yield address
    server.stop(None)


@pytest.fixture()
def ae_client(address):
    with Client(address) as c:
        yield c


def test_shipped_autoencoder_card_states_its_held_out_error():
    card = json.loads((shipped_models_dir() / f"{AE}.json").read_text())
    assert card["arch"] == "autoencoder" and card["classes"] == []
    assert card["training"]["command"].startswith("audiodream train")
    rec = card["reconstruction"]
    # A model that learnt something reconstructs held-out clips far better than
    # the training set's mean spectrogram does.
    assert rec["held_out_db_rms"] < 0.6 * rec["mean_spectrogram_db_rms"]
    assert card["latent"]["frame_rate_hz"] == pytest.approx(21.533, abs=1e-3)


def test_autoencoder_is_listed_with_its_encoder_layers(ae_client):
    info = {m.name: m for m in ae_client.models()}[AE]
    assert info.trained and info.domain == "mel" and info.num_classes == 0
    layers = ae_client.layers(AE)
    assert [layer.name for layer in layers.layers] == ["enc1", "enc2", "enc3", "latent"]
    assert layers.layers[-1].channels == 8
    assert layers.layers[-1].frame_rate == pytest.approx(RATE / 2048)


def test_amount_zero_returns_a_and_one_returns_b(ae_client):
    a = note(1.0, RATE, 220.0, 0.1)[:, 0]
    b = note(1.0, RATE, 220.0, 0.9, seed=1)[:, 0]
    out0 = ae_client.morph(a, b, RATE, RATE, amount=0.0)
    out1 = ae_client.morph(a, b, RATE, RATE, amount=1.0)
    # The STFT round trip's float rounding only.
    assert out0.audio.shape == a.shape and np.abs(out0.audio - a).max() < 1e-4
    assert np.abs(out1.audio - b).max() < 1e-4
    half = ae_client.morph(a, b, RATE, RATE, amount=0.5).audio
    assert np.abs(half - a).max() > 0.01 and np.abs(half - b).max() > 0.01


def test_output_has_a_rate_channels_and_length(ae_client):
    a = note(1.3, 48000, 330.0, 0.2, channels=2)
    b = note(0.7, 22050, 330.0, 0.8)
    out = ae_client.morph(a, b, 48000, 22050, amount=0.7)
    assert out.sample_rate == 48000 and out.audio.shape == a.shape
    assert np.abs(out.audio).max() <= 1.0 and np.isfinite(out.audio).all()
    assert out.latent_size == 128 and out.latent_frame_rate == pytest.approx(21.533, abs=1e-3)


def test_very_short_sounds_keep_their_length(ae_client):
    a = note(0.01, RATE, 440.0, 0.5)
    b = note(0.002, 8000, 440.0, 0.5)
    out = ae_client.morph(a, b, RATE, 8000, amount=0.5)
    assert out.audio.shape == a.shape and np.isfinite(out.audio).all()
    zero = ae_client.morph(a, b, RATE, 8000, amount=0.0)
    assert np.abs(zero.audio - a).max() < 1e-4


def test_long_sounds_are_morphed_in_chunks_with_the_same_result(ae_models, monkeypatch):
    from audiodream_server.engine import morph as engine

    a = note(3.0, RATE, 196.0, 0.2, channels=2)
    b = note(2.0, RATE, 330.0, 0.8, seed=3)
    model = ae_models.get(AE)
    params = engine.MorphParams(curve=(0.0, 1.0, 0.3), interpolation="spherical")
    whole = engine.morph(a.T, RATE, b.T, RATE, model, params).audio
    monkeypatch.setattr(engine, "CHUNK_FRAMES", 64)  # 3 s = 259 frames: 5 chunks
    chunked = engine.morph(a.T, RATE, b.T, RATE, model, params).audio
    # The margins hold the autoencoder's whole receptive field: float rounding only.
    assert np.abs(whole - chunked).max() < 1e-5


@pytest.mark.parametrize("phase, checks", [("blend", 5 * 2), ("griffinlim", 3)])
def test_a_morph_stops_when_asked(ae_models, monkeypatch, phase, checks):
    """A long morph asks `should_stop` before each chunk and Griffin-Lim iteration
    and ends with Cancelled once it says so (a caller that left)."""
    from audiodream_server.engine import morph as engine
    from audiodream_server.errors import Cancelled

    a = note(3.0, RATE, 196.0, 0.2, channels=2)
    monkeypatch.setattr(engine, "CHUNK_FRAMES", 64)  # 3 s: 5 chunks per channel
    asked = []
    params = engine.MorphParams(phase=phase, gl_iters=500)
    # Blend: stop at the second channel's last chunk; Griffin-Lim: at its 3rd iteration
    # (after the first channel's 5 chunks).
    stop_at = checks if phase == "blend" else 5 + checks

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) >= stop_at

    with pytest.raises(Cancelled):
        engine.morph(a.T, RATE, a.T, RATE, ae_models.get(AE), params, should_stop=should_stop)
    assert len(asked) == stop_at


def test_a_cancelled_morph_stops_its_work_and_frees_the_slot(ae_models, monkeypatch):
    """The service hands the morph its caller's departure: the (stand-in) engine
    below runs until told to stop; cancelling the call must tell it, and the only
    compute slot must then serve the next morph."""
    import threading

    import grpc
    from audiodream_proto.v1 import audiodream_pb2 as pb
    from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc
    from audiodream_server.errors import Cancelled
    from audiodream_server.service import morphing

    real_morph, started, stopped = morphing.morph, threading.Event(), threading.Event()

    def endless_morph(*args, should_stop, **kwargs):
        if kwargs.get("params", args[5]).amount != 0.25:
            return real_morph(*args, should_stop=should_stop, **kwargs)
        started.set()
        while not should_stop():
            should_stop.__self__.wait()  # the stop flag is an Event: woken when set
        stopped.set()
        raise Cancelled("stopped")

    monkeypatch.setattr(morphing, "morph", endless_morph)
    server, address = start_server(ae_models, max_active=1)
    x = note(0.5, RATE, 220.0, 0.5)
    audio = pb.Audio(pcm=x.tobytes(), sample_rate=RATE, channels=1)
    try:
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.DreamServiceStub(channel)
            call = stub.Morph.future(pb.MorphRequest(
                a=audio, b=audio, params=pb.MorphParams(amount=0.25)), timeout=600)
            assert started.wait(120)
            call.cancel()
            assert stopped.wait(120), "the cancelled morph was never told to stop"
            reply = stub.Morph(pb.MorphRequest(a=audio, b=audio,
                                               params=pb.MorphParams(amount=0.5)), timeout=600)
            assert len(reply.audio.pcm) == x.nbytes
    finally:
        server.stop(None)


def _centroid(x: np.ndarray) -> float:
    return features(x[None].astype(np.float32), RATE).spectral_centroid_hz


def test_curve_glides_from_a_to_b(ae_client):
    a = note(2.0, RATE, 262.0, 0.05)[:, 0]
    b = note(2.0, RATE, 262.0, 0.95, seed=1)[:, 0]
    out = ae_client.morph(a, b, RATE, RATE, curve=[0.0, 1.0])
    assert out.amounts[0] == 0.0 and out.amounts[-1] == 1.0
    assert all(np.diff(out.amounts) >= 0)
    quarters = np.array_split(out.audio, 4)
    centroids = [_centroid(q) for q in quarters]
    a_c, b_c = _centroid(a), _centroid(b)
    assert b_c > 2 * a_c  # the test notes differ clearly
    assert all(np.diff(centroids) > 0), centroids  # it brightens as it goes
    assert abs(centroids[0] - a_c) < abs(centroids[0] - b_c)
    assert abs(centroids[-1] - b_c) < abs(centroids[-1] - a_c)


def test_options_are_deterministic_and_bounded(ae_client):
    a = note(0.8, RATE, 196.0, 0.3)[:, 0]
    b = note(0.8, RATE, 294.0, 0.7, seed=2)[:, 0]
    for options in ({"interpolation": "spherical", "amount": 0.4},
                    {"group_amounts": [0.0, 1.0]},
                    {"phase": "griffinlim", "gl_iters": 8, "amount": 0.5},
                    {"detail": 0.0, "amount": 0.5}):
        first = ae_client.morph(a, b, RATE, RATE, **options)
        again = ae_client.morph(a, b, RATE, RATE, **options)
        assert np.array_equal(first.audio, again.audio), options
        assert np.isfinite(first.audio).all() and np.abs(first.audio).max() <= 1.0
        assert np.abs(first.audio - a).max() > 1e-3, options
    groups = ae_client.morph(a, b, RATE, RATE, group_amounts=[0.0, 1.0]).audio
    even = ae_client.morph(a, b, RATE, RATE, amount=0.5).audio
    assert np.abs(groups - even).max() > 1e-3  # the groups move differently


@pytest.mark.parametrize("options, code", [
    ({"amount": 1.5}, "OUT_OF_RANGE"),
    ({"curve": [0.0]}, "OUT_OF_RANGE"),
    ({"curve": [0.0, 1.0], "group_amounts": [0.5]}, "INVALID_ARGUMENT"),
    ({"group_amounts": [0.1, 0.2, 0.3]}, "OUT_OF_RANGE"),
    ({"interpolation": "cubic"}, "INVALID_ARGUMENT"),
    ({"phase": "random"}, "INVALID_ARGUMENT"),
    ({"gl_iters": 9999}, "OUT_OF_RANGE"),
    ({"detail": -1.0}, "OUT_OF_RANGE"),
    ({"model": "model2"}, "FAILED_PRECONDITION"),
    ({"model": "nope"}, "NOT_FOUND"),
])
def test_bad_requests_get_clear_statuses(ae_client, options, code):
    a = note(0.5, RATE, 220.0, 0.5)[:, 0]
    with pytest.raises(ServerError) as err:
        ae_client.morph(a, a, RATE, RATE, **options)
    assert err.value.code == code, err.value
    assert ae_client.models()  # the server keeps serving


def test_bad_audio_is_refused(ae_client):
    a = note(0.5, RATE, 220.0, 0.5)[:, 0]
    bad = a.copy()
    bad[100] = np.nan
    with pytest.raises(ServerError) as err:
        ae_client.morph(a, bad, RATE, RATE)
    assert err.value.code == "INVALID_ARGUMENT" and "sound B" in err.value.message
    with pytest.raises(ServerError) as err:
        ae_client.morph(a, b"not a sound file", RATE)
    assert err.value.code == "INVALID_ARGUMENT"


def test_cli_morph_with_a_curve_writes_a_glide(address, tmp_path, capsys):
    a_path, b_path, out_path = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "out.wav"
    sf.write(a_path, note(1.5, RATE, 262.0, 0.05), RATE)
    sf.write(b_path, note(1.0, RATE, 262.0, 0.95, seed=1), RATE)
    assert cli.main(["morph", str(a_path), str(b_path), str(out_path), "--curve",
                     "--server", address]) == 0
    out, rate = sf.read(out_path, dtype="float32")
    assert rate == RATE and out.shape[0] == int(1.5 * RATE)
    assert "latent frames" in capsys.readouterr().out
    assert cli.main(["morph", str(a_path), str(b_path), str(out_path), "--amount", "2",
                     "--server", address]) == 1


def test_local_client_morphs_like_the_server(ae_client):
    from audiodream import Client
    from audiodream_server.local import LocalStub

    a = note(0.8, RATE, 220.0, 0.2)[:, 0]
    b = note(0.8, RATE, 330.0, 0.8, seed=4)[:, 0]
    registry = build_registry(pretrained=False, untrained_models=False)
    with Client(stub=LocalStub(device="cpu", registry=registry)) as local:
        here = local.morph(a, b, RATE, RATE, curve=[0.0, 1.0])
        with pytest.raises(ServerError) as err:
            local.morph(a, b, RATE, RATE, amount=-1.0)
    there = ae_client.morph(a, b, RATE, RATE, curve=[0.0, 1.0])
    assert np.array_equal(here.audio, there.audio)
    assert err.value.code == "OUT_OF_RANGE"


# ---- live morphing -----------------------------------------------------------------------

def _stream_blocks(client, audio, rate, block, target, **params):
    blocks = [audio[i:i + block] for i in range(0, len(audio) - block + 1, block)]
    with client.stream(rate, 1, block, model=AE, mode="morph", offline=True,
                       target=(target, rate), **params) as live:
        out = list(live.process(blocks))
        return np.concatenate(out), live


def test_live_morph_amount_zero_passes_the_input_through(ae_client):
    x = note(1.0, 48000, 220.0, 0.3)[:, 0]
    target = note(1.0, 48000, 220.0, 0.95, seed=1)[:, 0]
    out, live = _stream_blocks(ae_client, x, 48000, 2048, target, morph_amount=0.0)
    latency = live.latency
    assert latency == 2048
    heard = out[latency:]
    assert np.abs(heard - x[:heard.size]).max() < 1e-3


def test_live_morph_moves_toward_the_target_and_joins_without_clicks(ae_client):
    x = note(2.0, 48000, 220.0, 0.05)[:, 0]
    target = note(1.0, 48000, 220.0, 0.95, seed=1)[:, 0]
    out, live = _stream_blocks(ae_client, x, 48000, 2048, target, morph_amount=0.8)
    heard = out[live.latency:]
    dry = x[:heard.size]
    assert _centroid(heard[24000:]) > 1.3 * _centroid(dry[24000:])
    # No click at block joins: the largest sample step is no larger than inside blocks.
    steps = np.abs(np.diff(heard))
    joins = steps[2047::2048]
    assert joins.max() <= 1.5 * np.quantile(steps, 0.999)


def _one(live, block: np.ndarray) -> np.ndarray:
    live.send(block)
    return live.receive()[1]


def test_live_morph_amount_changes_live(ae_client):
    x = note(2.0, 48000, 220.0, 0.05)[:, 0]
    target = note(1.0, 48000, 220.0, 0.95, seed=1)[:, 0]
    block = 2048
    blocks = [x[i:i + block] for i in range(0, len(x) - block + 1, block)]
    with ae_client.stream(48000, 1, block, model=AE, mode="morph", offline=True,
                          target=(target, 48000), morph_amount=0.0) as live:
        out = [_one(live, b) for b in blocks[:20]]
        live.control(morph_amount=1.0)
        out += [_one(live, b) for b in blocks[20:]]
    heard = np.concatenate(out)[live.latency:]
    dry = x[:heard.size]
    assert np.abs(heard[:19 * block] - dry[:19 * block]).max() < 1e-3
    # From the block after the crossfade on, the target's brightness.
    assert _centroid(heard[21 * block:]) > 1.3 * _centroid(dry[21 * block:])


def test_switching_to_morph_before_the_target_passes_through_then_morphs(ae_client):
    x = note(2.0, 48000, 220.0, 0.05)[:, 0]
    target = note(1.0, 48000, 220.0, 0.95, seed=1)[:, 0]
    block = 2048
    blocks = [x[i:i + block] for i in range(0, len(x) - block + 1, block)]
    with ae_client.stream(48000, 1, block, model=AE, iterations=0, offline=True) as live:
        out = [_one(live, b) for b in blocks[:4]]
        live.control(mode="morph", morph_amount=1.0)
        out += [_one(live, b) for b in blocks[4:10]]
        live.control(target=(target, 48000))
        out += [_one(live, b) for b in blocks[10:]]
        codes = [w.code for w in live.warnings]
    assert codes == ["no_target"]
    heard = np.concatenate(out)[live.latency:]
    dry = x[:heard.size]
    # Mode changes reset the context: the first blocks after it are quiet, the rest
    # until the target passes the input through.
    assert np.abs(heard[7 * block:9 * block] - dry[7 * block:9 * block]).max() < 1e-3
    assert _centroid(heard[13 * block:]) > 1.3 * _centroid(dry[13 * block:])


def test_morph_mode_needs_an_autoencoder_and_a_target(ae_client):
    with pytest.raises(ServerError) as err:
        with ae_client.stream(48000, 1, 2048, model=AE, mode="morph") as live:
            _one(live, np.zeros(2048, np.float32))
    assert err.value.code == "INVALID_ARGUMENT" and "target" in err.value.message
    target = note(0.5, 48000, 220.0, 0.5)[:, 0]
    with pytest.raises(ServerError) as err:
        with ae_client.stream(48000, 1, 2048, model="model2", mode="morph",
                              target=(target, 48000)) as live:
            _one(live, np.zeros(2048, np.float32))
    assert err.value.code == "FAILED_PRECONDITION"
