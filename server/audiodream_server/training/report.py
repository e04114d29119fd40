"""Accuracy and confusion: how well a classifier does, and which classes it mixes up."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """`[classes, classes]` counts; row = true class, column = predicted class.

    >>> confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), 2).tolist()
    [[1, 1], [0, 1]]
    """
    flat = labels.long() * classes + predicted.long()
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


@dataclass(frozen=True)
class Confusion:
    """A pair of classes the model confuses."""

    true: str
    predicted: str
    count: int
    of: int  # test clips of the true class

    def __str__(self) -> str:
        return f"{self.true} -> {self.predicted}: {self.count} of {self.of}"


def most_confused(matrix: torch.Tensor, classes: list[str], top: int = 10) -> list[Confusion]:
    """The `top` largest off-diagonal cells, largest first (ties in class order).

    >>> m = torch.tensor([[5, 3, 0], [0, 4, 1], [2, 0, 6]])
    >>> [str(c) for c in most_confused(m, ["a", "b", "c"], top=2)]
    ['a -> b: 3 of 8', 'c -> a: 2 of 8']
    """
    off = matrix.clone()
    off.fill_diagonal_(0)
    flat = off.flatten()
    # Stable ordering: by count descending, then by cell index.
    order = sorted(range(flat.numel()), key=lambda i: (-int(flat[i]), i))
    out = []
    n = len(classes)
    for i in order[:top]:
        if int(flat[i]) == 0:
            break
        true, pred = divmod(i, n)
        out.append(Confusion(classes[true], classes[pred], int(flat[i]), int(matrix[true].sum())))
    return out


def accuracy(matrix: torch.Tensor) -> float:
    """Fraction of clips on the diagonal (0.0 for an empty matrix)."""
    total = int(matrix.sum())
    return float(matrix.diagonal().sum()) / total if total else 0.0
