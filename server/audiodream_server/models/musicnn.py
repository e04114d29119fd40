"""musicnn, the music tagger of Pons & Serra (ISMIR 2019 LBD), as a dreamable model.

musicnn hears 3 s of music at 16 kHz as a log-mel spectrogram and scores 50
tags (MagnaTagATune: "guitar", "techno", "choir", "sitar"...; Million Song
Dataset: "rock", "jazz", "female vocalists"...). It was trained on real
recordings; its weights ship in the `musicnn` package (ISC licence) as
TensorFlow-1 checkpoints, read here by `tf_bundle` without TensorFlow.

Front end (the package's `extractor.py`; librosa's defaults of 2019):

    S  = STFT(x)          Hann (periodic) 512, hop 256, centred, reflect-padded
    M  = W |S|^2          W: 96 Slaney mel filters, 0..8 kHz (librosa's default)
    L  = log10(10^4 M + 1)                       ("logC"), 187 frames = 3 s

The original stores M as float16 before the logarithm; that rounding (a
relative 2^-11) is left out here, so L differs by at most 2.1e-4 (see the
parity test).

Network ("7774timbraltemporal" front end, dense mid end, pooled back end),
every convolution followed by ReLU then BatchNorm (TF1 layers, eps 1e-3):

    L [B, 1, T, 96] -> BN
    timbral:  conv (7 x 38) and (7 x 67), 204 maps each, time padded 3 | 3,
              max over frequency                       -> [B, 408, T]
    temporal: conv (128 x 1), (64 x 1), (32 x 1), 51 maps each, "same",
              max over frequency                       -> [B, 153, T]
    cnn1 = conv7(front)            64 maps  (front = timbral | temporal, 561)
    cnn2 = conv7(cnn1) + cnn1
    cnn3 = conv7(cnn2) + cnn2
    mid  = front | cnn1 | cnn2 | cnn3                    [B, 753, T]
    pool = (max_t mid, mean_t mid) interleaved per map   [B, 1506]
    penultimate = BN(ReLU(dense(BN(pool))))              [B, 200]
    logits = dense(penultimate)                          [B, 50]; tags = sigmoid

Dreaming runs on the waveform, through this front end.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import tf_bundle
from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 16000
N_FFT, HOP, MELS = 512, 256, 96
FRAMES = 187                      # 3 s patches
WINDOW = FRAMES * HOP + 128       # 48000 samples: 188 centred frames, the first 187 used
BN_EPS = 1e-3                     # TF1 batch_normalization's default
# Default step (a fraction of the input's level): at the engine's 0.02 the change
# stayed 16-21 dB below the input in the sound benchmark (inaudible); see README.
STEP_SIZE = 0.07

MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral")
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy")
# Registry name -> (package folder, tags, what it was trained on).
VARIANTS = {
    "musicnn-mtt": ("MTT_musicnn", MTT_TAGS, "MagnaTagATune (25k clips)"),
    "musicnn-msd": ("MSD_musicnn", MSD_TAGS, "the Million Song Dataset (200k tracks)"),
}


# --- the Slaney mel scale (Slaney's Auditory Toolbox; librosa's default) ------------
# Linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4).
F_SP = 200.0 / 3.0
MIN_LOG_HZ = 1000.0
MIN_LOG_MEL = MIN_LOG_HZ / F_SP
LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel of `f` Hz.

    >>> round(float(hz_to_mel(np.array(1000.0))), 6), round(float(hz_to_mel(np.array(8000.0))), 3)
    (15.0, 45.246)
    """
    f = np.asarray(f, dtype=np.float64)
    return np.where(f < MIN_LOG_HZ, f / F_SP,
                    MIN_LOG_MEL + np.log(np.maximum(f, MIN_LOG_HZ) / MIN_LOG_HZ) / LOGSTEP)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < MIN_LOG_MEL, m * F_SP,
                    MIN_LOG_HZ * np.exp(LOGSTEP * (np.maximum(m, MIN_LOG_MEL) - MIN_LOG_MEL)))


