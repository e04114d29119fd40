"""Training the log-mel autoencoder (`audiodream train --arch autoencoder`).

Recipe: the same stratified, file-grouped 80/20 split as the classifiers (the
class folders only balance the split); Adam, StepLR decay x0.1 at half the
epochs; loss: the mean squared error between the log-mel spectrogram and its
reconstruction, in natural-log power units, where an error e is
10 e / ln 10 = 4.34 e dB. Every training clip is played at a random level
(0 to -30 dB, seeded per epoch) so the code does not depend on loudness.
The log-mels are computed once, before the first epoch.

The held-out error is reported three ways: the mean squared error, its root
in dB, and the same root for the trivial reconstruction "the training set's mean
spectrogram" (what a model that learnt nothing about the clip would score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..models import architectures
from ..models.autoencoder import MelAutoencoder
from .data import ClipSet, stratified_split
from .state import save_state
from .trainer import TrainConfig, epoch_batches, start_or_resume

DB_PER_NAT = 10.0 / math.log(10.0)  # a log-power error of 1 is 4.34 dB
LEVEL_RANGE_DB = 30.0
FLOOR = 1e-6


@dataclass
class ReconstructionResult:
    """A finished autoencoder run.

    Attributes:
        model: trained, eval mode.
        history: per epoch: epoch, lr, train_mse, test_mse.
        test_mse, train_mse: final mean squared log-mel error (natural-log units).
        baseline_mse: held-out error of the training set's mean spectrogram.
        train_clips, test_clips: sizes of the split.
        classes: the data set's folders.
    """

    model: MelAutoencoder
    history: list[dict]
    test_mse: float
    train_mse: float
    baseline_mse: float
    train_clips: int
    test_clips: int
    classes: list[str]

    @staticmethod
    def db(mse: float) -> float:
        """Root-mean-square log-mel error in dB."""
        return DB_PER_NAT * math.sqrt(mse)


@torch.no_grad()
def log_mels(model: MelAutoencoder, audio: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """`[N, T]` clips -> `[N, 1, 128, F]` log-mels."""
    return torch.cat([model.prepare(audio[i:i + batch]) for i in range(0, audio.shape[0], batch)])


def at_level(mel: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """The log-mel of the same clip played `gain_db` `[N]` louder (exact, floor included)."""
    power = (mel.exp() - FLOOR).clamp_min(0.0)
    gain = torch.pow(10.0, gain_db / 10.0).view(-1, 1, 1, 1)
    return torch.log(power * gain + FLOOR)


@torch.no_grad()
def mse(model: MelAutoencoder, mels: torch.Tensor, batch: int = 64) -> float:
    """Mean squared reconstruction error over `mels` (eval mode)."""
    total, count = 0.0, 0
    for i in range(0, mels.shape[0], batch):
        part = mels[i:i + batch]
        total += float((model.reconstruct(part) - part).square().sum())
        count += part.numel()
    return total / max(count, 1)


def train_autoencoder(config: TrainConfig, clips: ClipSet, state_path: Path,
                      resume: bool = False, show_progress: bool = True,
                      log: Callable[[str], None] = print) -> ReconstructionResult:
    """Trains the autoencoder on `clips`, saving the resumable state every epoch."""
    config.validate()
    train_idx, test_idx = stratified_split(clips.labels, config.test_fraction, config.seed,
                                           clips.groups)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = architectures.ARCHITECTURES[config.arch](name=config.arch)
    mels = log_mels(model, clips.audio)
    train_mels, test_mels = mels[train_idx], mels[test_idx]
    # Normalisation constants of the training part (saved with the weights).
    model.mel_mean.fill_(float(train_mels.mean()))
    model.mel_std.fill_(float(train_mels.std()))
    state_path = Path(state_path)
    optimizer, scheduler, run_id, start, history = start_or_resume(
        model, config, clips, state_path, resume, log)

    positions = torch.arange(train_mels.shape[0])
    for epoch in range(start, config.epochs):
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 7919 + epoch)
        levels = -LEVEL_RANGE_DB * torch.rand(train_mels.shape[0], generator=gen)
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, seen = 0.0, 0
        bar = tqdm(epoch_batches(positions, config.batch_size, config.seed, epoch),
                   desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=not show_progress)
        for batch in bar:
            x = at_level(train_mels[batch], levels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss = (model.reconstruct(x) - x).square().mean()
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * batch.numel()
            seen += batch.numel()
            bar.set_postfix(mse=f"{loss_sum / seen:.3f}")
        scheduler.step()
        model.eval()
        test = mse(model, test_mels)
        record = {"epoch": epoch + 1, "lr": lr, "train_mse": loss_sum / max(seen, 1),
                  "test_mse": test}
        history.append(record)
        log(f"epoch {epoch + 1}/{config.epochs}: lr {lr:.0e}  train mse "
            f"{record['train_mse']:.3f}  held-out mse {test:.3f} "
            f"({ReconstructionResult.db(test):.2f} dB rms)")
        save_state(state_path, model, optimizer, scheduler,
                   {"epoch": epoch + 1, "history": history, "run": run_id})

    model.eval()
    mean_mel = train_mels.mean(dim=0, keepdim=True)
    baseline = float((test_mels - mean_mel).square().mean())
    return ReconstructionResult(model, history, mse(model, test_mels), mse(model, train_mels),
                                baseline, int(train_idx.numel()), int(test_idx.numel()),
                                list(clips.classes))
