"""Process-wide torch settings: threads and device, chosen once at start-up.

PyTorch's OpenMP threads spin while waiting; on a small shared machine that
turns a 0.4 s step into 3 s. OMP_WAIT_POLICY=PASSIVE must be in the environment
before torch loads its OpenMP runtime, so `configure_environment` runs first.
"""

from __future__ import annotations

import os


def configure_environment() -> None:
    """Call before importing torch."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_threads(threads: int) -> int:
    """Sets torch's intra-op threads (0 = one per core); returns the number used."""
    import torch

    threads = threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def pick_device(name: str = "auto"):
    """"auto" -> the first CUDA device when present, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available here")
    return device
