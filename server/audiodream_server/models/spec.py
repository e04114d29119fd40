"""What a model declares about itself, and the base class that lets it be dreamed.

A model is a stack of named stages. `DreamableModel.features` runs the stack and
returns the outputs of the stages asked for, stopping after the deepest one.
It uses no forward hooks, so one resident model can serve concurrent requests:
nothing per-request is ever attached to the shared modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass(frozen=True)
class LayerSpec:
    """One dreamable layer.

    Args:
        name: what requests call it (e.g. "conv3").
        module_type: the torch module class that computes it (e.g. "Conv1d").
        channels: number of feature maps.
        stride: model input samples per output frame.
    """

    name: str
    module_type: str
    channels: int
    stride: int

    def frame_rate(self, sample_rate: int) -> float:
        """Activation frames per second of audio (Hz)."""
        return sample_rate / self.stride


@dataclass(frozen=True)
class ModelSpec:
    """Everything ListModels and ListLayers tell about a model.

    Args:
        name: registry name.
        sample_rate: rate of the audio the model takes (Hz).
        fixed_input_samples: window length the model requires; 0 = any length.
        layers: dreamable layers, shallow to deep.
        classes: class names, index = class index; empty for non-classifiers.
        default_layer: layer dreamed when a request names none.
        trained: False for seeded, calibrated, untrained weights.
        domain: what is optimised: "waveform", or "mel" (the model's log-mel,
            resynthesised afterwards; see engine.melspace).
        dream_defaults: (parameter, value) pairs this model dreams best with
            (engine.params.MODEL_DEFAULTS names them), from its card or architecture.
        class_activation: how logits become scores: "softmax" (one class per
            sound) or "sigmoid" (independent tags, notes, pitch bins).
        class_outputs: (layer, class names) of outputs besides the logits layer
            that can be read as classes (e.g. Basic Pitch's onsets, contour).
        note_classes: class names are notes; "C4", "Db4" or "60" name them.
    """

    name: str
    sample_rate: int
    fixed_input_samples: int
    layers: tuple[LayerSpec, ...]
    classes: tuple[str, ...] = ()
    default_layer: str = ""
    description: str = ""
    trained: bool = False
    domain: str = "waveform"
    logits_layer: str = ""
    dream_defaults: tuple[tuple[str, float], ...] = ()
    class_activation: str = "softmax"
    class_outputs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    note_classes: bool = False

    def layer(self, name: str) -> LayerSpec | None:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return None

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def strides_up_to(self, names) -> list[int]:
        """Cumulative strides of every layer up to the deepest of `names` (> 1 only)."""
        deepest = max((self.layer_names.index(n) for n in names if n in self.layer_names),
                      default=-1)
        return [layer.stride for layer in self.layers[:deepest + 1] if layer.stride > 1]


class DreamableModel(nn.Module):
    """Base of every model: an ordered dict of named stages.

    Subclasses fill `self.stages` (name -> module, in order) and `self.spec`.
    Each stage maps the previous stage's output to its own; the stage output is
    what the objective sees for that layer name. Shape of every stage output:
    `[B, C, F]` (batch, feature maps, frames); a classifier's logits `[B, N]`.
    """

    spec: ModelSpec
    stages: nn.ModuleDict

    def features(self, audio: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of the named layers.

        Args:
            audio: waveform at `spec.sample_rate`, shape `[B, T]`.
            names: layer names; the stack stops after the deepest one.
        Returns:
            name -> activation tensor.
        """
        return self.stage_features(self.prepare(audio), names)

    def stage_features(self, h: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Like `features`, from the prepared input (e.g. a log-mel spectrogram)."""
        wanted = set(names)
        out: dict[str, torch.Tensor] = {}
        for name, stage in self.stages.items():
            if not wanted - out.keys():
                break
            h = stage(h)
            if name in wanted:
                out[name] = h
        return out

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        """Turns `[B, T]` audio into the first stage's input (default `[B, 1, T]`)."""
        return audio.unsqueeze(1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        h = self.prepare(audio)
        for stage in self.stages.values():
            h = stage(h)
        return h

