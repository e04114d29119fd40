"""User models as TorchScript files with a JSON sidecar.

A user drops `NAME.pt` (a TorchScript archive, `torch.jit.save`) and `NAME.json`
into the models directory. TorchScript is not pickle, but an archive is still a
program: its methods can call file and system operations when the model runs
(an archive can read and overwrite a file during a Dream). So these models
are code that must be trusted, and the server loads them only when its
operator enables them (see `catalog.build_registry`).

The sidecar declares what the server cannot see inside the archive:

    {"name": "my-model", "format": "torchscript", "file": "my-model.pt",
     "sample_rate": 22050, "fixed_input_samples": 0,
     "layers": [{"name": "enc1", "channels": 32, "stride": 4, "module_type": "Conv1d"}],
     "default_layer": "enc1", "classes": [], "description": "..."}

The archive must either define `features(audio: Tensor) -> Dict[str, Tensor]`
(every declared layer, `[B, C, F]` or `[B, N]`) or, for a single layer, have
`forward(audio) -> Tensor`, which is then the declared layer.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Sequence

import torch

from .spec import DreamableModel, LayerSpec, ModelSpec


class TorchScriptModel(DreamableModel):
    """A TorchScript archive behind the DreamableModel interface."""

    def __init__(self, scripted: torch.jit.ScriptModule, spec: ModelSpec):
        super().__init__()
        self.scripted = scripted
        self.spec = spec
        self._has_features = hasattr(scripted, "features")
        self.stages = torch.nn.ModuleDict()

    def features(self, audio: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        if self._has_features:
            out = self.scripted.features(audio)
        else:
            out = {self.spec.layers[0].name: self.scripted(audio)}
        missing = [n for n in names if n not in out]
        if missing:
            raise ValueError(f"{self.spec.name}: the archive did not return layer(s) "
                             f"{', '.join(missing)}")
        return {n: out[n] for n in names}

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.features(audio, [self.spec.layers[-1].name])[self.spec.layers[-1].name]


def is_torchscript_card(card: dict) -> bool:
    return card.get("format") == "torchscript"


def load(card_path: str | Path) -> TorchScriptModel:
    """Loads the archive a sidecar describes; ValueError if either is unusable."""
    card_path = Path(card_path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{card_path}: unreadable sidecar ({exc})") from None
    spec = _spec(card, str(card_path))
    file = card.get("file", card_path.with_suffix(".pt").name)
    if not isinstance(file, str) or Path(file).name != file:
        raise ValueError(f"{card_path}: file must be a file name beside the sidecar")
    archive = card_path.parent / file
    if not archive.is_file():
        raise ValueError(f"{card_path}: TorchScript file {file} not found")
    try:
        with warnings.catch_warnings():  # torch 2.x marks TorchScript deprecated; still served
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(archive), map_location="cpu")
    except Exception as exc:  # torch raises several types for a bad archive
        raise ValueError(f"{archive}: not a TorchScript archive ({exc})") from None
    return TorchScriptModel(scripted.eval(), spec)


def _spec(card: dict, source: str) -> ModelSpec:
    if not isinstance(card, dict):
        raise ValueError(f"{source}: expected a JSON object")
    for key in ("name", "sample_rate", "layers"):
        if key not in card:
            raise ValueError(f"{source}: missing field {key!r}")
    rate = card["sample_rate"]
    if not isinstance(rate, int) or not 8000 <= rate <= 192000:
        raise ValueError(f"{source}: sample_rate must be an integer in 8000..192000")
    fixed = card.get("fixed_input_samples", 0)
    if not isinstance(fixed, int) or fixed < 0:
        raise ValueError(f"{source}: fixed_input_samples must be an integer >= 0")
    layers = []
    for entry in card["layers"]:
        try:
            layers.append(LayerSpec(str(entry["name"]), str(entry.get("module_type", "Module")),
                                    int(entry["channels"]), int(entry.get("stride", 1))))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{source}: each layer needs a name and channels, "
                             f"got {entry!r}") from None
    if not layers:
        raise ValueError(f"{source}: declare at least one layer")
    classes = card.get("classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{source}: classes must be a list of strings")
    default = card.get("default_layer", layers[0].name)
    if default not in [layer.name for layer in layers]:
        raise ValueError(f"{source}: default_layer {default!r} is not a declared layer")
    logits = card.get("logits_layer", "")
    return ModelSpec(name=str(card["name"]), sample_rate=rate, fixed_input_samples=fixed,
                     layers=tuple(layers), classes=tuple(classes), default_layer=default,
                     description=str(card.get("description", "user TorchScript model")),
                     trained=bool(card.get("trained", True)), logits_layer=logits)
