"""Training data: a folder-per-class data set loaded into memory, and its split.

Layout: `DATA_DIR/<class>/<clip>.wav` (any format soundfile reads), classes in
sorted folder order. Every clip becomes exactly one model window: mono, at the
model's rate (resampled if needed), cut or zero-padded to its length, and
peak-normalised (Bisig & Wegner train on normalised waveforms, seed 003 §3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aif", ".aiff")


@dataclass
class ClipSet:
    """Clips in memory.

    Attributes:
        audio: `[N, T]` float32, each clip's peak 1 (or all zeros).
        labels: `[N]` int64 class indices.
        classes: class names, index = label.
        groups: `[N]` int64 source-file index of each clip (None = one file each),
            so the clips of one recording stay on one side of the split.
    """

    audio: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    groups: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.numel())


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """Scales `[..., T]` so each clip's peak is 1; silent clips stay zero.

    >>> peak_normalise(np.array([[0.0, -0.5, 0.25], [0.0, 0.0, 0.0]])).tolist()
    [[0.0, -1.0, 0.5], [0.0, 0.0, 0.0]]
    """
    peak = np.max(np.abs(audio), axis=-1, keepdims=True)
    return np.where(peak > 0, audio / np.where(peak > 0, peak, 1.0), 0.0)


# A segment quieter than this, relative to the loudest part of its file, is silence.
SILENT_DB = -40.0


def read_segments(path: Path, sample_rate: int, length: int, most: int = 32) -> list[np.ndarray]:
    """A file cut into consecutive clips of `length` samples (mono, at `sample_rate`).

    Long recordings give several clips (up to `most`); silent stretches are
    skipped; a file shorter than one clip is zero-padded. Each clip is
    peak-normalised. Always returns at least one clip.
    """
    audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != sample_rate:
        g = gcd(sample_rate, rate)
        audio = resample_poly(audio, sample_rate // g, rate // g)
    count = max(1, audio.size // length)
    pieces = [audio[i * length:(i + 1) * length] for i in range(count)]
    loudest = max(float(np.sqrt(np.mean(p ** 2))) if p.size else 0.0 for p in pieces)
    floor = loudest * 10 ** (SILENT_DB / 20)
    clips = []
    for piece in pieces:
        if len(clips) == most:
            break
        if piece.size and float(np.sqrt(np.mean(piece ** 2))) < floor and clips:
            continue
        clip = np.zeros(length)
        clip[:piece.size] = piece
        clips.append(peak_normalise(clip).astype(np.float32))
    return clips


def class_folders(data_dir: Path) -> list[Path]:
    """Sub-folders holding at least one audio file, sorted by name."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data set folder {data_dir} not found")
    folders = [d for d in sorted(data_dir.iterdir())
               if d.is_dir() and any(f.suffix.lower() in AUDIO_SUFFIXES for f in d.iterdir())]
    if len(folders) < 2:
        raise ValueError(f"{data_dir}: need at least 2 class folders with audio files, "
                         f"found {len(folders)}")
    return folders


def load_clips(data_dir: Path, sample_rate: int, length: int) -> ClipSet:
    """Reads every clip of a folder-per-class data set (long files give several clips).

    Args:
        data_dir: data set root.
        sample_rate: model rate (Hz); other rates are resampled.
        length: samples per clip (the model window).
    """
    folders = class_folders(data_dir)
    audio, labels, groups = [], [], []
    files = 0
    for label, folder in enumerate(folders):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in AUDIO_SUFFIXES:
                clips = read_segments(path, sample_rate, length)
                audio.extend(clips)
                labels.extend([label] * len(clips))
                groups.extend([files] * len(clips))
                files += 1
    return ClipSet(torch.from_numpy(np.stack(audio)), torch.tensor(labels, dtype=torch.int64),
                   [f.name for f in folders], torch.tensor(groups, dtype=torch.int64))


def stratified_split(labels: torch.Tensor, test_fraction: float, seed: int,
                     groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded train/test indices with `test_fraction` of every class held out.

    Splitting per class keeps every class in both parts even when it has few
    clips (a plain 80/20 split of the whole set can leave a class untested).
    Each class with at least 2 files gives at least one to each side. With
    `groups` (source file per clip), whole files go to one side: clips cut from
    one recording would otherwise be tested on their own neighbours.

    Returns:
        (train indices, test indices), both sorted int64.

    >>> tr, te = stratified_split(torch.tensor([0] * 10 + [1] * 5), 0.2, seed=0)
    >>> len(tr), len(te)
    (12, 3)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test fraction must be between 0 and 1, got {test_fraction}")
    gen = torch.Generator().manual_seed(seed)
    if groups is None:
        groups = torch.arange(labels.numel())
    train, test = [], []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        files = torch.unique(groups[members])
        files = files[torch.randperm(files.numel(), generator=gen)]
        held = int(round(files.numel() * test_fraction))
        if files.numel() >= 2:
            held = min(max(held, 1), files.numel() - 1)
        tested = torch.isin(groups[members], files[:held])
        test.append(members[tested])
        train.append(members[~tested])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(test)).values
