"""The model registry: name -> factory, and the resident models built from it.

Each factory returns a `DreamableModel` that declares its spec. Loading checks
the declaration against the network itself (feature-map counts of every layer),
moves the model to the chosen device, freezes it and keeps it resident: all
requests share it. Frozen parameters and hook-free feature extraction make
concurrent use safe.
"""

from __future__ import annotations

import logging
import threading
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

    def load(self, device: torch.device, names: Iterable[str] | None = None,
             lazy: Iterable[str] = ()) -> "ResidentModels":
        """Builds the resident set.

        Args:
            names: the models to serve (None = every registered one); an unknown
                name raises NotFound listing the registered ones.
            lazy: models built on first use instead of now (heavy ones: a
                server starts faster and holds less memory until they are
                asked for). Unknown names here are ignored: a lazy default list
                may name models that are not installed.
        """
        chosen = list(names) if names is not None else list(self._factories)
        for name in chosen:
            if name not in self._factories:
                raise NotFound(f"unknown model {name!r}; registered: {', '.join(self._factories)}")
        lazy = set(lazy)
        failed: dict[str, str] = dict(self._failed) if names is None else {}
        loaded: dict[str, LoadedModel] = {}
        pending: dict[str, Factory] = {}
        for name in chosen:
            if name in lazy:
                pending[name] = self._factories[name]
                continue
            try:
                loaded[name] = build(name, self._factories[name], device)
            except Exception as exc:  # a broken model must not take the server down
                log.error("model %s failed to load: %s", name, exc)
                failed[name] = str(exc)
        default = self.default if self.default in loaded or self.default in pending else \
            next(iter(loaded), next(iter(pending), ""))
        return ResidentModels(loaded, default, failed, pending, device)


def build(name: str, factory: Factory, device: torch.device) -> LoadedModel:
    """Builds one model, checks its declaration, freezes it on `device`."""
    module = factory()
    check_declaration(module)
    module.eval().requires_grad_(False).to(device)
    log.info("loaded model %s on %s", name, device)
    return LoadedModel(module, device)


class ResidentModels:
    """The models a server holds, by name; `pending` ones are built on first use.

    Iterating gives the models built so far; `get` builds a pending model once
    (other callers of the same model wait for it; the rest are not held up).
    """

    def __init__(self, models: dict[str, LoadedModel], default: str,
                 failed: dict[str, str] | None = None,
                 pending: dict[str, Factory] | None = None,
                 device: torch.device | None = None):
        self._models = models
        self.default = default
        self.failed = failed or {}
        self._pending = dict(pending or {})
        self._device = device or torch.device("cpu")
        self._locks = {name: threading.Lock() for name in self._pending}

    @property
    def pending(self) -> list[str]:
        """Models not built yet: they load on first use."""
        return [name for name in self._pending
                if name not in self._models and name not in self.failed]

    def is_ready(self, name: str = "") -> bool:
        """True when `get(name)` returns without building anything."""
        return (name or self.default) not in self.pending

    def get(self, name: str = "") -> LoadedModel:
        name = name or self.default
        if name in self._models:
            return self._models[name]
        if name in self._pending and name not in self.failed:
            return self._build(name)
        if name in self.failed:
            raise FailedPrecondition(f"model {name!r} failed to load: {self.failed[name]}")
        available = [*self._models, *self.pending]
        raise NotFound(f"unknown model {name!r}; available: {', '.join(available) or 'none'}")

    def load_all(self) -> "ResidentModels":
        """Builds every pending model now (a failure is recorded, not raised)."""
        for name in self.pending:
            try:
                self.get(name)
            except FailedPrecondition:
                pass
        return self

    def _build(self, name: str) -> LoadedModel:
        with self._locks[name]:
            if name in self._models:
                return self._models[name]
            if name in self.failed:
                raise FailedPrecondition(f"model {name!r} failed to load: {self.failed[name]}")
            try:
                model = build(name, self._pending[name], self._device)
            except Exception as exc:  # a broken model must not take the server down
                log.error("model %s failed to load: %s", name, exc)
                self.failed[name] = str(exc)
                raise FailedPrecondition(f"model {name!r} failed to load: {exc}") from exc
            self._models[name] = model
            return model

    def __iter__(self):
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models) + len(self.pending)  # served now or on first use


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
