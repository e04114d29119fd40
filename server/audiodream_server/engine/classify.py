"""Listening: what a classifier hears in a sound (its class scores), and how a dream moved them.

For a sound x `[C, T]` and a model with an output of N classes:

    windows  x at the model rate, cut like a dream (fixed-length models), every
             channel apart
    z        the output's logits per window and frame          [W, N, F]
    p        sigmoid(z) (tags, notes, pitch bins) or softmax over N (one class
             per sound), per window and frame
    score    mean of p over frames, windows and channels       [N]

A tag or note present in part of the sound scores by the share of time it is
heard, as Basic Pitch's and musicnn's own per-frame outputs average.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..models.registry import LoadedModel
from . import classes, windows
from .objectives import _as_frames
from .resample import resample

BATCH = 16


@dataclass(frozen=True)
class Scores:
    """Class scores of one sound: `scores[i]` for `names[i]`, each 0..1."""

    output: str
    names: tuple[str, ...]
    scores: np.ndarray
    activation: str
    windows: int

    def top(self, count: int) -> list[tuple[int, str, float]]:
        """The `count` best (index, name, score), best first."""
        order = np.argsort(-self.scores, kind="stable")[:count]
        return [(int(i), self.names[i], float(self.scores[i])) for i in order]


@torch.no_grad()
def class_scores(model: LoadedModel, audio: np.ndarray, rate: int, output: str = "") -> Scores:
    """Scores of every class of `output` ("" = the logits layer) for `audio` `[C, T]`.

    Raises InvalidArgument / NotFound (engine.classes) for a model without classes
    or an unknown output.
    """
    spec = model.spec
    layer, names = classes.output_names(spec, output)
    signal = torch.from_numpy(np.array(resample(audio, rate, spec.sample_rate), dtype=np.float32))
    window = spec.fixed_input_samples
    items = windows.split(signal, window, window // 4) if window else signal
    total = torch.zeros(len(names), dtype=torch.float64)
    for first in range(0, len(items), BATCH):
        batch = items[first:first + BATCH].to(model.device)
        logits = _as_frames(model.module.features(batch, [layer])[layer]).float()
        if spec.class_activation == "sigmoid":
            probs = torch.sigmoid(logits)
        else:
            probs = torch.softmax(logits, dim=1)
        total += probs.mean(dim=-1).sum(dim=0).double().cpu()
    per_channel = len(items) // audio.shape[0]
    return Scores(layer, names, (total / len(items)).numpy(), spec.class_activation,
                  per_channel)


@dataclass(frozen=True)
class ClassChange:
    """A targeted class's score in the input and in the dream."""

    index: int
    name: str
    before: float
    after: float


def class_changes(model: LoadedModel, before: np.ndarray, after: np.ndarray, rate: int,
                  output: str, indices: list[int]) -> tuple[list[ClassChange], float, float]:
    """Scores of the classes `indices` in `before` and `after` (same rate), and the
    mean score of all the other classes in each."""
    a = class_scores(model, before, rate, output)
    b = class_scores(model, after, rate, output)
    changes = [ClassChange(i, a.names[i], float(a.scores[i]), float(b.scores[i]))
               for i in indices]
    rest = np.ones(len(a.names), dtype=bool)
    rest[list(indices)] = False
    others = (float(a.scores[rest].mean()), float(b.scores[rest].mean())) if rest.any() \
        else (0.0, 0.0)
    return changes, others[0], others[1]
