"""Shared by the atlas and plot tests: a spoken file, and a small atlas rendered by the CLI."""

from __future__ import annotations

import shutil
import subprocess

import soundfile as sf

from sounds import tone

# Two layers, two maps each, from noise and the sound: 12 dreams of 3 iterations.
SMALL_ATLAS = ["--model", "instruments-m2", "--layer", "conv1", "--layer", "conv4",
               "--maps", "2", "--iterations", "3", "--seconds", "1.5", "--quiet"]


def spoken_wav(path) -> str:
    """A real spoken sentence (espeak-ng), or a tone where espeak-ng is missing."""
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(path), "audio dreams of electric sheep"],
                       check=True, timeout=60)
    else:
        sf.write(path, tone(2.0, 22050), 22050, subtype="PCM_16")
    return str(path)


def render_atlas(address: str, sound: str | None, out_dir, *extra: str) -> int:
    """Runs `audiodream atlas` in-process against a real server; returns its exit code."""
    from audiodream.cli import main

    args = ["atlas", *([sound] if sound else []), "--out", str(out_dir), "--server", address]
    return main([*args, *SMALL_ATLAS, *extra])
