"""Resumable training state, saved every epoch without pickle.

Model weights and optimiser moments go into a safetensors file as tensors;
everything else (epoch, history, configuration, scheduler state, optimiser
hyper-parameters) goes into the file's string metadata as JSON. Loading
therefore never executes code from the file.

Key layout:
    model/<state-dict key>        model weights and BatchNorm statistics
    optim/<param index>/<name>    Adam's step, exp_avg, exp_avg_sq
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

FORMAT = "audiodream-train-state/1"


def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, info: dict) -> None:
    """Writes the state atomically (temporary file, then rename), so an
    interrupted write never leaves a broken checkpoint behind.

    Args:
        info: JSON-serialisable facts: epoch done, config, history.
    """
    tensors = {f"model/{k}": v.detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, moments in opt["state"].items():
        for name, value in moments.items():
            tensors[f"optim/{index}/{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    metadata = {"format": FORMAT, "info": json.dumps(info),
                "param_groups": json.dumps(opt["param_groups"]),
                "scheduler": json.dumps(scheduler.state_dict())}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, path)


def read_info(path: Path) -> dict:
    """The JSON facts of a state file (cheap: reads only the header)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a training state file ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a training state file (format "
                         f"{metadata.get('format')!r}, expected {FORMAT!r})")
    return json.loads(metadata["info"])


def load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict:
    """Restores model, optimiser and scheduler in place; returns the info dict."""
    info = read_info(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    model.load_state_dict({k[len("model/"):]: v for k, v in tensors.items()
                           if k.startswith("model/")}, strict=True)
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/")
            moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments,
                               "param_groups": json.loads(metadata["param_groups"])})
    scheduler.load_state_dict(json.loads(metadata["scheduler"]))
    return info
