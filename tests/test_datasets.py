"""`audiodream data`: tiny real data sets from fluidsynth and espeak-ng, the MIDI
writer, silence trimming and sentence splitting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodream_server.datasets import cli
from audiodream_server.datasets.clips import trimmed_clip
from audiodream_server.datasets.midi import MidiTrack
from audiodream_server.datasets.speech import split_sentences
from audiodream_server.datasets.tools import DEFAULT_SOUNDFONT

RATE = 44100
HAVE_FLUIDSYNTH = shutil.which("fluidsynth") is not None and Path(DEFAULT_SOUNDFONT).is_file()
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_fluidsynth = pytest.mark.skipif(
    not HAVE_FLUIDSYNTH, reason="needs Debian packages fluidsynth and fluid-soundfont-gm")
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="needs Debian package espeak-ng")


def check_clips(root: Path, classes: int, clips: int) -> dict:
    """Asserts the folder-per-class layout and clip format; returns the manifest."""
    manifest = json.loads((root / "manifest.json").read_text())
    folders = sorted(d for d in root.iterdir() if d.is_dir())
    assert len(folders) == classes == manifest["num_classes"]
    assert sorted(manifest["classes"]) == [d.name for d in folders]
    for folder in folders:
        files = sorted(folder.glob("*.wav"))
        assert len(files) == clips == manifest["classes"][folder.name]
        for path in files:
            info = sf.info(str(path))
            assert (info.samplerate, info.channels, info.frames) == (RATE, 1, RATE)
            assert info.subtype == "PCM_16"
            audio, _ = sf.read(str(path))
            peak = np.abs(audio).max()
            assert peak > 0.001
            # Leading silence trimmed: sound within the first 10 ms.
            assert np.abs(audio[:441]).max() > peak * 10 ** (-50 / 20) - 1 / 32768
    assert manifest["sample_rate"] == RATE and manifest["clip_samples"] == RATE
    return manifest


@needs_fluidsynth
def test_gm_instruments_builds_a_tiny_set(tmp_path):
    out = tmp_path / "gm"
    assert cli.main(["gm-instruments", str(out), "--classes", "3", "--clips", "4",
                     "--seed", "7", "--quiet"]) == 0
    manifest = check_clips(out, 3, 4)
    assert manifest["command"] == (f"audiodream data gm-instruments {out} --classes 3 "
                                   "--clips 4 --seed 7 --quiet")
    assert manifest["seed"] == 7 and manifest["recipe"]["programs"] == [0, 64, 127]
    assert {"fluidsynth", "fluid-soundfont-gm", "numpy"} <= set(manifest["versions"])
    assert sorted(manifest["classes"]) == ["000_acoustic_grand_piano", "064_soprano_sax",
                                           "127_gunshot"]


@needs_fluidsynth
def test_gm_instruments_is_reproducible(tmp_path):
    for name in ("a", "b"):
        assert cli.main(["gm-instruments", str(tmp_path / name), "--classes", "2",
                         "--clips", "2", "--quiet"]) == 0
    first = sorted((tmp_path / "a").rglob("*.wav"))
    assert len(first) == 4
    for path in first:
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == twin.read_bytes()


@needs_espeak
def test_speech_builds_a_tiny_set(tmp_path):
    out = tmp_path / "speech"
    assert cli.main(["speech", str(out), "--classes", "3", "--clips", "3",
                     "--languages", "en-us,de", "--quiet"]) == 0
    manifest = check_clips(out, 3, 3)
    assert manifest["recipe"]["speakers"][:2] == [
        f"en-us+{manifest['recipe']['speakers'][0].split('+')[1]}",
        f"de+{manifest['recipe']['speakers'][0].split('+')[1]}"]
    assert "espeak-ng" in manifest["versions"]


@needs_espeak
def test_speech_clips_differ_between_speakers(tmp_path):
    out = tmp_path / "speech"
    assert cli.main(["speech", str(out), "--classes", "2", "--clips", "1", "--quiet"]) == 0
    a, b = (sf.read(str(p))[0] for p in sorted(out.glob("*/0000.wav")))
    assert not np.allclose(a, b, atol=1e-3)


def test_refuses_a_non_empty_output_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert cli.main(["gm-instruments", str(tmp_path), "--quiet"]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_missing_soundfont_names_the_package(tmp_path, capsys):
    code = cli.main(["gm-instruments", str(tmp_path / "gm"), "--classes", "2", "--clips", "1",
                     "--soundfont", str(tmp_path / "absent.sf2"), "--quiet"])
    assert code == 3
    err = capsys.readouterr().err
    assert "fluid" in err and "apt-get install" in err


@pytest.mark.parametrize("kind, package", [("gm-instruments", "fluidsynth"),
                                           ("speech", "espeak-ng")])
def test_missing_program_names_the_package(tmp_path, capsys, monkeypatch, kind, package):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    assert cli.main([kind, str(tmp_path / "out"), "--classes", "2", "--clips", "1",
                     "--quiet"]) == 3
    assert f"install the Debian package '{package}'" in capsys.readouterr().err


def test_usage_errors_return_a_code_instead_of_exiting(capsys):
    assert cli.main(["bogus-kind", "out"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0


def test_bad_sizes_are_refused(tmp_path, capsys):
    assert cli.main(["gm-instruments", str(tmp_path / "a"), "--classes", "129"]) == 2
    assert "1..128" in capsys.readouterr().err
    assert cli.main(["speech", str(tmp_path / "b"), "--clips", "0"]) == 2
    assert "clips per class" in capsys.readouterr().err


def test_midi_file_has_notes_in_millisecond_ticks():
    track = MidiTrack()
    track.program(0, 40)
    track.note(0, 69, 100, start_ms=1000, length_ms=300)
    track.silence(0, 1300)
    data = track.to_bytes()
    assert data[:4] == b"MThd" and int.from_bytes(data[12:14], "big") == 500
    body = data[22:]
    # tempo, program change, then note-on after 1000 ticks (VLQ 0x87 0x68)
    assert body[:7] == b"\x00\xff\x51\x03\x07\xa1\x20"
    assert body[7:10] == b"\x00\xc0\x28"
    assert body[10:15] == b"\x87\x68\x90\x45\x64"
    assert body[-4:] == b"\x00\xff\x2f\x00"
    with pytest.raises(ValueError, match="pitch"):
        track.note(0, 128, 100, 0, 10)


def test_trimmed_clip_starts_at_the_sound_and_pads_with_silence():
    audio = np.concatenate([np.zeros(500), np.ones(300), np.zeros(200)])
    clip = trimmed_clip(audio, 400)
    assert clip[:300].tolist() == [1.0] * 300 and clip[300:].tolist() == [0.0] * 100
    assert trimmed_clip(np.zeros(100), 50) is None
    # An offset moves into a long sound but never past its end.
    ramp = np.arange(1, 101, dtype=float)
    assert trimmed_clip(ramp, 10, offset=95)[0] == 91.0


def test_split_sentences_cuts_at_long_silences_only():
    burst = 0.5 + 0.4 * np.sin(np.arange(RATE // 2) * 0.3)  # never silent inside
    short_gap, long_gap = np.zeros(RATE // 20), np.zeros(RATE // 2)
    audio = np.concatenate([burst, short_gap, burst, long_gap, burst, long_gap])
    parts = split_sentences(audio, RATE)
    assert [p.size for p in parts] == [2 * burst.size + short_gap.size, burst.size]
