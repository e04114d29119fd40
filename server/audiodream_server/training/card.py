"""The model card of a trained model: what it is, how it was made, how good it is."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..datasets.manifest import read_manifest
from ..models import architectures
from .report import most_confused
from .trainer import TrainConfig, TrainResult


ARCH_LABELS = {"model1": "Bisig & Wegner model1", "model2": "Bisig & Wegner model2",
               "melcnn": "mel-spectrogram CNN", "autoencoder": "log-mel autoencoder"}


def data_recipe(data_dir: Path) -> dict:
    """The data set's manifest without its per-class counts (the card lists classes)."""
    manifest = read_manifest(data_dir)
    if manifest is None:
        return {"source": "folder-per-class data set without manifest.json"}
    return {k: v for k, v in manifest.items() if k != "classes"}


def model_card(result: TrainResult, config: TrainConfig, *, name: str, data_dir: Path,
               command: str, description: str = "", confusions: int = 10) -> dict:
    """A JSON-ready card for `checkpoint.save_model`."""
    recipe = data_recipe(data_dir)
    dataset = recipe.get("dataset", Path(data_dir).name)
    if not description:
        label = ARCH_LABELS.get(config.arch, config.arch)
        description = (f"{label} trained on {dataset} "
                       f"({len(result.classes)} classes), held-out accuracy "
                       f"{result.test_accuracy:.0%}")
    return {
        **_identity(name, config, result.model, list(result.classes), description),
        "data": recipe,
        "training": _training(config, result, command, loss="NLL on log-softmax",
                              split=f"stratified {1 - config.test_fraction:.0%}/"
                                    f"{config.test_fraction:.0%}"),
        "accuracy": {
            "held_out": round(result.test_accuracy, 4),
            "train": round(result.train_accuracy, 4),
            "chance": round(1 / len(result.classes), 4),
        },
        "most_confused": [
            {"true": c.true, "predicted": c.predicted, "count": c.count, "of": c.of}
            for c in most_confused(result.test_matrix, result.classes, confusions)],
        **_made_with(),
    }


def autoencoder_card(result, config: TrainConfig, *, name: str, data_dir: Path,
                     command: str, description: str = "") -> dict:
    """A JSON-ready card for the autoencoder: its held-out reconstruction error."""
    from ..models import autoencoder

    recipe = data_recipe(data_dir)
    dataset = recipe.get("dataset", Path(data_dir).name)
    held_out_db = result.db(result.test_mse)
    if not description:
        description = (f"log-mel autoencoder trained on {dataset}, held-out reconstruction "
                       f"error {held_out_db:.1f} dB rms (morphing)")
    return {
        **_identity(name, config, result.model, [], description),
        "latent": {
            "channels": autoencoder.LATENT_CHANNELS,
            "mel_rows": autoencoder.MELS // autoencoder.MEL_POOL,
            "values_per_frame": autoencoder.LATENT_CHANNELS * autoencoder.MELS
            // autoencoder.MEL_POOL,
            "frame_rate_hz": round(architectures.SAMPLE_RATE
                                   / (autoencoder.HOP * autoencoder.TIME_POOL), 3),
            "input": f"log-mel, {autoencoder.MELS} bands, n_fft {autoencoder.N_FFT}, "
                     f"hop {autoencoder.HOP}",
        },
        "data": recipe,
        "training": _training(
            config, result, command, loss="mean squared log-mel error (natural-log power)",
            augmentation="random level 0..-30 dB per clip and epoch",
            split=f"stratified by folder and file {1 - config.test_fraction:.0%}/"
                  f"{config.test_fraction:.0%}"),
        "reconstruction": {
            "held_out_mse": round(result.test_mse, 4),
            "held_out_db_rms": round(held_out_db, 3),
            "train_db_rms": round(result.db(result.train_mse), 3),
            "mean_spectrogram_db_rms": round(result.db(result.baseline_mse), 3),
            "note": "root-mean-square difference of the log-mel spectrograms (dB) between "
                    "held-out clips and their reconstructions; the mean spectrogram of the "
                    "training clips is the do-nothing reference",
        },
        **_made_with(),
    }


def _identity(name: str, config: TrainConfig, model, classes: list, description: str) -> dict:
    """The fields every card opens with: what the model is and what it takes."""
    return {
        "name": name,
        "arch": config.arch,
        "sample_rate": architectures.SAMPLE_RATE,
        "input_samples": architectures.WINDOW,
        "classes": classes,
        "trained": True,
        "default_layer": model.spec.default_layer,
        "description": description,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _training(config: TrainConfig, result, command: str, *, loss: str, split: str,
              **extra: str) -> dict:
    """How it was trained (classifier and autoencoder alike), `extra` after the loss."""
    return {
        "command": command,
        "epochs": len(result.history),
        "batch_size": config.batch_size,
        "optimizer": f"Adam lr {config.lr:g}",
        "lr_schedule": f"StepLR step {config.decay_every} epochs, gamma {config.gamma:g}",
        "loss": loss,
        **extra,
        "seed": config.seed,
        "split": split,
        "train_clips": result.train_clips,
        "test_clips": result.test_clips,
        "history": result.history,
    }


def _made_with() -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": platform.python_version()}