def slaney_filterbank(sample_rate: int, n_fft: int, mels: int, fmin: float = 0.0,
                      fmax: float | None = None) -> np.ndarray:
    """`[mels, n_fft // 2 + 1]` triangles on the Slaney mel scale, each of unit area.

    Edges: mels + 2 points equally spaced in mel from fmin to fmax (default
    Nyquist); filter i rises from edge i to i+1 and falls to i+2, scaled by
    2 / (edge[i+2] - edge[i]) ("slaney" norm), as librosa.filters.mel does.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


class LogC(nn.Module):
    """Waveform `[B, T]` at 16 kHz -> "logC" log-mel `[B, 1, frames, 96]`, differentiable.

    frames = 1 + T // 256 (centred STFT, reflect padding), as librosa computes it.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True,
                                                         dtype=torch.float64).float(),
                             persistent=False)
        self.register_buffer("mel", torch.from_numpy(
            slaney_filterbank(SAMPLE_RATE, N_FFT, MELS)).float(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, center=True,
                          pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()        # [B, 257, F]
        mel = torch.einsum("mf,bft->btm", self.mel, power)     # [B, F, 96]
        return torch.log10(10000.0 * mel + 1.0).unsqueeze(1)


class _ConvBN(nn.Module):
    """conv -> ReLU -> BatchNorm, as the original's blocks."""

    def __init__(self, conv: nn.Module, maps: int, norm: type = nn.BatchNorm2d):
        super().__init__()
        self.conv = conv
        self.norm = norm(maps, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.relu(self.conv(x)))


def _timbral(kernel_freq: int) -> _ConvBN:
    return _ConvBN(nn.Conv2d(1, 204, (7, kernel_freq)), 204)


class FrequencyBatchedConv2d(nn.Conv2d):
    """A one-channel Conv2d with a (k x 1) kernel (along time only), computed as a
    Conv1d over time with every mel band a batch item:

        y[o, t, f] = b[o] + sum_k W[o, 0, k, 0] x[0, t + k, f]   (valid along time)

    Same weights, same sums; its backward pass ran 2.5-3.5x faster than
    PyTorch's CPU Conv2d for the temporal blocks' shapes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, frames, bands = x.shape
        rows = x[:, 0].transpose(1, 2).reshape(batch * bands, 1, frames)
        y = nn.functional.conv1d(rows, self.weight[..., 0], self.bias)
        return y.reshape(batch, bands, self.out_channels, -1).permute(0, 2, 3, 1)


def _temporal(kernel_time: int) -> _ConvBN:
    return _ConvBN(FrequencyBatchedConv2d(1, 51, (kernel_time, 1)), 51)


def _same(kernel: int) -> tuple[int, int]:
    """TF "same" padding for a stride-1 kernel: the extra zero goes after."""
    return (kernel - 1) // 2, kernel // 2


class Musicnn(DreamableModel):
    """musicnn on 3 s windows at 16 kHz (any length of at least 1 frame also works).

    Args:
        name: registry name; tags: the 50 tag names; description: one line.

    Shape: audio `[B, T]` -> logits `[B, 50]`. Layers: timbral `[B, 408, F]`,
    temporal `[B, 153, F]`, cnn1..cnn3 `[B, 64, F]`, penultimate `[B, 200]`,
    logits `[B, 50]` (F = 187 frames for the 48000-sample window).
    """

    LAYER_ORDER = ("timbral", "temporal", "cnn1", "cnn2", "cnn3", "penultimate", "logits")

    def __init__(self, name: str = "musicnn-mtt", tags: Sequence[str] = MTT_TAGS,
                 description: str = "", trained: bool = False):
        super().__init__()
        self.frontend = LogC()
        self.input_norm = nn.BatchNorm2d(1, eps=BN_EPS)
        self.f74, self.f77 = _timbral(38), _timbral(67)
        self.s1, self.s2, self.s3 = _temporal(128), _temporal(64), _temporal(32)
        self.mid1, self.mid2, self.mid3 = (
            _ConvBN(nn.Conv1d(cin, 64, 7, padding=3), 64, nn.BatchNorm1d) for cin in (561, 64, 64))
        self.pool_norm = nn.BatchNorm1d(1506, eps=BN_EPS)
        self.dense = nn.Linear(1506, 200)
        self.dense_norm = nn.BatchNorm1d(200, eps=BN_EPS)
        self.output = nn.Linear(200, len(tags))
        self.stages = nn.ModuleDict()  # the graph is not a chain: stage_features runs it
        frame_layers = [("timbral", "Conv2d", 408), ("temporal", "Conv2d", 153),
                        ("cnn1", "Conv1d", 64), ("cnn2", "Conv1d", 64), ("cnn3", "Conv1d", 64)]
        layers = [LayerSpec(n, t, c, HOP) for n, t, c in frame_layers]
        layers += [LayerSpec("penultimate", "Linear", 200, WINDOW),
                   LayerSpec("logits", "Linear", len(tags), WINDOW)]
        self.spec = ModelSpec(
            name=name, sample_rate=SAMPLE_RATE, fixed_input_samples=WINDOW, layers=tuple(layers),
            classes=tuple(tags), default_layer="cnn2", trained=trained, logits_layer="logits",
            description=description or "musicnn music tagger (Pons & Serra 2019)",
            class_activation="sigmoid", dream_defaults=(("step_size", STEP_SIZE),))

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        """`[B, T]` -> the log-mel `[B, 1, F, 96]` (the first 187 frames of a 3 s window)."""
        logmel = self.frontend(audio)
        return logmel[:, :, :FRAMES] if audio.shape[-1] == WINDOW else logmel

    def stage_features(self, h: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = set(names)
        out: dict[str, torch.Tensor] = {}
        deepest = max((self.LAYER_ORDER.index(n) for n in wanted if n in self.LAYER_ORDER),
                      default=len(self.LAYER_ORDER) - 1)

        def keep(name: str, value: torch.Tensor) -> bool:
            if name in wanted:
                out[name] = value
            return self.LAYER_ORDER.index(name) >= deepest

        x = self.input_norm(h)
        x7 = nn.functional.pad(x, (0, 0, 3, 3))
        timbral = torch.cat([self.f74(x7).amax(dim=-1), self.f77(x7).amax(dim=-1)], dim=1)
        temporal = torch.cat([
            block(nn.functional.pad(x, (0, 0) + _same(k))).amax(dim=-1)
            for block, k in ((self.s1, 128), (self.s2, 64), (self.s3, 32))], dim=1)
        if keep("timbral", timbral) | keep("temporal", temporal):
            return out
        front = torch.cat([timbral, temporal], dim=1)
        cnn1 = self.mid1(front)
        if keep("cnn1", cnn1):
            return out
        cnn2 = self.mid2(cnn1) + cnn1
        if keep("cnn2", cnn2):
            return out
        cnn3 = self.mid3(cnn2) + cnn2
        if keep("cnn3", cnn3):
            return out
        mid = torch.cat([front, cnn1, cnn2, cnn3], dim=1)
        pooled = torch.stack([mid.amax(dim=-1), mid.mean(dim=-1)], dim=-1).flatten(1)
        penultimate = self.dense_norm(torch.relu(self.dense(self.pool_norm(pooled))))
        if keep("penultimate", penultimate):
            return out
        keep("logits", self.output(penultimate))
        return out

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.features(audio, ["logits"])["logits"]


# --- weights from the package's checkpoint ------------------------------------------

def _conv2d(kernel: np.ndarray) -> torch.Tensor:
    """TF `[kh, kw, in, out]` -> torch `[out, in, kh, kw]`."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _conv1d(kernel: np.ndarray) -> torch.Tensor:
    """TF `[7, in, 1, out]` (a (7 x in) kernel over a 1-channel map) -> `[out, in, 7]`."""
    return torch.from_numpy(np.ascontiguousarray(kernel[:, :, 0, :].transpose(2, 1, 0)))


# Our module -> the checkpoint's variable scope, in the order the original builds them.
CONVS = {"f74": "conv2d", "f77": "conv2d_1", "s1": "conv2d_2", "s2": "conv2d_3",
         "s3": "conv2d_4", "mid1": "conv2d_5", "mid2": "conv2d_6", "mid3": "conv2d_7"}
NORMS = {"input_norm": "batch_normalization", "f74.norm": "batch_normalization_1",
         "f77.norm": "batch_normalization_2", "s1.norm": "batch_normalization_3",
         "s2.norm": "batch_normalization_4", "s3.norm": "batch_normalization_5",
         "mid1.norm": "batch_normalization_6", "mid2.norm": "batch_normalization_7",
         "mid3.norm": "batch_normalization_8", "pool_norm": "batch_normalization_9",
         "dense_norm": "batch_normalization_10"}
DENSES = {"dense": "dense", "output": "dense_1"}


def state_from_checkpoint(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Maps the checkpoint's variables to this module's state dict.

    Raises KeyError naming a missing variable.
    """
    def get(name: str) -> np.ndarray:
        if name not in tensors:
            raise KeyError(f"variable {name!r} is not in the musicnn checkpoint")
        return tensors[name]

    state: dict[str, torch.Tensor] = {}
    for ours, theirs in CONVS.items():
        kernel = get(f"{theirs}/kernel")
        weight = _conv1d(kernel) if ours.startswith("mid") else _conv2d(kernel)
        state[f"{ours}.conv.weight"] = weight
        state[f"{ours}.conv.bias"] = torch.from_numpy(get(f"{theirs}/bias").copy())
    for ours, theirs in NORMS.items():
        for field, var in (("weight", "gamma"), ("bias", "beta"),
                           ("running_mean", "moving_mean"), ("running_var", "moving_variance")):
            state[f"{ours}.{field}"] = torch.from_numpy(get(f"{theirs}/{var}").copy())
        state[f"{ours}.num_batches_tracked"] = torch.tensor(0)
    for ours, theirs in DENSES.items():
        state[f"{ours}.weight"] = torch.from_numpy(get(f"{theirs}/kernel").T.copy())
        state[f"{ours}.bias"] = torch.from_numpy(get(f"{theirs}/bias").copy())
    return state


def package_dir() -> Path | None:
    """The installed `musicnn` package's folder, found without importing it
    (its code needs TensorFlow 1.x); None if it is not installed."""
    try:
        spec = importlib.util.find_spec("musicnn")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for root in list(spec.submodule_search_locations or []):
        if Path(root).is_dir():
            return Path(root)
    return None


def checkpoint_prefix(variant: str) -> Path | None:
    """`.../musicnn/MTT_musicnn/` (the bundle's files are `.index`, `.data-...`)."""
    folder = package_dir()
    if folder is None:
        return None
    prefix = folder / VARIANTS[variant][0]
    return prefix if (prefix / ".index").is_file() else None


def load(variant: str = "musicnn-mtt") -> Musicnn:
    """musicnn with the package's trained weights, in eval mode.

    Raises:
        FileNotFoundError: the `musicnn` package is not installed.
        KeyError, RuntimeError: the checkpoint does not fit the architecture.
    """
    prefix = checkpoint_prefix(variant)
    if prefix is None:
        raise FileNotFoundError("musicnn weights not found: install the musicnn package "
                                "(pip install --no-deps musicnn==0.1.0)")
    folder, tags, data = VARIANTS[variant]
    model = Musicnn(variant, tags, trained=True, description=(
        f"musicnn tagger (Pons & Serra 2019) trained on {data}: 3 s at 16 kHz, "
        f"{len(tags)} tags like '{tags[3]}' (weights: the musicnn package, ISC)"))
    tensors = tf_bundle.read(str(prefix) + "/")
    model.load_state_dict(state_from_checkpoint(tensors), strict=True)
    return model.eval()


def factories() -> dict[str, Callable[[], Musicnn]]:
    """Registry name -> factory, for each variant whose checkpoint is installed."""
    return {name: (lambda name=name: load(name))
            for name in VARIANTS if checkpoint_prefix(name) is not None}
