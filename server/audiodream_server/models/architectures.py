"""Trainable architectures by name: what `audiodream train --arch` and model cards name.

All of them take 1 s of 44.1 kHz audio, so one data set trains any of them.
"""

from __future__ import annotations

from . import autoencoder, bisig, melcnn

SAMPLE_RATE = 44100
WINDOW = 44100

ARCHITECTURES = {
    "model1": bisig.model1,   # Bisig & Wegner Model1, raw waveform
    "model2": bisig.model2,   # Bisig & Wegner Model2, raw waveform
    "melcnn": melcnn.melcnn,  # VGG-like CNN on log-mel, dreamed in the mel domain
    "autoencoder": autoencoder.autoencoder,  # log-mel autoencoder: morphing (seed 004)
}

# Architectures that are not classifiers: their cards list no classes.
UNSUPERVISED = frozenset({"autoencoder"})
