"""`audiodream train` end to end on a tiny generated data set: checkpoint, card,
resume, determinism, and a loaded model that classifies new clips."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from audiodream_server.datasets.manifest import write_manifest
from audiodream_server.models.checkpoint import load_model
from audiodream_server.training import cli
from audiodream_server.training.data import load_clips, stratified_split

RATE = 44100
KINDS = ("clicks", "noise", "sine")
CLIPS_PER_CLASS = 32
# 4 epochs of ~10 batches: enough for three very different sounds, seconds on a
# CPU. The decay step is explicit so that a 2-epoch run can be resumed to 4.
TRAIN_ARGS = ["--arch", "model2", "--epochs", "4", "--step-size", "2", "--batch-size", "8",
              "--threads", "2", "--quiet"]


def synth(kind: str, rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    """One second of a test sound `[rate]`, random level, frequency or rate."""
    t = np.arange(rate) / rate
    if kind == "sine":
        x = np.sin(2 * np.pi * rng.uniform(150, 3000) * t + rng.uniform(0, 2 * np.pi))
    elif kind == "noise":
        x = rng.standard_normal(rate)
    else:
        x = np.zeros(rate)
        period = int(rate / rng.uniform(5, 40))
        x[int(rng.integers(0, period))::period] = 1.0
    return x * rng.uniform(0.1, 0.9) / np.abs(x).max()


def write_tones(root: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    for kind in KINDS:
        (root / kind).mkdir(parents=True)
        for k in range(CLIPS_PER_CLASS):
            sf.write(str(root / kind / f"{k:02d}.wav"), synth(kind, rng), RATE, subtype="PCM_16")
    write_manifest(root, dataset="test-tones", command="written by the test", sample_rate=RATE,
                   clip_samples=RATE, seed=seed, classes={k: CLIPS_PER_CLASS for k in KINDS},
                   versions={}, recipe={"kinds": list(KINDS)})
    return root


def run_train(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> Path:
    return write_tones(tmp_path_factory.mktemp("tones"), seed=1)


@pytest.fixture(scope="module")
def trained(tones, tmp_path_factory):
    """One training run: (output prefix, exit code, printed report)."""
    out = tmp_path_factory.mktemp("models") / "tones-m2"
    code, printed = run_train([str(tones), "--out", str(out), *TRAIN_ARGS])
    return out, code, printed


def test_train_writes_weights_card_and_state(trained, tones):
    out, code, printed = trained
    assert code == 0
    assert out.with_suffix(".safetensors").is_file()
    assert out.with_name("tones-m2.state.safetensors").is_file()
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["name"] == "tones-m2" and card["arch"] == "model2" and card["trained"] is True
    assert card["classes"] == list(KINDS) and card["sample_rate"] == RATE
    assert card["training"]["epochs"] == 4 and len(card["training"]["history"]) == 4
    assert card["training"]["command"] == "audiodream train " + " ".join(
        [str(tones), "--out", str(out), *TRAIN_ARGS])
    assert card["training"]["train_clips"] + card["training"]["test_clips"] == 3 * CLIPS_PER_CLASS
    assert card["data"]["dataset"] == "test-tones"  # the manifest travels into the card
    assert 0.0 <= card["accuracy"]["held_out"] <= 1.0 and "train" in card["accuracy"]
    assert card["torch"] == torch.__version__ and card["date"]
    assert "held-out accuracy" in printed


def test_trained_model_classifies_new_clips(trained):
    out, code, _ = trained
    assert code == 0
    model = load_model(out.with_suffix(".json"))
    rng = np.random.default_rng(12345)  # clips the training never saw
    audio, labels = [], []
    for label, kind in enumerate(KINDS):
        for _ in range(6):
            x = synth(kind, rng)
            audio.append(x / np.abs(x).max())
            labels.append(label)
    with torch.no_grad():
        predicted = model(torch.tensor(np.stack(audio), dtype=torch.float32)).argmax(1)
    accuracy = float((predicted.numpy() == np.array(labels)).mean())
    assert accuracy >= 0.8, f"accuracy {accuracy:.2f} on 18 new clips (chance 0.33)"


def test_resumed_run_equals_uninterrupted_run(trained, tones, tmp_path):
    out, code, _ = trained
    assert code == 0
    prefix = tmp_path / "resumed"
    first = [str(tones), "--out", str(prefix), *TRAIN_ARGS]
    first[first.index("--epochs") + 1] = "2"  # "interrupted" after epoch 2
    assert run_train(first)[0] == 0
    code, printed = run_train([str(tones), "--out", str(prefix), *TRAIN_ARGS, "--resume"])
    assert code == 0
    assert "resuming after epoch 2" in printed
    card = json.loads(prefix.with_suffix(".json").read_text())
    assert [h["epoch"] for h in card["training"]["history"]] == [1, 2, 3, 4]
    whole = load_file(str(out.with_suffix(".safetensors")))
    resumed = load_file(str(prefix.with_suffix(".safetensors")))
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key


def test_resume_refuses_a_state_from_other_settings(trained, tones, tmp_path, capsys):
    out, code, _ = trained
    assert code == 0
    state = out.with_name("tones-m2.state.safetensors")
    code, _ = run_train([str(tones), "--out", str(tmp_path / "other"), *TRAIN_ARGS,
                         "--lr", "0.01", "--state", str(state), "--resume"])
    assert code == 2
    assert "another run" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--batch-size", "1"], "batch size must be >= 2"),
    (["--test-fraction", "1.5"], "test fraction"),
])
def test_bad_settings_are_refused(tones, tmp_path, capsys, change, message):
    code, _ = run_train([str(tones), "--out", str(tmp_path / "m"), *TRAIN_ARGS, *change])
    assert code == 2
    assert message in capsys.readouterr().err


def test_data_without_two_classes_is_refused(tmp_path, capsys):
    (tmp_path / "only").mkdir()
    sf.write(str(tmp_path / "only" / "a.wav"), np.zeros(RATE), RATE)
    code, _ = run_train([str(tmp_path), "--out", str(tmp_path / "m"), *TRAIN_ARGS])
    assert code == 2
    assert "at least 2 class folders" in capsys.readouterr().err
    code, _ = run_train([str(tmp_path / "absent"), "--out", str(tmp_path / "m"), *TRAIN_ARGS])
    assert code == 2
    assert "not found" in capsys.readouterr().err


def test_clips_are_resampled_fitted_and_peak_normalised(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    t = np.arange(24000) / 48000  # half a second at 48 kHz, stereo, peak 0.3
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    sf.write(str(tmp_path / "a" / "x.wav"), np.stack([tone, tone], axis=1), 48000)
    sf.write(str(tmp_path / "b" / "y.flac"), 0.5 * np.ones(3 * RATE), RATE)  # 3 clips long
    clips = load_clips(tmp_path, RATE, RATE)
    assert clips.classes == ["a", "b"] and clips.labels.tolist() == [0, 1, 1, 1]
    assert clips.audio.shape == (4, RATE)
    assert clips.audio.abs().amax(dim=1).tolist() == pytest.approx([1.0] * 4, abs=1e-3)
    # 0.5 s of 48 kHz becomes 22050 samples at 44.1 kHz, then silence.
    assert clips.audio[0, 22100:].abs().max() < 1e-3 < clips.audio[0, :22000].abs().min() + 1


def test_cli_offers_exactly_the_registered_architectures():
    from audiodream_server.models import architectures

    assert set(cli.ARCHES) == set(architectures.ARCHITECTURES)


def test_split_is_stratified_disjoint_and_seeded():
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 2)
    train, test = stratified_split(labels, 0.2, seed=5)
    assert set(train.tolist()).isdisjoint(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(19))
    assert set(labels[test].tolist()) == {0, 1, 2} == set(labels[train].tolist())
    again = stratified_split(labels, 0.2, seed=5)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert not torch.equal(test, stratified_split(labels, 0.2, seed=6)[1])


def test_long_recordings_are_cut_into_one_second_clips_without_silence(tmp_path):
    import soundfile as sf

    from audiodream_server.training.data import read_segments

    rate = 22050
    t = np.arange(int(4.5 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 330 * t)
    tone[rate: 2 * rate] = 0.0  # one silent second in the middle
    path = tmp_path / "long.wav"
    sf.write(path, tone, rate)
    clips = read_segments(path, 44100, 44100)
    # 4 whole seconds, one of them silent -> 3 clips, each 1 s at 44.1 kHz, peak 1.
    assert len(clips) == 3
    assert all(c.shape == (44100,) and abs(float(np.abs(c).max()) - 1.0) < 1e-6 for c in clips)
    short = tmp_path / "short.wav"
    sf.write(short, tone[: rate // 4], rate)
    assert len(read_segments(short, 44100, 44100)) == 1


def test_clips_of_one_recording_stay_on_one_side_of_the_split():
    labels = torch.tensor([0] * 12 + [1] * 12)
    groups = torch.tensor([k // 3 for k in range(24)])  # 8 files of 3 clips each
    train, test = stratified_split(labels, 0.25, seed=1, groups=groups)
    train_files, test_files = set(groups[train].tolist()), set(groups[test].tolist())
    assert train_files.isdisjoint(test_files) and len(test_files) == 2  # one per class
    # One clip per file: exactly the clip-level split.
    single = stratified_split(labels, 0.25, seed=1, groups=torch.arange(24))
    plain = stratified_split(labels, 0.25, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(single, plain, strict=True))
