"""Model1 and Model2 of Bisig & Wegner, "Deep Dream for Sound Synthesis" (seed 003 §3.2).

Raw-waveform classifiers: 1 s of 44.1 kHz audio in, class log-probabilities out.
Each convolution is followed by BatchNorm and Swish; Table 1 gives kernel sizes,
strides and paddings. The paper gives only parameter counts (~400 k for the
4-layer Model1, ~300 k for the 8-layer Model2), so the channel widths below were
chosen to match them:

    Model1 convs: 1->32->64->128->192   (401 k conv weights)
    Model2 convs: 1->16->32->32->64->64->128->128->128   (281 k conv weights)

With these strides both stacks shrink 44100 samples to a single frame, so the
classifier is one Linear layer on the last feature maps.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 44100
WINDOW = 44100

# (kernel, stride, padding) per layer, Table 1 of seed 003.
MODEL1_LAYERS = ((85, 49, 42), (43, 25, 21), (17, 9, 8), (7, 4, 3))
MODEL1_CHANNELS = (32, 64, 128, 192)
MODEL2_LAYERS = ((129, 7, 64), (65, 7, 32), (33, 5, 16), (17, 5, 8),
                 (9, 3, 4), (5, 3, 2), (3, 2, 1), (3, 2, 1))
MODEL2_CHANNELS = (16, 32, 32, 64, 64, 128, 128, 128)


class WaveformConv(nn.Conv1d):
    """The first convolution, on the raw waveform (one input channel).

    Same parameters and result as nn.Conv1d, computed as frames @ kernels:

        y[b, o, t] = bias[o] + sum_k x_pad[b, t * stride + k] * w[o, 0, k]

    With one input channel and long kernels, the CPU convolution kernels are
    slow; one matrix product over the unfolded frames is about twice as fast
    for forward + backward, which is what every dream step runs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels != 1 or x.device.type != "cpu":
            return super().forward(x)
        (kernel,), (stride,), (padding,) = self.kernel_size, self.stride, self.padding
        frames = nn.functional.pad(x[:, 0], (padding, padding)).unfold(-1, kernel, stride)
        out = frames @ self.weight[:, 0, :].t()
        if self.bias is not None:
            out = out + self.bias
        return out.transpose(1, 2)


class ConvBlock(nn.Sequential):
    """Conv1d -> BatchNorm1d -> Swish, the unit of both models."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int):
        conv = WaveformConv if cin == 1 else nn.Conv1d
        super().__init__(
            conv(cin, cout, kernel, stride=stride, padding=padding),
            nn.BatchNorm1d(cout),
            nn.SiLU(),
        )


class Classifier(nn.Module):
    """Flattens the last `[B, C, F]` feature maps and maps them to class logits `[B, N]`."""

    def __init__(self, features: int, classes: int):
        super().__init__()
        self.linear = nn.Linear(features, classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h.flatten(1))


def _output_length(length: int, kernel: int, stride: int, padding: int) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class BisigModel(DreamableModel):
    """A Bisig & Wegner raw-waveform classifier.

    Args:
        name: registry name.
        layers: (kernel, stride, padding) per convolution.
        channels: feature maps per convolution.
        classes: class names (their count sets the classifier size).
        description: one line for ListModels.
        trained: whether the weights were trained.

    Shape: audio `[B, 44100]` -> logits `[B, N]`. `forward` returns logits;
    `log_probs` adds the softmax of the paper.
    """

    def __init__(self, name: str, layers: Sequence[tuple[int, int, int]],
                 channels: Sequence[int], classes: Sequence[str], description: str = "",
                 trained: bool = False, default_layer: str = ""):
        super().__init__()
        if len(layers) != len(channels):
            raise ValueError("one channel count per layer")
        stages: dict[str, nn.Module] = {}
        specs = []
        cin, length, stride = 1, WINDOW, 1
        for i, ((kernel, step, padding), cout) in enumerate(zip(layers, channels, strict=True)):
            stages[f"conv{i}"] = ConvBlock(cin, cout, kernel, step, padding)
            length = _output_length(length, kernel, step, padding)
            stride *= step
            specs.append(LayerSpec(f"conv{i}", "Conv1d", cout, stride))
            cin = cout
        stages["logits"] = Classifier(cin * length, len(classes))
        specs.append(LayerSpec("logits", "Linear", len(classes), WINDOW))
        self.stages = nn.ModuleDict(stages)
        self.spec = ModelSpec(
            name=name, sample_rate=SAMPLE_RATE, fixed_input_samples=WINDOW,
            layers=tuple(specs), classes=tuple(classes),
            default_layer=default_layer or specs[len(specs) // 2 - 1].name,
            description=description, trained=trained, logits_layer="logits")

    def log_probs(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.forward(audio), dim=-1)


def model1(name: str = "model1", classes: Sequence[str] = (), **kwargs) -> BisigModel:
    """Model1: four convolutions (~400 k parameters)."""
    return BisigModel(name, MODEL1_LAYERS, MODEL1_CHANNELS, classes,
                      default_layer=kwargs.pop("default_layer", "conv1"), **kwargs)


def model2(name: str = "model2", classes: Sequence[str] = (), **kwargs) -> BisigModel:
    """Model2: eight convolutions (~300 k parameters)."""
    return BisigModel(name, MODEL2_LAYERS, MODEL2_CHANNELS, classes,
                      default_layer=kwargs.pop("default_layer", "conv3"), **kwargs)


ARCHITECTURES = {"model1": model1, "model2": model2}
