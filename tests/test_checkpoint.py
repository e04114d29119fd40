"""Checkpoints: safetensors weights + JSON card, strict loading, nothing unpickled;
and the shipped models in `models/` classify freshly rendered clips."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from audiodream_server.models import bisig
from audiodream_server.models.calibration import calibrate_batchnorm, calibration_audio
from audiodream_server.models.checkpoint import load_model, save_model, validate_card
from audiodream_server.models.registry import check_declaration

SHIPPED = Path(__file__).resolve().parents[1] / "models"
CLASSES = ["hiss", "hum", "tick"]


def small_card(**changes) -> dict:
    card = {"name": "tiny", "arch": "model2", "sample_rate": 44100, "classes": CLASSES,
            "default_layer": "conv3", "description": "test model"}
    card.update(changes)
    return card


@pytest.fixture()
def saved(tmp_path):
    """A calibrated model2 with 3 classes saved as tmp_path/tiny.{safetensors,json}."""
    torch.manual_seed(0)
    module = bisig.model2(name="tiny", classes=CLASSES)
    calibrate_batchnorm(module, calibration_audio(8, bisig.WINDOW, bisig.SAMPLE_RATE))
    module.eval()
    save_model(module, small_card(), tmp_path / "tiny")
    return module, tmp_path / "tiny.json"


def test_save_then_load_gives_the_same_network(saved):
    module, card_path = saved
    loaded = load_model(card_path)
    assert loaded.spec.trained and loaded.spec.name == "tiny"
    assert list(loaded.spec.classes) == CLASSES
    assert loaded.spec.default_layer == "conv3" and not loaded.training
    check_declaration(loaded)
    audio = calibration_audio(4, bisig.WINDOW, bisig.SAMPLE_RATE, seed=3)
    with torch.no_grad():
        assert torch.equal(module(audio), loaded(audio))
    card = json.loads(card_path.read_text())
    assert card["weights"] == "tiny.safetensors"
    weights = card_path.with_suffix(".safetensors")
    assert weights.stat().st_mode & 0o777 == card_path.stat().st_mode & 0o777


@pytest.mark.parametrize("change, message", [
    ({"arch": "resnet"}, "unknown arch"),
    ({"sample_rate": 16000}, "sample_rate"),
    ({"classes": ["a", "a", "b"]}, "distinct"),
    ({"classes": ["only"]}, "at least 2"),
    ({"name": ""}, "name"),
])
def test_invalid_cards_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        validate_card(small_card(**change))


def test_card_without_arch_is_refused(saved):
    _, card_path = saved
    card = json.loads(card_path.read_text())
    del card["arch"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="missing field.*arch"):
        load_model(card_path)


def edit_card(card_path: Path, **changes) -> None:
    """Rewrites fields of a saved model card."""
    card = json.loads(card_path.read_text())
    card.update(changes)
    card_path.write_text(json.dumps(card))


def test_weights_of_other_shape_are_refused(saved):
    _, card_path = saved
    edit_card(card_path, classes=CLASSES + ["roar"])  # classifier would need 4 rows, file has 3
    with pytest.raises(ValueError, match="shape"):
        load_model(card_path)


def test_weights_of_other_arch_are_refused(saved):
    _, card_path = saved
    edit_card(card_path, arch="model1")
    with pytest.raises(ValueError, match="does not fit model1"):
        load_model(card_path)


def test_unknown_default_layer_is_refused(saved):
    _, card_path = saved
    edit_card(card_path, default_layer="conv99")
    with pytest.raises(ValueError, match="default_layer 'conv99' is not a layer"):
        load_model(card_path)


def test_missing_weight_file_is_refused(saved):
    _, card_path = saved
    card_path.with_suffix(".safetensors").unlink()
    with pytest.raises(ValueError, match="not found"):
        load_model(card_path)


def test_missing_card_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_model(tmp_path / "absent.json")


def test_truncated_weight_file_is_refused(saved):
    _, card_path = saved
    weights = card_path.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(card_path)


def test_non_finite_weights_are_refused(saved):
    module, card_path = saved
    with torch.no_grad():
        module.stages["conv0"][0].weight[0, 0, 0] = float("nan")
    save_model(module, small_card(), card_path.with_suffix(""))
    with pytest.raises(ValueError, match="NaN"):
        load_model(card_path)


class _Trap:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_file_is_refused_without_running_it(saved, tmp_path):
    _, card_path = saved
    marker = tmp_path / "unpickled"
    with open(card_path.with_suffix(".safetensors"), "wb") as f:
        pickle.dump({"state": _Trap(marker)}, f)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(card_path)
    assert not marker.exists()


def test_weights_outside_the_card_folder_are_refused(saved):
    _, card_path = saved
    edit_card(card_path, weights="../tiny.safetensors")
    with pytest.raises(ValueError, match="file name in the card's folder"):
        load_model(card_path)


# ---- the shipped models -------------------------------------------------------------

SHIPPED_MODELS = {"instruments-m1": "gm-instruments", "instruments-m2": "gm-instruments",
                  "instruments-mel": "gm-instruments",
                  "speech-m2": "speech"}


def fresh_instrument_clips(classes: list[str], tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """Three new notes for every 8th program.

    Other seed and velocities than the data set's (40, 64, 90, 115), so no clip
    can be a bit-exact copy of a training note.
    """
    from audiodream_server.datasets import gm_instruments as gm
    from audiodream_server.datasets.tools import MissingTool, require_file, require_program

    try:
        require_program("fluidsynth", "fluidsynth")
        soundfont = require_file(gm.DEFAULT_SOUNDFONT, "fluid-soundfont-gm")
    except MissingTool as exc:
        pytest.skip(f"cannot render held-out clips: {exc}")
    settings = gm.GmSettings(programs=tuple(range(0, 128, 8)), clips_per_class=3, seed=987654,
                             velocities=(52, 77, 102, 127))
    audio, labels = [], []
    for program in settings.programs:
        notes = gm.note_plan(settings, program)
        clips = [c for c in gm.render_program(program, notes, soundfont, settings.gain, tmp)
                 if c is not None][:3]
        audio += clips
        labels += [classes.index(gm.class_name(program))] * len(clips)
    return np.stack(audio), np.array(labels)


def fresh_speech_clips(classes: list[str], tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """Three new sentences for every 8th speaker, from a seed the data set never used."""
    from audiodream_server.datasets import speech
    from audiodream_server.datasets.clips import audible_span, trimmed_clip
    from audiodream_server.datasets.tools import MissingTool, require_program

    try:
        espeak = require_program("espeak-ng", "espeak-ng")
    except MissingTool as exc:
        pytest.skip(f"cannot render held-out clips: {exc}")
    rng = np.random.default_rng(987654)
    audio, labels = [], []
    for label in range(0, len(classes), 8):
        speaker = classes[label].replace("_", "+", 1)
        texts = [speech.sentence(rng, (5, 9)) for _ in range(3)]
        for part in speech.speak(espeak, speaker, texts, tmp):
            start = audible_span(part)[0] + 4410  # 0.1 s into the sentence
            audio.append(trimmed_clip(part[start:], speech.CLIP_SAMPLES))
            labels.append(label)
    return np.stack(audio), np.array(labels)


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_model_classifies_fresh_clips_well_above_chance(name, tmp_path):
    card_path = SHIPPED / f"{name}.json"
    assert card_path.is_file(), f"shipped model card {card_path.name} missing"
    model = load_model(card_path)
    card = json.loads(card_path.read_text())
    assert card["trained"] is True and card["training"]["command"].startswith("audiodream train")
    assert card_path.with_suffix(".safetensors").stat().st_size < 2_500_000
    check_declaration(model)
    classes = list(model.spec.classes)
    render = fresh_instrument_clips if SHIPPED_MODELS[name] == "gm-instruments" \
        else fresh_speech_clips
    audio, labels = render(classes, tmp_path)
    # Same preprocessing as training: one window per clip, peak-normalised.
    audio = audio / np.maximum(np.abs(audio).max(axis=1, keepdims=True), 1e-12)
    with torch.no_grad():
        predicted = model(torch.from_numpy(audio.astype(np.float32))).argmax(dim=1).numpy()
    accuracy = float((predicted == labels).mean())
    chance = 1 / len(classes)
    # At least 10x chance on ~45 clips: an untrained or mis-loaded model scores
    # about chance; the shipped ones score far higher (see their cards).
    assert accuracy >= 10 * chance, f"{name}: accuracy {accuracy:.2f}, chance {chance:.3f}"
