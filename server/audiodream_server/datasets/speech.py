"""The "speech" data set: espeak-ng speakers saying generated sentences.

Stands in for the Speech data set of Bisig & Wegner (seed 003 §3.1, speaker
classes): a class is one espeak-ng speaker, a language voice combined with a
voice variant (`en-us+adam`), so classes differ in pitch, formants, timbre and
accent. The sentences are strings of pseudo-words built from syllables, so
every language voice can pronounce them and no text corpus is needed.

One espeak-ng call per speaker speaks all of that speaker's sentences,
separated by SSML breaks; the result is split at those long silences (or, for
variants whose pauses are not silent, each sentence is spoken alone),
resampled to 44.1 kHz, and one 1 s clip is taken from each sentence, starting
at the first sound after a seeded offset.
"""

from __future__ import annotations

import re
from math import gcd
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .clips import audible_span, trimmed_clip, write_clip
from .tools import package_version, require_program, run

SAMPLE_RATE = 44100
CLIP_SAMPLES = 44100
BREAK_MS = 800  # pause between sentences: far longer than any pause inside one
SPLIT_MS = 400  # a silence this long separates two sentences
DEFAULT_LANGUAGES = ("en-us", "fr-fr")

_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "st", "pl", "tr", "sh", "ch", "gr", "kl")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ee")
_CODAS = ("", "", "", "n", "s", "r", "l", "m", "t")


@dataclass(frozen=True)
class SpeechSettings:
    """What to speak.

    Args:
        classes: number of speakers (language x variant pairs).
        clips_per_class: sentences (and clips) per speaker.
        seed: seeds the sentences and clip offsets.
        languages: espeak-ng language voices combined with every variant.
        words: pseudo-words per sentence, (min, max) inclusive.
    """

    classes: int = 120
    clips_per_class: int = 40
    seed: int = 0
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    words: tuple[int, int] = (5, 9)

    def validate(self) -> None:
        if self.classes < 1:
            raise ValueError("number of classes must be >= 1")
        if self.clips_per_class < 1:
            raise ValueError("clips per class must be >= 1")
        if not self.languages:
            raise ValueError("at least one language voice is needed")
        if not 1 <= self.words[0] <= self.words[1]:
            raise ValueError("words per sentence must satisfy 1 <= min <= max")


def espeak_variants(espeak: str) -> list[str]:
    """Names of the installed espeak-ng voice variants, in espeak-ng's listing order."""
    done = subprocess.run([espeak, "--voices=variant"], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"espeak-ng --voices=variant failed: {done.stderr.strip()}")
    return re.findall(r"!v/(\S+)", done.stdout)


def speakers(languages: tuple[str, ...], variants: list[str], count: int) -> list[str]:
    """The first `count` speakers, variant-major so a small set still spans languages.

    >>> speakers(("en-us", "de"), ["adam", "f1"], 3)
    ['en-us+adam', 'de+adam', 'en-us+f1']
    """
    pairs = [f"{language}+{variant}" for variant in variants for language in languages]
    if count > len(pairs):
        raise ValueError(f"only {len(pairs)} speakers available ({len(languages)} languages x "
                         f"{len(variants)} variants); asked for {count}")
    return pairs[:count]


def sentence(rng: np.random.Generator, words: tuple[int, int]) -> str:
    """A sentence of pseudo-words of one to three syllables each."""
    out = []
    for _ in range(int(rng.integers(words[0], words[1] + 1))):
        syllables = int(rng.integers(1, 4))
        out.append("".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                           for _ in range(syllables)))
    return " ".join(out)


