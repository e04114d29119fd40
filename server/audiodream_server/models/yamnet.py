"""YAMNet, the AudioSet event classifier DreamSound dreams with (seed 000), in PyTorch.

YAMNet (Plakal & Ellis, TensorFlow Model Garden) is MobileNet-v1 on a log-mel
patch: 0.96 s of 16 kHz audio -> 96 x 64 log-mel image -> one standard and 13
depthwise-separable convolutions -> global average -> 521 AudioSet logits.
The published weights come as a Keras `yamnet.h5`; `yamnet_convert` turns them
into a safetensors file this module loads.

The log-mel front end is part of the model and differentiable, so the model is
dreamed on the waveform (SPEC §2.5). One patch of T = 15600 samples:

    frames:  x_t[n] = x[160 t + n] * w[n],  n < 400 (25 ms), t < 96 (10 ms hop)
             w[n] = 0.5 - 0.5 cos(2 pi n / 400)           (periodic Hann)
    STFT:    S[t, k] = | sum_n x_t[n] e^{-2 pi i k n / 512} |,   k <= 256
    mel:     M[t, b] = sum_k S[t, k] W[k, b],   64 bands, 125..7500 Hz
    log:     L[t, b] = ln(M[t, b] + 0.001)

15600 = 95 hops of 160 + one 400-sample window: exactly 96 frames, the patch the
original pads any shorter clip to.

The mel matrix W is the one TensorFlow's `linear_to_mel_weight_matrix` builds:
HTK mel m(f) = 1127 ln(1 + f / 700); 66 edges equally spaced in mel from m(125)
to m(7500); band b is a triangle over edges b, b+1, b+2, evaluated at the mel of
each FFT bin's frequency (bin 0, DC, gets no weight); no area normalisation.

Padding "same" as Keras computes it: output size ceil(n / stride), total padding
max((out - 1) * stride + k - n, 0), the smaller half *before*. For the 3 x 3,
stride-2 layers on even sizes that is 0 before and 1 after, which PyTorch's
symmetric `padding=1` would get wrong by one row. BatchNorm as in YAMNet: centre
(beta) but no scale (gamma fixed at 1), epsilon 1e-4.

Layers and what the objectives see (`features`): `logmel` `[B, 64, 96]` (mel
bands as channels, 10 ms frames); `layer1`..`layer14` `[B, C, T * M]` (each
block's output, time rows x mel columns flattened time-major, T * M positions);
`logits` `[B, N]`. A layer's declared stride is the input samples per time row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 16000
STFT_WINDOW = 400  # samples, 25 ms
STFT_HOP = 160  # samples, 10 ms
FFT_SIZE = 512  # next power of two above the window
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s of 10 ms frames
PATCH_SAMPLES = (PATCH_FRAMES - 1) * STFT_HOP + STFT_WINDOW  # 15600
BN_EPS = 1e-4
EMBEDDING = 1024
NUM_CLASSES = 521

# The official layer list: (kind, stride, filters); every kernel is 3 x 3.
BLOCKS = (
    ("conv", 2, 32),
    ("separable", 1, 64),
    ("separable", 2, 128),
    ("separable", 1, 128),
    ("separable", 2, 256),
    ("separable", 1, 256),
    ("separable", 2, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 1, 512),
    ("separable", 2, 1024),
    ("separable", 1, 1024),
)
KERNEL = 3
# Deep enough that a map responds to sound patterns rather than single mel cells
# (layer7 onwards have 512 maps on 6 x 4 positions), yet not yet class templates.
DEFAULT_LAYER = "layer10"


def hertz_to_mel(hz: np.ndarray | float) -> np.ndarray | float:
    """HTK mel scale, as TensorFlow uses: m = 1127 ln(1 + f / 700).

    >>> round(float(hertz_to_mel(1000.0)), 1)
    1000.0
    """
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(bands: int = MEL_BANDS, fft_size: int = FFT_SIZE,
               sample_rate: int = SAMPLE_RATE, low_hz: float = MEL_MIN_HZ,
               high_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """Triangular mel filters `[fft_size // 2 + 1, bands]`, TensorFlow's layout.

    Row k weights FFT bin k (frequency k * sample_rate / fft_size); column b is
    band b. Triangles rise from edge b to b+1 and fall to b+2 on the mel axis:

        W[k, b] = max(0, min((m_k - e_b) / (e_{b+1} - e_b), (e_{b+2} - m_k) / (e_{b+2} - e_{b+1})))

    with m_k the mel of bin k and e_0..e_{bands+1} equally spaced in mel.
    Row 0 (DC) is zero, as in TensorFlow.

    >>> w = mel_matrix()
    >>> w.shape, float(w[0].max()), bool((w.max(axis=0) > 0.5).all())
    ((257, 64), 0.0, True)
    """
    bins = fft_size // 2 + 1
    freqs = np.linspace(0.0, sample_rate / 2.0, bins)[1:]
    bin_mel = hertz_to_mel(freqs)[:, None]
    edges = np.linspace(hertz_to_mel(low_hz), hertz_to_mel(high_hz), bands + 2)
    lower, centre, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, bands)), weights], axis=0)


def periodic_hann(length: int) -> np.ndarray:
    """w[n] = 0.5 - 0.5 cos(2 pi n / length), n < length (TensorFlow's default window)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


class LogMel(nn.Module):
    """Waveform -> YAMNet's log-mel spectrogram, differentiable.

    Shape: `[B, T]` at 16 kHz -> `[B, 1, F, 64]` with F = (T - 400) // 160 + 1
    frames (96 for one patch), the image layer1 convolves (time rows, mel columns).

    The window and mel matrix are fixed buffers, not weights: they are rebuilt
    from the constants above and are not in the state dict.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.tensor(periodic_hann(STFT_WINDOW),
                                                    dtype=torch.float32), persistent=False)
        self.register_buffer("mel", torch.tensor(mel_matrix(), dtype=torch.float32),
                             persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.unfold(-1, STFT_WINDOW, STFT_HOP) * self.window  # [B, F, 400]
        # rfft zero-pads each frame to 512 at its end; TensorFlow does the same
        # (and zeros placed elsewhere would only change the phase, not |S|).
        magnitude = torch.fft.rfft(frames, n=FFT_SIZE).abs()  # [B, F, 257]
        return torch.log(magnitude @ self.mel + LOG_OFFSET).unsqueeze(1)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow "same" padding (before, after) for one axis.

    >>> same_padding(96, 3, 2), same_padding(96, 3, 1), same_padding(3, 3, 2)
    ((0, 1), (1, 1), (1, 1))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d (no bias) with Keras "same" padding for the input's actual size.

    Shape: `[B, C_in, H, W]` -> `[B, C_out, ceil(H / s), ceil(W / s)]`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], kh, sh)
        left, right = same_padding(x.shape[-1], kw, sw)
        if top or bottom or left or right:
            x = nn.functional.pad(x, (left, right, top, bottom))
        return super().forward(x)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    # Keras `scale=False`: gamma is fixed at 1; the converter stores ones in `weight`.
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class ConvBlock(nn.Module):
    """layer1: 3 x 3 convolution -> BatchNorm -> ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv = SameConv2d(cin, cout, KERNEL, stride=stride, bias=False)
        self.bn = _batch_norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class SeparableBlock(nn.Module):
    """layer2..layer14: depthwise 3 x 3 -> BN -> ReLU -> pointwise 1 x 1 -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.depthwise = SameConv2d(cin, cin, KERNEL, stride=stride, groups=cin, bias=False)
        self.depthwise_bn = _batch_norm(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.pointwise_bn = _batch_norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.depthwise_bn(self.depthwise(x)))
        return torch.relu(self.pointwise_bn(self.pointwise(x)))


class Head(nn.Module):
    """Global average over time and mel positions -> Linear: `[B, 1024, T, M]` -> `[B, N]`."""

    def __init__(self, classes: int):
        super().__init__()
        self.linear = nn.Linear(EMBEDDING, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(-2, -1)))


class YAMNet(DreamableModel):
    """YAMNet on one 0.96 s patch (15600 samples at 16 kHz).

    Args:
        classes: class names, index = logit index (521 for the published model).
        name: registry name.
        default_layer: layer dreamed when a request names none.
        description: one line for ListModels.
        trained: whether weights will be loaded (declared in the spec).

    Shape: audio `[B, 15600]` -> logits `[B, N]` (the original's sigmoid is not
    applied: dreaming a class maximises its logit).

    >>> m = YAMNet(classes=[f"c{i}" for i in range(3)])
    >>> m(torch.zeros(1, PATCH_SAMPLES)).shape
    torch.Size([1, 3])
    >>> m.features(torch.zeros(1, PATCH_SAMPLES), ["logmel", "layer14"])["layer14"].shape
    torch.Size([1, 1024, 6])
    """

    def __init__(self, classes: Sequence[str], name: str = "yamnet",
                 default_layer: str = DEFAULT_LAYER, description: str = "",
                 trained: bool = False):
        super().__init__()
        if not classes:
            raise ValueError("YAMNet needs class names")
        stages: dict[str, nn.Module] = {"logmel": LogMel()}
        layers = [LayerSpec("logmel", "LogMel", MEL_BANDS, STFT_HOP)]
        cin, hop = 1, STFT_HOP
        for i, (kind, stride, cout) in enumerate(BLOCKS, start=1):
            block = ConvBlock if kind == "conv" else SeparableBlock
            stages[f"layer{i}"] = block(cin, cout, stride)
            hop *= stride
            layers.append(LayerSpec(f"layer{i}", block.__name__, cout, hop))
            cin = cout
        stages["logits"] = Head(len(classes))
        layers.append(LayerSpec("logits", "Linear", len(classes), PATCH_SAMPLES))
        self.stages = nn.ModuleDict(stages)
        self.spec = ModelSpec(
            name=name, sample_rate=SAMPLE_RATE, fixed_input_samples=PATCH_SAMPLES,
            layers=tuple(layers), classes=tuple(classes), default_layer=default_layer,
            description=description or "YAMNet (AudioSet, 521 sound events): MobileNet-v1 "
                                       "on a 0.96 s log-mel patch, mel front end inside",
            trained=trained, logits_layer="logits", class_activation="sigmoid")

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        """The log-mel stage takes the waveform `[B, T]` itself."""
        return audio

    def features(self, audio: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of the named layers, as the objectives see them (module docstring):
        `logmel` `[B, 64, F]`, blocks `[B, C, T * M]`, `logits` `[B, N]`."""
        internal = super().features(audio, names)
        return {name: _objective_view(name, h) for name, h in internal.items()}


def _objective_view(name: str, h: torch.Tensor) -> torch.Tensor:
    if name == "logmel":  # [B, 1, F, 64] -> [B, 64, F]: bands as channels over time
        return h[:, 0].transpose(1, 2)
    if h.dim() == 4:  # [B, C, T, M] -> [B, C, T * M], a view
        return h.flatten(2)
    return h

