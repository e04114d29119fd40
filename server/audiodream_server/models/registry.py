"""The model registry: name -> factory, and the resident models built from it.

Each factory returns a `DreamableModel` that declares its spec. Loading checks
the declaration against the network itself (feature-map counts of every layer),
moves the model to the chosen device, freezes it and keeps it resident: all
requests share it. Frozen parameters and hook-free feature extraction make
concurrent use safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from ..errors import FailedPrecondition, NotFound
from . import bisig
from .calibration import calibrate_batchnorm, calibration_audio
from .spec import DreamableModel, ModelSpec

log = logging.getLogger(__name__)

Factory = Callable[[], DreamableModel]


@dataclass
class LoadedModel:
    """A resident, frozen model on its device."""

    module: DreamableModel
    device: torch.device

    @property
    def spec(self) -> ModelSpec:
        return self.module.spec

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


class ModelRegistry:
    """Names -> factories; `load` builds the resident set."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._failed: dict[str, str] = {}
        self.default: str = ""

    def register(self, name: str, factory: Factory, default: bool = False) -> None:
        if name in self._factories:
            raise ValueError(f"model {name!r} registered twice")
        self._factories[name] = factory
        if default or not self.default:
            self.default = name

    def fail(self, name: str, reason: str) -> None:
        """Records a model that cannot even be declared (a bad file): listed, never served."""
        log.error("model %s skipped: %s", name, reason)
        self._failed[name] = reason

    def names(self) -> list[str]:
        return list(self._factories)

    def load(self, device: torch.device, names: Iterable[str] | None = None) -> "ResidentModels":
        loaded: dict[str, LoadedModel] = {}
        failed: dict[str, str] = dict(self._failed) if names is None else {}
        for name in names if names is not None else self._factories:
            if name not in self._factories:
                raise NotFound(f"unknown model {name!r}; registered: {', '.join(self._factories)}")
            try:
                module = self._factories[name]()
                check_declaration(module)
                module.eval().requires_grad_(False).to(device)
                loaded[name] = LoadedModel(module, device)
                log.info("loaded model %s on %s", name, device)
            except Exception as exc:  # a broken model must not take the server down
                log.error("model %s failed to load: %s", name, exc)
                failed[name] = str(exc)
        default = self.default if self.default in loaded else next(iter(loaded), "")
        return ResidentModels(loaded, default, failed)


class ResidentModels:
    """The models a server holds, by name."""

    def __init__(self, models: dict[str, LoadedModel], default: str,
                 failed: dict[str, str] | None = None):
        self._models = models
        self.default = default
        self.failed = failed or {}

    def get(self, name: str = "") -> LoadedModel:
        name = name or self.default
        if name in self._models:
            return self._models[name]
        if name in self.failed:
            raise FailedPrecondition(f"model {name!r} failed to load: {self.failed[name]}")
        raise NotFound(f"unknown model {name!r}; available: {', '.join(self._models) or 'none'}")

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


@torch.no_grad()
def check_declaration(module: DreamableModel) -> None:
    """Raises ValueError if a declared layer is missing or has other channel counts."""
    spec = module.spec
    length = spec.fixed_input_samples or spec.sample_rate
    was_training = module.training
    module.eval()
    acts = module.features(torch.zeros(2, length), spec.layer_names)
    module.train(was_training)
    for layer in spec.layers:
        if layer.name not in acts:
            raise ValueError(f"{spec.name}: declared layer {layer.name} not produced")
        if acts[layer.name].shape[1] != layer.channels:
            raise ValueError(f"{spec.name}: layer {layer.name} has {acts[layer.name].shape[1]} "
                             f"channels, declared {layer.channels}")
    if spec.default_layer not in spec.layer_names:
        raise ValueError(f"{spec.name}: default layer {spec.default_layer} is not a layer")


UNTRAINED_CLASSES = tuple(f"untrained_{i}" for i in range(10))


def untrained(arch: str, seed: int = 0) -> Factory:
    """A factory for an architecture with seeded weights and calibrated BatchNorm."""

    def build() -> DreamableModel:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = bisig.ARCHITECTURES[arch](
                name=arch, classes=UNTRAINED_CLASSES,
                description=f"Bisig & Wegner {arch}, untrained: seeded weights, "
                            "BatchNorm calibrated on generated audio")
        calibrate_batchnorm(module, calibration_audio(32, bisig.WINDOW, bisig.SAMPLE_RATE, seed))
        return module.eval()

    return build


def default_registry() -> ModelRegistry:
    """The models every server offers."""
    registry = ModelRegistry()
    registry.register("model2", untrained("model2"), default=True)
    registry.register("model1", untrained("model1"))
    return registry
