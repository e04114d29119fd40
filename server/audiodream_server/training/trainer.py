"""The training loop of Bisig & Wegner (seed 003 §3.3), resumable and deterministic.

Recipe: stratified 80/20 train/test split, Adam (lr 1e-3, default betas),
StepLR decay x0.1 (by default once, at half the epochs: the paper decays every
100 of 200 epochs), NLL loss on the model's log-softmax, batches of 128.

After the last epoch the BatchNorm running statistics are re-estimated on
the training clips for the final weights (see `train`).

Determinism: the weights are initialised from `seed`, and epoch e shuffles
with a generator seeded by (seed, e) alone, so a run resumed after any epoch
continues exactly as the uninterrupted run would have (same thread count).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..models import architectures
from ..models.calibration import calibrate_batchnorm
from ..models.spec import DreamableModel
from .data import ClipSet, stratified_split
from .report import accuracy, confusion_matrix
from .state import load_state, read_info, save_state

EVAL_BATCH = 256  # forward-only batches: larger is fine, memory ~ 256 x 1 s of activations


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters.

    Args:
        arch: key of `architectures.ARCHITECTURES` ("model1", "model2", "melcnn").
        epochs: passes over the training part.
        batch_size: clips per step (>= 2: BatchNorm needs two examples).
        lr: Adam's initial learning rate.
        step_size: epochs between decays of the learning rate; 0 = epochs // 2.
        gamma: decay factor per step.
        seed: initial weights, split and shuffling all derive from it.
        test_fraction: share of each class held out for testing (0..1).
    """

    arch: str
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    step_size: int = 0
    gamma: float = 0.1
    seed: int = 0
    test_fraction: float = 0.2

    def validate(self) -> None:
        if self.arch not in architectures.ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of "
                             f"{', '.join(sorted(architectures.ARCHITECTURES))}")
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        if self.batch_size < 2:
            raise ValueError("batch size must be >= 2 (BatchNorm needs two clips per batch)")
        if not self.lr > 0:
            raise ValueError("learning rate must be > 0")
        if self.step_size < 0:
            raise ValueError("step size must be >= 0 (0 = half the epochs)")
        if not 0 < self.gamma <= 1:
            raise ValueError("gamma must be in (0, 1]")
        if not 0 < self.test_fraction < 1:
            raise ValueError("test fraction must be between 0 and 1")

    @property
    def decay_every(self) -> int:
        """The StepLR step size actually used (epochs)."""
        return self.step_size or max(1, self.epochs // 2)

    def fingerprint(self) -> dict:
        """What must not change when a run is resumed (epochs may grow)."""
        out = asdict(self)
        del out["epochs"]
        out["step_size"] = self.decay_every
        return out


@dataclass
class TrainResult:
    """A finished run.

    Attributes:
        model: trained, eval mode, `spec.trained` still False (the card sets it).
        history: per epoch: epoch, lr, train_loss, train_accuracy (running,
            train mode), test_accuracy (eval mode).
        test_matrix: confusion matrix on the held-out part.
        train_accuracy, test_accuracy: final, eval mode.
        train_clips, test_clips: sizes of the split.
    """

    model: DreamableModel
    history: list[dict]
    test_matrix: torch.Tensor
    train_accuracy: float
    test_accuracy: float
    train_clips: int
    test_clips: int
    classes: list[str] = field(default_factory=list)


def data_digest(clips: ClipSet) -> str:
    """SHA-256 of the clips and labels: a resumed run must see the same data."""
    h = hashlib.sha256()
    h.update(clips.audio.contiguous().numpy().data)
    h.update(clips.labels.numpy().tobytes())
    h.update("\n".join(clips.classes).encode())
    return h.hexdigest()


def epoch_batches(indices: torch.Tensor, batch_size: int, seed: int,
                  epoch: int) -> list[torch.Tensor]:
    """Shuffled batches for one epoch; a last batch of one clip is dropped (BatchNorm).

    >>> [len(b) for b in epoch_batches(torch.arange(9), 4, seed=0, epoch=0)]
    [4, 4]
    >>> [len(b) for b in epoch_batches(torch.arange(10), 4, seed=0, epoch=0)]
    [4, 4, 2]
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = indices[torch.randperm(indices.numel(), generator=gen)]
    batches = list(torch.split(order, batch_size))
    if batches and batches[-1].numel() < 2:
        batches.pop()
    return batches


@torch.no_grad()
def predict(model: DreamableModel, audio: torch.Tensor, batch: int = EVAL_BATCH) -> torch.Tensor:
    """Class indices `[N]` for clips `[N, T]`, in eval mode."""
    was_training = model.training
    model.eval()
    out = [model(audio[i:i + batch]).argmax(dim=-1) for i in range(0, audio.shape[0], batch)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def evaluate(model: DreamableModel, clips: ClipSet, indices: torch.Tensor) -> torch.Tensor:
    """Confusion matrix of the model on `clips[indices]`."""
    predicted = predict(model, clips.audio[indices])
    return confusion_matrix(clips.labels[indices], predicted, len(clips.classes))


def train(config: TrainConfig, clips: ClipSet, state_path: Path, resume: bool = False,
          show_progress: bool = True, log: Callable[[str], None] = print) -> TrainResult:
    """Trains a model on `clips`, saving the resumable state after every epoch.

    Args:
        config: hyper-parameters.
        clips: the data set in memory.
        state_path: training state file (written every epoch).
        resume: continue from `state_path` if it exists.
        show_progress: tqdm bar per epoch.
        log: where epoch summaries go.
    Raises:
        ValueError: bad config, or a state file from a different run.
    """
    config.validate()
    train_idx, test_idx = stratified_split(clips.labels, config.test_fraction, config.seed,
                                           clips.groups)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = architectures.ARCHITECTURES[config.arch](name=config.arch, classes=clips.classes)
    state_path = Path(state_path)
    optimizer, scheduler, run_id, start, history = start_or_resume(
        model, config, clips, state_path, resume, log)

    for epoch in range(start, config.epochs):
        model.train()
        batches = epoch_batches(train_idx, config.batch_size, config.seed, epoch)
        lr = optimizer.param_groups[0]["lr"]
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
                   leave=False, disable=not show_progress)
        for batch in bar:
            x, y = clips.audio[batch], clips.labels[batch]
            optimizer.zero_grad(set_to_none=True)
            log_probs = model.log_probs(x)
            loss = F.nll_loss(log_probs, y)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * y.numel()
            correct += int((log_probs.argmax(dim=-1) == y).sum())
            seen += y.numel()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        scheduler.step()
        test_acc = accuracy(evaluate(model, clips, test_idx))
        record = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(seen, 1),
                  "train_accuracy": correct / max(seen, 1), "test_accuracy": test_acc}
        history.append(record)
        log(f"epoch {epoch + 1}/{config.epochs}: lr {lr:.0e}  loss {record['train_loss']:.3f}  "
            f"train acc {record['train_accuracy']:.3f}  held-out acc {test_acc:.3f}")
        save_state(state_path, model, optimizer, scheduler,
                   {"epoch": epoch + 1, "history": history, "run": run_id})

    # The running BatchNorm statistics are a moving average over weights that
    # kept changing; re-estimate them once for the final weights, as a plain
    # average over the training clips, so eval mode matches what was learnt
    # (this matters most for short runs). The clips go in shuffled batches:
    # batches of one class would miss the variance between classes.
    shuffled = torch.cat(epoch_batches(train_idx, config.batch_size, config.seed, config.epochs))
    calibrate_batchnorm(model, clips.audio[shuffled], batch=config.batch_size)
    model.eval()
    test_matrix = evaluate(model, clips, test_idx)
    train_acc = accuracy(evaluate(model, clips, train_idx))
    return TrainResult(model, history, test_matrix, train_acc, accuracy(test_matrix),
                       int(train_idx.numel()), int(test_idx.numel()), list(clips.classes))


def start_or_resume(model, config: TrainConfig, clips: ClipSet, state_path: Path,
                    resume: bool, log: Callable[[str], None]):
    """Adam with the step decay of `config` for `model`; with `resume`, the state
    saved at `state_path` by the same run (same settings and data) is loaded.
    Returns `(optimizer, scheduler, run_id, first epoch, history so far)`."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.decay_every, config.gamma)
    run_id = {"config": config.fingerprint(), "data": data_digest(clips)}
    start, history = 0, []
    state_path = Path(state_path)
    if resume and state_path.is_file():
        info = read_info(state_path)
        if info.get("run") != run_id:
            raise ValueError(f"{state_path} belongs to another run (different data or "
                             f"settings: saved {info.get('run', {}).get('config')}, now "
                             f"{run_id['config']}); drop --resume to start over")
        load_state(state_path, model, optimizer, scheduler)
        start, history = int(info["epoch"]), list(info["history"])
        log(f"resuming after epoch {start} from {state_path}")
    elif resume:
        log(f"no training state at {state_path}: starting at epoch 1")
    return optimizer, scheduler, run_id, start, history
