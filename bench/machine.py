"""What every bench prints beside an absolute figure: the CPU and the load.

Machines of one kind differ several-fold in speed, so a number means little
without the processor that made it and how busy the machine was.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The processor's model name ("AMD EPYC ..."), from /proc/cpuinfo where there is one."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """CPU model, core count and architecture."""
    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}"


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    with contextlib.suppress(OSError):
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    return "load average unknown"