def split_sentences(audio: np.ndarray, rate: int) -> list[np.ndarray]:
    """Cuts speech `[T]` at silences of at least `SPLIT_MS`; drops fragments under 0.2 s."""
    loud = np.abs(audio) > 1e-4 * max(float(np.max(np.abs(audio))), 1e-12)
    min_gap = rate * SPLIT_MS // 1000
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    # Runs of loud samples, then merge runs separated by less than min_gap.
    starts = [0] if loud[0] else []
    stops = []
    for e in edges:
        (starts if not loud[e] else stops).append(int(e) + 1)
    if loud[-1]:
        stops.append(audio.size)
    merged: list[list[int]] = []
    for start, stop in zip(starts, stops, strict=True):
        if merged and start - merged[-1][1] < min_gap:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    return [audio[a:b] for a, b in merged if b - a >= rate // 5]


def _espeak_wav(espeak: str, speaker: str, ssml: str, workdir: Path) -> np.ndarray:
    """Speaks SSML text; returns `[T]` float64 at 44.1 kHz."""
    wav = workdir / "speech.wav"
    run([espeak, "-m", "-v", speaker, "-w", str(wav), ssml])
    audio, rate = sf.read(str(wav), dtype="float64", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE:
        # espeak-ng speaks at 22.05 kHz; 44.1 kHz is exactly twice that.
        g = gcd(SAMPLE_RATE, rate)
        audio = resample_poly(audio, SAMPLE_RATE // g, rate // g)
    return audio


def speak(espeak: str, speaker: str, sentences: list[str], workdir: Path) -> list[np.ndarray]:
    """Each of `sentences` spoken by `speaker`, at 44.1 kHz, one array per sentence.

    All sentences go through one espeak-ng call and are split at the breaks.
    Some variants fill pauses with breath noise or echo, so the split can miss;
    then every sentence is spoken on its own (slower, always aligned).
    """
    pause = f'<break time="{BREAK_MS}ms"/>'
    text = "<speak>" + pause.join(s + "." for s in sentences) + "</speak>"
    parts = split_sentences(_espeak_wav(espeak, speaker, text, workdir), SAMPLE_RATE)
    if len(parts) == len(sentences):
        return parts
    return [_espeak_wav(espeak, speaker, f"<speak>{s}.</speak>", workdir) for s in sentences]


def build(out_dir: Path, settings: SpeechSettings,
          progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, int], dict, dict]:
    """Speaks the data set into `out_dir/<speaker>/<k>.wav`.

    Returns:
        (class name -> clips written, tool versions, recipe for the manifest).
    Raises:
        MissingTool: espeak-ng is not installed.
    """
    settings.validate()
    espeak = require_program("espeak-ng", "espeak-ng")
    chosen = speakers(settings.languages, espeak_variants(espeak), settings.classes)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="speech-render-") as tmp:
        for done, speaker in enumerate(chosen):
            rng = np.random.default_rng([settings.seed, done])
            texts = [sentence(rng, settings.words) for _ in range(settings.clips_per_class)]
            written = 0
            for part in speak(espeak, speaker, texts, Path(tmp)):
                span = audible_span(part)
                if span is None:
                    continue
                spare = max(0, span[1] - span[0] - CLIP_SAMPLES)
                start = span[0] + int(rng.integers(0, spare + 1))
                # Trimmed again from the chosen start, so that a clip begins with
                # sound rather than inside a pause between two words.
                clip = trimmed_clip(part[start:], CLIP_SAMPLES)
                write_clip(Path(out_dir) / speaker.replace("+", "_") / f"{written:04d}.wav",
                           clip, SAMPLE_RATE)
                written += 1
            counts[speaker.replace("+", "_")] = written
            if progress:
                progress(done + 1, len(chosen))
    recipe = {"speakers": chosen, "clips_per_class": settings.clips_per_class,
              "languages": list(settings.languages), "words_per_sentence": list(settings.words),
              "text": "pseudo-words from syllables, seeded", "break_ms": BREAK_MS,
              "espeak_rate_hz": 22050, "resampler": "scipy.signal.resample_poly"}
    versions = {"espeak-ng": package_version("espeak-ng")}
    return counts, versions, recipe
