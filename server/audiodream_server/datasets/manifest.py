"""The `manifest.json` every data set carries: how it was made, so it can be made again.

Model cards copy it (as their data recipe), so a trained model always says
which command, tool versions, classes and seed produced its training data.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

MANIFEST = "manifest.json"


def python_versions(packages: tuple[str, ...] = ("numpy", "scipy", "soundfile")) -> dict[str, str]:
    """Installed versions of the Python packages that touched the audio."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_manifest(out_dir: Path, *, dataset: str, command: str, sample_rate: int,
                   clip_samples: int, seed: int, classes: dict[str, int],
                   versions: dict[str, str], recipe: dict) -> dict:
    """Writes `out_dir/manifest.json` and returns its content.

    Args:
        out_dir: the data set's root folder.
        dataset: kind of data set ("gm-instruments", "speech").
        command: the command line that built it.
        sample_rate: Hz of every clip.
        clip_samples: samples per clip.
        seed: the seed all random choices derive from.
        classes: class folder name -> number of clips written.
        versions: tool and package versions.
        recipe: builder-specific settings (pitches, voices, ...).
    """
    manifest = {
        "dataset": dataset,
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sample_rate": sample_rate,
        "clip_samples": clip_samples,
        "format": "mono WAV, 16-bit PCM, one folder per class",
        "seed": seed,
        "num_classes": len(classes),
        "num_clips": sum(classes.values()),
        "classes": classes,
        "versions": {**versions, **python_versions()},
        "recipe": recipe,
    }
    path = Path(out_dir) / MANIFEST
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(data_dir: Path) -> dict | None:
    """The manifest of a data set, or None if it has none (a user's own folder)."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())
