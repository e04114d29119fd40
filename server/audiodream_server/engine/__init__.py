"""The dream engine: gradient ascent on audio through a fixed network (SPEC §2)."""

from .features import Features, features
from .params import DreamParams, LayerSelection, Limits
from .pipeline import DreamResult, Progress, dream

__all__ = ["DreamParams", "LayerSelection", "Limits", "DreamResult", "Progress", "dream",
           "Features", "features"]
