"""Models: dreamable networks, each declaring its rate, input policy and layers."""

from .spec import LayerSpec, ModelSpec, DreamableModel
from .registry import ModelRegistry, LoadedModel, default_registry

__all__ = ["LayerSpec", "ModelSpec", "DreamableModel", "ModelRegistry", "LoadedModel",
           "default_registry"]
