"""A convolutional autoencoder of log-mel spectrograms, for morphing (seed 004).

After Engel et al. (NSynth) and Natsiou et al., as summarised in seed 004:
encode a sound's log-mel spectrogram with convolutions and pooling (Natsiou et
al. found pooling layers and no dense bottleneck reconstruct better), decode it
with upsampling and convolutions, train on reconstruction. Interpolating two
sounds' codes and decoding gives a sound in between (`engine.morph`).

Shapes, for audio `[B, T]` at 44.1 kHz:

    L = log(W |STFT(x)|^2 + 1e-6)    `[B, 1, 128, F]`: Hann n_fft 2048, hop 512,
                                     centred (F = T // 512 + 1, 86.1 frames/s),
                                     128 Slaney-normalised HTK mel bands 30 Hz..16 kHz
    u = (L - mu) / sigma             mu, sigma: scalars measured on the training set
    enc1  conv3x3 1->32,  ReLU, maxpool 2x2     `[B, 32, 64, F/2]`
    enc2  conv3x3 32->64, ReLU, maxpool 2x2     `[B, 64, 32, F/4]`
    enc3  conv3x3 64->64, ReLU, maxpool 2x1     `[B, 64, 16, F/4]`
    latent conv1x1 64->8 (linear)               `[B, 8, 16, F/4]`
    decoder: the mirror (conv3x3 + ReLU, nearest upsampling), a last conv3x3 to
    one map, then L' = sigma * u' + mu.

The frame count is padded (edge-replicated) to a multiple of 4 and cut back.
The latent code is 8 channels x 16 mel groups = 128 numbers per latent frame
at 21.5 frames/s (every 4 STFT frames, 46 ms): a 4x compression of the log-mel.

The encoder's stages are the dreamable layers (`ListLayers`); the model is
dreamed in the mel domain like the mel CNN (it has the same front end API).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .melcnn import LogMel
from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 44100
WINDOW = 44100
N_FFT, HOP, MELS = 2048, 512, 128
LATENT_CHANNELS = 8
TIME_POOL = 4   # STFT frames per latent frame
MEL_POOL = 8    # mel bands per latent row
WIDTHS = (32, 64, 64)


def _conv(cin: int, cout: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2)


class Decoder(nn.Module):
    """Latent `[B, 8, 16, F/4]` -> normalised log-mel `[B, 1, 128, F]`."""

    def __init__(self, widths: Sequence[int] = WIDTHS, latent: int = LATENT_CHANNELS):
        super().__init__()
        w1, w2, w3 = widths
        self.layers = nn.Sequential(
            _conv(latent, w3), nn.ReLU(), nn.Upsample(scale_factor=(2, 1)),
            _conv(w3, w2), nn.ReLU(), nn.Upsample(scale_factor=2),
            _conv(w2, w1), nn.ReLU(), nn.Upsample(scale_factor=2),
            _conv(w1, w1), nn.ReLU(), _conv(w1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class MelAutoencoder(DreamableModel):
    """Log-mel front end, a pooling convolutional encoder and its mirror decoder.

    `encode(audio)` and `decode(code)` are the morphing interface; the encoder
    stages are what `features` (dreaming, ListLayers) sees.
    """

    time_pool = TIME_POOL          # STFT frames per latent frame
    mel_pool = MEL_POOL            # mel bands per latent row
    latent_channels = LATENT_CHANNELS

    def __init__(self, name: str = "autoencoder", classes: Sequence[str] = (),
                 description: str = "", trained: bool = False, default_layer: str = "enc2"):
        super().__init__()
        del classes  # not a classifier; the training CLI passes the folder names
        w1, w2, w3 = WIDTHS
        self.frontend = LogMel(SAMPLE_RATE, N_FFT, HOP, MELS)
        # Normalisation of the log-mel, set by training (persisted with the weights).
        self.register_buffer("mel_mean", torch.tensor(-6.0))
        self.register_buffer("mel_std", torch.tensor(4.0))
        self.stages = nn.ModuleDict({
            "enc1": nn.Sequential(_conv(1, w1), nn.ReLU(), nn.MaxPool2d(2)),
            "enc2": nn.Sequential(_conv(w1, w2), nn.ReLU(), nn.MaxPool2d(2)),
            "enc3": nn.Sequential(_conv(w2, w3), nn.ReLU(), nn.MaxPool2d((2, 1))),
            "latent": _conv(w3, LATENT_CHANNELS, 1),
        })
        self.decoder = Decoder()
        strides = (HOP * 2, HOP * 4, HOP * 4, HOP * 4)
        layers = tuple(LayerSpec(n, "Conv2d", c, s) for n, c, s in zip(
            self.stages, (w1, w2, w3, LATENT_CHANNELS), strides, strict=True))
        self.spec = ModelSpec(
            name=name, sample_rate=SAMPLE_RATE, fixed_input_samples=WINDOW, layers=layers,
            classes=(), default_layer=default_layer,
            description=description or "convolutional autoencoder of log-mel spectrograms "
                                       "(morphing; dreamed on its log-mel)",
            trained=trained, domain="mel")

    # -- the DreamableModel interface -------------------------------------------------
    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        return self.frontend(audio)

    def stage_features(self, h: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        return super().stage_features(self.normalise(h), names)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio `[B, T]` -> reconstructed log-mel `[B, 1, 128, F]`."""
        return self.reconstruct(self.prepare(audio))

    # -- the morphing interface -------------------------------------------------------
    def normalise(self, mel: torch.Tensor) -> torch.Tensor:
        return (mel - self.mel_mean) / self.mel_std

    def encode_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel `[B, 1, 128, F]` -> code `[B, 8, 16, ceil(F / 4)]`."""
        frames = mel.shape[-1]
        pad = -frames % TIME_POOL
        h = self.normalise(mel)
        if pad:
            h = F.pad(h, (0, pad, 0, 0), mode="replicate")
        for stage in self.stages.values():
            h = stage(h)
        return h

    def decode(self, code: torch.Tensor, frames: int) -> torch.Tensor:
        """Code `[B, 8, 16, f]` -> log-mel `[B, 1, 128, frames]` (frames <= 4 f)."""
        return (self.decoder(code) * self.mel_std + self.mel_mean)[..., :frames]

    def reconstruct(self, mel: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode_mel(mel), mel.shape[-1])


def autoencoder(name: str = "autoencoder", classes: Sequence[str] = (),
                **kwargs) -> MelAutoencoder:
    """The registered architecture name for `audiodream train --arch autoencoder`."""
    return MelAutoencoder(name, classes, **kwargs)
