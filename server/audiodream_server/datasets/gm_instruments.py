"""The "gm-instruments" data set: General MIDI instruments rendered by FluidSynth.

Stands in for the Instruments data set of Bisig & Wegner (seed 003 §3.1):
one class per GM program, each clip one note of that program at a random pitch
and velocity, rendered from the sampled instruments of the FluidR3 GM SoundFont.

Rendering is batched: one MIDI file per program holds all its notes, one per
fixed time slot, and one `fluidsynth` call renders it; the result is cut into
slots. Each note is held for `NOTE_MS`, then "all sound off" ends it (release
tail included) so nothing leaks into the next slot. Reverb and chorus are off
so a clip is the dry instrument.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from .clips import to_mono, trimmed_clip, write_clip
from .gm_programs import class_name
from .midi import MidiTrack
from .tools import DEFAULT_SOUNDFONT, package_version, require_file, require_program, run

NOTE_MS = 1500  # held long enough that 1 s remains after a slow attack
SLOT_MS = 1600  # note + 100 ms of silence after "all sound off"
SAMPLE_RATE = 44100
CLIP_SAMPLES = 44100


@dataclass(frozen=True)
class GmSettings:
    """What to render.

    Args:
        programs: GM program numbers (0..127), one class each.
        clips_per_class: notes rendered per program.
        seed: seeds the pitch and velocity of every note.
        low_pitch, high_pitch: MIDI note range, inclusive (36 = C2, 84 = C6).
        velocities: MIDI velocities drawn from (1..127).
        soundfont: path of the .sf2 file.
        gain: FluidSynth master gain (its default 0.2 leaves soft notes very quiet).
    """

    programs: tuple[int, ...]
    clips_per_class: int = 40
    seed: int = 0
    low_pitch: int = 36
    high_pitch: int = 84
    velocities: tuple[int, ...] = (40, 64, 90, 115)
    soundfont: str = DEFAULT_SOUNDFONT
    gain: float = 0.5

    def validate(self) -> None:
        if not self.programs:
            raise ValueError("at least one program is needed")
        if any(not 0 <= p <= 127 for p in self.programs):
            raise ValueError("GM programs are 0..127")
        if len(set(self.programs)) != len(self.programs):
            raise ValueError("programs must be distinct")
        if self.clips_per_class < 1:
            raise ValueError("clips per class must be >= 1")
        if not 0 <= self.low_pitch <= self.high_pitch <= 127:
            raise ValueError("pitch range must satisfy 0 <= low <= high <= 127")
        if not self.velocities or any(not 1 <= v <= 127 for v in self.velocities):
            raise ValueError("velocities must be in 1..127")


def spread_programs(count: int) -> tuple[int, ...]:
    """`count` GM programs spread evenly over 0..127, so small sets stay varied.

    >>> spread_programs(3), len(spread_programs(128))
    ((0, 64, 127), 128)
    """
    if not 1 <= count <= 128:
        raise ValueError(f"number of classes must be 1..128, got {count}")
    return tuple(int(p) for p in np.round(np.linspace(0, 127, count)).astype(int))


SPARE_NOTES = 2.0
"""Notes planned per clip wanted: some programs are silent outside their key range
(the contrabass below its lowest sample, for instance); the spares replace those."""


def note_plan(settings: GmSettings, program: int) -> list[tuple[int, int]]:
    """(pitch, velocity) of the notes to render for a program, spares included.

    A function of seed and program only, so adding programs never changes others.
    """
    rng = np.random.default_rng([settings.seed, program])
    count = int(np.ceil(settings.clips_per_class * SPARE_NOTES))
    pitches = rng.integers(settings.low_pitch, settings.high_pitch + 1, count)
    velocities = rng.choice(np.array(settings.velocities), count)
    return [(int(p), int(v)) for p, v in zip(pitches, velocities, strict=True)]


def render_program(program: int, notes: list[tuple[int, int]], soundfont: Path,
                   gain: float, workdir: Path) -> list[np.ndarray | None]:
    """Renders `notes` of one program in one FluidSynth call; one trimmed clip per note.

    Returns:
        per note a `[CLIP_SAMPLES]` float64 clip, or None if the note was silent.
    """
    fluidsynth = require_program("fluidsynth", "fluidsynth")
    track = MidiTrack()
    track.program(0, program)
    for k, (pitch, velocity) in enumerate(notes):
        track.note(0, pitch, velocity, start_ms=k * SLOT_MS, length_ms=NOTE_MS)
        track.silence(0, k * SLOT_MS + NOTE_MS)
    midi_path = workdir / f"program{program:03d}.mid"
    wav_path = workdir / f"program{program:03d}.wav"
    track.write(midi_path)
    run([fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain),
         "-r", str(SAMPLE_RATE), "-O", "float", "-T", "wav", "-F", str(wav_path),
         str(soundfont), str(midi_path)])
    audio, rate = sf.read(str(wav_path), dtype="float64", always_2d=True)
    wav_path.unlink()
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz, asked for {SAMPLE_RATE} Hz")
    audio = to_mono(audio)
    slot = SAMPLE_RATE * SLOT_MS // 1000
    return [trimmed_clip(audio[k * slot:(k + 1) * slot], CLIP_SAMPLES)
            for k in range(len(notes))]


def build(out_dir: Path, settings: GmSettings,
          progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, int], dict]:
    """Renders the data set into `out_dir/<class>/<k>.wav`.

    Args:
        out_dir: data set root (created).
        settings: what to render.
        progress: called with (programs done, programs total).
    Returns:
        (class name -> clips written, tool versions).
    Raises:
        MissingTool: fluidsynth or the SoundFont is not installed.
    """
    settings.validate()
    require_program("fluidsynth", "fluidsynth")
    soundfont = require_file(settings.soundfont, "fluid-soundfont-gm")
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="gm-render-") as tmp:
        for done, program in enumerate(settings.programs):
            notes = note_plan(settings, program)
            clips = render_program(program, notes, soundfont, settings.gain, Path(tmp))
            name = class_name(program)
            written = 0
            for (pitch, velocity), clip in zip(notes, clips, strict=False):
                if clip is None:  # a note outside the instrument's key range
                    continue
                if written == settings.clips_per_class:
                    break
                write_clip(Path(out_dir) / name / f"{written:04d}_p{pitch}_v{velocity}.wav",
                           clip, SAMPLE_RATE)
                written += 1
            counts[name] = written
            if progress:
                progress(done + 1, len(settings.programs))
    versions = {"fluidsynth": package_version("fluidsynth"),
                "fluid-soundfont-gm": package_version("fluid-soundfont-gm"),
                "soundfont": soundfont.name}
    return counts, versions
