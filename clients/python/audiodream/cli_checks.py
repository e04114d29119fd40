"""What the command line checks before any work starts, so that it fails in one line.

A dream that runs for minutes and then cannot write its result wastes the user's
time and ends in a traceback. These checks run first and raise `UsageError` with what was
wrong and what to do.

>>> output_format("out.FLAC"), output_format("take 2.mp3")
('FLAC', 'MP3')
>>> output_format("out.xyz")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
audiodream.cli_checks.UsageError: cannot write out.xyz: unknown extension '.xyz'; use .wav, ...
"""

from __future__ import annotations

import os

import soundfile as sf

# File extension -> the container soundfile writes (libsndfile 1.1+ writes MP3).
WRITE_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "mp3": "MP3",
                 "aiff": "AIFF", "aif": "AIFF", "caf": "CAF", "w64": "W64", "rf64": "RF64",
                 "au": "AU"}


class UsageError(Exception):
    """A command line that cannot work; the message says what to do instead."""


def output_format(path: str) -> str:
    """The container the output name asks for; refuses names it cannot honour."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    container = WRITE_FORMATS.get(ext)
    if container is None or container not in sf.available_formats():
        known = ", ".join("." + e for e in WRITE_FORMATS if WRITE_FORMATS[e]
                          in sf.available_formats())
        what = f"unknown extension '.{ext}'" if ext else "no extension"
        raise UsageError(f"cannot write {path}: {what}; use {known}")
    return container


def check_output(path: str) -> None:
    """The output can be written: a known format, a folder that exists and lets us write."""
    output_format(path)
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: it is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"cannot write {path}: the folder {folder} does not exist")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise UsageError(f"cannot write {path}: the file is read-only")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: no permission to create files in {folder}")


def check_input(path: str) -> None:
    """The input is a sound file we can read."""
    if not os.path.exists(path):
        raise UsageError(f"cannot read {path}: no such file")
    try:
        sf.info(path)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise UsageError(f"cannot read {path} as a sound file ({exc}); "
                         "use WAV, FLAC, OGG, MP3 or AIFF") from None


HINTS = {
    "UNAVAILABLE": "no server answers at {address}: start one with 'audiodream serve', point "
                   "--server (or $AUDIODREAM_SERVER) at one, or add --local",
    "DEADLINE_EXCEEDED": "the server took longer than the deadline for this much work; "
                         "is it overloaded? try fewer iterations or shorter audio",
    "UNAUTHENTICATED": "give the server's token with --token or $AUDIODREAM_TOKEN",
}


def server_hint(exc, address: str) -> str:
    """A server error as one line, with what to do for the common ones."""
    message = (exc.message or "").strip().splitlines()
    line = f"{exc.code}: {message[0] if message else 'no details'}"
    hint = HINTS.get(exc.code)
    return f"{line} ({hint.format(address=address)})" if hint else line
