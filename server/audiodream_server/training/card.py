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
               "melcnn": "mel-spectrogram CNN"}


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
    spec = result.model.spec
    if not description:
        label = ARCH_LABELS.get(config.arch, config.arch)
        description = (f"{label} trained on {dataset} "
                       f"({len(result.classes)} classes), held-out accuracy "
                       f"{result.test_accuracy:.0%}")
    return {
        "name": name,
        "arch": config.arch,
        "sample_rate": architectures.SAMPLE_RATE,
        "input_samples": architectures.WINDOW,
        "classes": list(result.classes),
        "trained": True,
        "default_layer": spec.default_layer,
        "description": description,
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "data": recipe,
        "training": {
            "command": command,
            "epochs": len(result.history),
            "batch_size": config.batch_size,
            "optimizer": f"Adam lr {config.lr:g}",
            "lr_schedule": f"StepLR step {config.decay_every} epochs, gamma {config.gamma:g}",
            "loss": "NLL on log-softmax",
            "seed": config.seed,
            "split": f"stratified {1 - config.test_fraction:.0%}/{config.test_fraction:.0%}",
            "train_clips": result.train_clips,
            "test_clips": result.test_clips,
            "history": result.history,
        },
        "accuracy": {
            "held_out": round(result.test_accuracy, 4),
            "train": round(result.train_accuracy, 4),
            "chance": round(1 / len(result.classes), 4),
        },
        "most_confused": [
            {"true": c.true, "predicted": c.predicted, "count": c.count, "of": c.of}
            for c in most_confused(result.test_matrix, result.classes, confusions)],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
