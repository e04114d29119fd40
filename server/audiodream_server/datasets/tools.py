"""External programs and files the data set builders need, and how to get them.

The builders install nothing. When a program or file is missing they raise
`MissingTool`, whose message names the Debian package that provides it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
"""Where Debian's `fluid-soundfont-gm` puts the General MIDI SoundFont."""


class MissingTool(RuntimeError):
    """A program or data file is not installed; the message says which package has it."""


def require_program(name: str, package: str) -> str:
    """Absolute path of program `name`, or MissingTool naming its Debian `package`."""
    path = shutil.which(name)
    if path is None:
        raise MissingTool(f"{name} not found on PATH: install the Debian package {package!r} "
                          f"(apt-get install {package})")
    return path


def require_file(path: str | Path, package: str) -> Path:
    """`path` if it is a file, else MissingTool naming the Debian `package`."""
    path = Path(path)
    if not path.is_file():
        raise MissingTool(f"{path} not found: install the Debian package {package!r} "
                          f"(apt-get install {package}) or pass the file's path")
    return path


def package_version(package: str) -> str:
    """Installed version of a Debian package, or "unknown" off Debian."""
    if shutil.which("dpkg-query") is None:
        return "unknown"
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def run(command: list[str]) -> None:
    """Runs an external program; on failure raises RuntimeError with its stderr."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-500:]}")
