"""musicnn and Basic Pitch: our PyTorch ports against the originals' own outputs.

`tests/data/music_parity.npz` was written by `scripts/music_parity.py`, which
ran the originals (musicnn's TF graph with its checkpoint under TensorFlow
2.15; Basic Pitch's nmp.onnx under onnxruntime) on fixed formula-made inputs.
Tolerances, and why:

- mel filterbank: 1e-7 absolute (values up to 0.032): float64 arithmetic here,
  float32 in librosa's output.
- musicnn log-mel: 3e-4 absolute. The original rounds the mel power to float16
  before log10(10^4 M + 1); that rounding (relative 2^-11) moves the log by at
  most 2^-11 / ln 10 = 2.1e-4, and we keep float32 (differentiable).
- musicnn cnn2 and logits fed the reference log-mel: 1e-4 relative / 2e-4
  absolute: float32 sums in another order (measured 5e-6 and 2e-5).
- musicnn end to end from audio: logits within 1e-3 (the log-mel's 2.1e-4
  carried through the network; measured 2.1e-4).
- Basic Pitch CQT (after the folded BatchNorm): 5e-3 absolute on values in
  -0.9..1.6: quiet bins sit near the 1e-10 floor of the log, where float32
  convolutions in another order differ most (measured 2.0e-3).
  Contour features 2e-3 relative (measured 3e-4); note, onset and contour
  probabilities 5e-4 absolute (measured 6.6e-5).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiodream_server.models import basic_pitch, musicnn, onnx_reader, tf_bundle
from audiodream_server.models.registry import check_declaration

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = np.load(ROOT / "tests" / "data" / "music_parity.npz")
sys.path.insert(0, str(ROOT / "scripts"))
from music_parity import FEATURE_STEP, FRAME_STEP, fixed_signal  # noqa: E402


def max_rel(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module")
def taggers():
    return {"MTT_musicnn": musicnn.load("musicnn-mtt"), "MSD_musicnn": musicnn.load("musicnn-msd")}


@pytest.fixture(scope="module")
def pitch():
    return basic_pitch.load()


def test_slaney_filterbank_matches_librosa():
    ours = musicnn.slaney_filterbank(16000, 512, 96)
    assert np.abs(ours - FIXTURE["musicnn_mel_filterbank"]).max() < 1e-7


@pytest.mark.parametrize("variant", ["MTT_musicnn", "MSD_musicnn"])
@pytest.mark.parametrize("kind", [0, 1])
def test_musicnn_matches_the_original(taggers, variant, kind):
    model, key = taggers[variant], f"{variant}_{kind}"
    audio = torch.from_numpy(fixed_signal(16000, musicnn.WINDOW, kind))[None]
    with torch.no_grad():
        logmel = model.prepare(audio)[0, 0].numpy()
        assert logmel.shape == (musicnn.FRAMES, musicnn.MELS)
        assert np.abs(logmel[::FRAME_STEP] - FIXTURE[f"{key}_logmel"]).max() < 3e-4
        # The network alone, on the original's own log-mel (all 187 frames are
        # needed, so the fixture's every-4th frames serve only as a check).
        full = torch.from_numpy(logmel)[None, None]
        acts = model.stage_features(full, ["cnn2", "logits"])
        cnn2 = acts["cnn2"][0].T.numpy()[::FRAME_STEP]
        assert max_rel(cnn2, FIXTURE[f"{key}_cnn2"]) < 1e-3
        logits = model(audio)[0].numpy()
    assert np.abs(logits - FIXTURE[f"{key}_logits"]).max() < 1e-3
    assert acts["logits"].shape == (1, 50)


@pytest.mark.parametrize("kind", [0, 1])
def test_basic_pitch_matches_the_original(pitch, kind):
    key = f"basic_pitch_{kind}"
    audio = torch.from_numpy(fixed_signal(22050, basic_pitch.WINDOW, kind))[None]
    with torch.no_grad():
        hcqt = pitch.prepare(audio)
        assert hcqt.shape == (1, 8, basic_pitch.FRAMES, basic_pitch.CONTOUR_BINS)
        # Harmonic 1 (channel 1) is the CQT itself, cut to 264 bins.
        cqt = hcqt[0, 1].numpy()[::FRAME_STEP]
        assert np.abs(cqt - FIXTURE[f"{key}_cqt"][:, :264]).max() < 5e-3
        features = pitch.stage_features(hcqt, ["contour_features"])["contour_features"]
        assert max_rel(features[0].numpy()[:, ::FEATURE_STEP],
                       FIXTURE[f"{key}_contour_features"]) < 2e-3
        outputs = pitch.outputs(audio)
    for name in ("note", "onset", "contour"):
        ours = outputs[name][0].numpy()[::FRAME_STEP]
        assert np.abs(ours - FIXTURE[f"{key}_{name}"]).max() < 5e-4, name


def test_basic_pitch_hears_middle_c(pitch):
    t = np.arange(basic_pitch.WINDOW) / basic_pitch.SAMPLE_RATE
    audio = torch.from_numpy((0.5 * np.sin(2 * np.pi * 261.63 * t)).astype(np.float32))[None]
    with torch.no_grad():
        note = pitch.outputs(audio)["note"][0].mean(dim=0)
    assert basic_pitch.KEY_NAMES[int(note.argmax())] == "C4"


def test_declarations_hold(taggers, pitch):
    for model in (*taggers.values(), pitch):
        check_declaration(model)
    assert pitch.spec.classes[basic_pitch.parse_note("C4") - basic_pitch.LOWEST_MIDI] == "C4"


def test_note_names_parse_and_refuse():
    assert [basic_pitch.parse_note(n) for n in ("C4", "c#4", "Db4", "A0", "108")] == \
        [60, 61, 61, 21, 108]
    for bad in ("H2", "C", "E#4", "200", "C44"):
        with pytest.raises(ValueError):
            basic_pitch.parse_note(bad)


def test_gradients_reach_the_waveform(taggers, pitch):
    """Both front ends are differentiable, silence included (no sqrt at zero)."""
    for model, length, layer in ((taggers["MTT_musicnn"], musicnn.WINDOW, "logits"),
                                 (pitch, basic_pitch.WINDOW, "note")):
        for audio in (torch.zeros(1, length), 0.1 * torch.randn(1, length)):
            audio.requires_grad_(True)
            model.features(audio, [layer])[layer].mean().backward()
            assert torch.isfinite(audio.grad).all()
            if audio.abs().sum() > 0:
                assert audio.grad.abs().sum() > 0


def test_readers_refuse_other_files(tmp_path):
    bogus = tmp_path / "x.index"
    bogus.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="not a TensorFlow checkpoint"):
        tf_bundle.read_index(bogus)
    with pytest.raises(ValueError):
        onnx_reader.read(bogus)


def test_time_folded_conv_equals_conv2d_values_and_gradients():
    torch.manual_seed(0)
    folded = basic_pitch.TimeFoldedConv2d(8, 8, (3, 39), padding=(1, 19))
    plain = torch.nn.Conv2d(8, 8, (3, 39), padding=(1, 19))
    plain.load_state_dict(folded.state_dict())
    x1 = torch.randn(2, 8, 20, 264, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = folded(x1), plain(x2)
    assert torch.allclose(y1, y2, atol=1e-5)
    y1.square().sum().backward()
    y2.square().sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)


def test_frequency_batched_conv_equals_conv2d_values_and_gradients():
    torch.manual_seed(0)
    batched = musicnn.FrequencyBatchedConv2d(1, 51, (128, 1))
    plain = torch.nn.Conv2d(1, 51, (128, 1))
    plain.load_state_dict(batched.state_dict())
    x1 = torch.randn(2, 1, 314, 96, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = batched(x1), plain(x2)
    assert y1.shape == y2.shape and torch.allclose(y1, y2, atol=1e-5)
    y1.square().sum().backward()
    y2.square().sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)


def test_class_names_resolve_per_output(pitch, taggers):
    from audiodream_server.engine.params import ClassTarget, DreamParams

    def resolved(spec, **kw):
        return DreamParams(objective="class", **kw).validate().resolve(spec).classes

    spec = pitch.spec
    assert [c.index for c in resolved(spec, classes=(ClassTarget("C4"), ClassTarget("60")))] \
        == [39, 39]
    (contour,) = resolved(spec, classes=(ClassTarget("Db4"),), class_output="contour")
    assert (contour.index, contour.name) == (120, "C#4")
    (onset,) = resolved(spec, classes=(ClassTarget("A0", weight=-2.0),), class_output="onset")
    assert (onset.index, onset.weight) == (0, -2.0)
    tags = taggers["MTT_musicnn"].spec
    assert [c.name for c in resolved(tags, classes=(ClassTarget("Male_Vocal"),
                                                    ClassTarget(index=3)))] \
        == ["male vocal", "techno"]
