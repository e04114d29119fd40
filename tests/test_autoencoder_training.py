"""`audiodream train --arch autoencoder`: a model card with the held-out reconstruction
error, weights that load, a model the server lists and morphs with."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch

from audiodream_server.engine.morph import MorphParams, morph
from audiodream_server.models.catalog import build_registry
from audiodream_server.models.checkpoint import load_model
from audiodream_server.training import cli
from sounds import tone

RATE = 44100


def test_train_autoencoder_writes_a_card_with_its_reconstruction_error(tmp_path):
    data = tmp_path / "sounds"
    for k, name in enumerate(("low", "high")):
        (data / name).mkdir(parents=True)
        for j in range(3):
            x = tone(1.0, RATE, freq=110.0 * (k + 1) * (1 + 0.1 * j), seed=j)
            sf.write(data / name / f"{j}.wav", x, RATE)
    out = tmp_path / "models" / "tiny-ae"
    assert cli.main([str(data), "--arch", "autoencoder", "--out", str(out), "--epochs", "2",
                     "--batch-size", "2", "--quiet"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["arch"] == "autoencoder" and card["classes"] == []
    rec = card["reconstruction"]
    assert rec["held_out_db_rms"] > 0 and rec["mean_spectrogram_db_rms"] > 0
    assert abs(rec["held_out_mse"] - card["training"]["history"][-1]["test_mse"]) < 1e-3
    assert card["latent"] == {"channels": 8, "mel_rows": 16, "values_per_frame": 128,
                              "frame_rate_hz": 21.533, "input": card["latent"]["input"]}
    assert len(card["training"]["history"]) == 2
    model = load_model(out.with_suffix(".json"))
    assert model.spec.trained and model.spec.layer_names == ["enc1", "enc2", "enc3", "latent"]
    # Normalisation constants come from the training clips, not the defaults.
    assert float(model.mel_mean) != -6.0
    models = build_registry([out.parent], shipped=False, pretrained=False,
                            untrained_models=False).load(torch.device("cpu"))
    loaded = models.get("tiny-ae")
    a = tone(0.5, RATE, freq=200.0)[:, 0][None]
    result = morph(a, RATE, a[:, ::-1].copy(), RATE, loaded, MorphParams(amount=0.0))
    assert np.abs(result.audio - a).max() < 1e-4
