"""Trained-model checkpoints: a safetensors weight file plus a JSON model card.

A checkpoint `NAME` is two files side by side:

- `NAME.safetensors`: the module's state dict (weights and BatchNorm statistics),
  stored as raw tensors. safetensors cannot carry code, so loading a
  checkpoint never unpickles anything.
- `NAME.json`: the model card: name, architecture, sample rate, classes,
  how the model was trained and how well it classifies.

The architecture named by the card is rebuilt from `architectures.ARCHITECTURES` and
the weights must fit it exactly (same names, same shapes), or loading fails
with a ValueError that says what did not fit.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..engine.params import MODEL_DEFAULTS
from . import architectures
from .spec import DreamableModel

CARD_SUFFIX = ".json"
WEIGHTS_SUFFIX = ".safetensors"
REQUIRED_FIELDS = ("name", "arch", "sample_rate", "classes")


def validate_card(card: dict, source: str = "model card") -> None:
    """Raises ValueError unless `card` names a known architecture, its rate and its classes.

    >>> validate_card({"name": "m", "arch": "model9", "sample_rate": 44100, "classes": ["a"]})
    Traceback (most recent call last):
    ...
    ValueError: model card: unknown arch 'model9'; known: autoencoder, melcnn, model1, model2
    """
    if not isinstance(card, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(card).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in card]
    if missing:
        raise ValueError(f"{source}: missing field(s) {', '.join(missing)}")
    if not isinstance(card["name"], str) or not card["name"]:
        raise ValueError(f"{source}: name must be a non-empty string")
    if card["arch"] not in architectures.ARCHITECTURES:
        raise ValueError(f"{source}: unknown arch {card['arch']!r}; known: "
                         f"{', '.join(sorted(architectures.ARCHITECTURES))}")
    if card["sample_rate"] != architectures.SAMPLE_RATE:
        raise ValueError(f"{source}: sample_rate {card['sample_rate']!r} does not match "
                         f"architecture {card['arch']} ({architectures.SAMPLE_RATE} Hz)")
    classes = card["classes"]
    unsupervised = card["arch"] in architectures.UNSUPERVISED
    if unsupervised and classes != []:
        raise ValueError(f"{source}: {card['arch']} is not a classifier: classes must be []")
    if not unsupervised and (not isinstance(classes, list) or len(classes) < 2
                             or not all(isinstance(c, str) and c for c in classes)):
        raise ValueError(f"{source}: classes must be a list of at least 2 non-empty strings")
    if len(set(classes)) != len(classes):
        raise ValueError(f"{source}: class names must be distinct")
    if "default_layer" in card and not isinstance(card["default_layer"], str):
        raise ValueError(f"{source}: default_layer must be a string")
    defaults = card.get("dream_defaults", {})
    if not isinstance(defaults, dict) or not all(
            k in MODEL_DEFAULTS and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in defaults.items()):
        raise ValueError(f"{source}: dream_defaults must map some of "
                         f"{', '.join(MODEL_DEFAULTS)} to numbers")


def weights_path(card_path: Path, card: dict) -> Path:
    """The weight file of a card: `card["weights"]` (a file name beside the card) or
    the card's own name with `.safetensors`."""
    name = card.get("weights") or card_path.with_suffix(WEIGHTS_SUFFIX).name
    if not isinstance(name, str) or Path(name).name != name:
        raise ValueError(f"{card_path}: weights must be a file name in the card's folder, "
                         f"got {name!r}")
    return card_path.parent / name


def save_model(module: DreamableModel, card: dict, out_prefix: str | Path) -> tuple[Path, Path]:
    """Writes `out_prefix.safetensors` and `out_prefix.json`.

    Args:
        module: the trained model.
        card: model card; must pass `validate_card`. Its `weights` field is set
            to the weight file's name.
        out_prefix: path without suffix (`models/instruments-m2`).
    Returns:
        (weights path, card path).
    """
    out_prefix = Path(out_prefix)
    card = dict(card, weights=out_prefix.name + WEIGHTS_SUFFIX)
    validate_card(card, str(out_prefix) + CARD_SUFFIX)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    weights = out_prefix.parent / card["weights"]
    card_path = out_prefix.parent / (out_prefix.name + CARD_SUFFIX)
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    save_file(state, str(weights), metadata={"arch": card["arch"], "name": card["name"]})
    # safetensors creates its file owner-only; give it the card's (umask) mode so
    # a server running as another user can read both.
    weights.chmod(card_path.stat().st_mode & 0o777)
    return weights, card_path


def read_card(card_path: str | Path) -> dict:
    """Reads and validates a model card; ValueError if it is missing or invalid."""
    card_path = Path(card_path)
    if not card_path.is_file():
        raise ValueError(f"model card {card_path} not found")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{card_path}: not a JSON model card ({exc})") from None
    validate_card(card, str(card_path))
    return card


def load_model(card_path: str | Path) -> DreamableModel:
    """Builds the model a card describes and loads its weights strictly.

    Returns:
        the model in eval mode, `spec.trained` True.
    Raises:
        ValueError: card or weight file missing, invalid, or not fitting the
            architecture (missing, unexpected or differently shaped tensors,
            non-finite values, a file that is not safetensors, e.g. a pickle).
    """
    card_path = Path(card_path)
    card = read_card(card_path)
    weights = weights_path(card_path, card)
    if not weights.is_file():
        raise ValueError(f"{card_path}: weight file {weights} not found")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{weights}: not a readable safetensors file ({exc})") from None
    factory = architectures.ARCHITECTURES[card["arch"]]
    extra = {"default_layer": card["default_layer"]} if card.get("default_layer") else {}
    module = factory(name=card["name"], classes=list(card["classes"]),
                     description=card.get("description", ""), trained=True, **extra)
    if card.get("dream_defaults"):
        merged = {**dict(module.spec.dream_defaults), **card["dream_defaults"]}
        module.spec = replace(module.spec, dream_defaults=tuple(sorted(merged.items())))
    if module.spec.default_layer not in module.spec.layer_names:
        raise ValueError(f"{card_path}: default_layer {module.spec.default_layer!r} is not a "
                         f"layer of {card['arch']} ({', '.join(module.spec.layer_names)})")
    expected = module.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise ValueError(f"{weights}: does not fit {card['arch']}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(f"{weights}: {key} has shape {tuple(state[key].shape)}, "
                             f"{card['arch']} with {len(card['classes'])} classes needs "
                             f"{tuple(tensor.shape)}")
        if state[key].is_floating_point() and not torch.isfinite(state[key]).all():
            raise ValueError(f"{weights}: {key} holds NaN or infinite values")
    module.load_state_dict(state, strict=True)
    module.eval()
    return module

