"""`audiodream data KIND OUT_DIR`: builds a training data set from installed tools.

Kinds: `gm-instruments` (FluidSynth + the GM SoundFont) and `speech` (espeak-ng).
`main` receives the arguments after the word `data` and returns an exit code.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tqdm import tqdm

from .manifest import write_manifest
from .tools import DEFAULT_SOUNDFONT, MissingTool


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiodream data",
        description="Build a folder-per-class data set of 1 s, 44.1 kHz clips.")
    sub = parser.add_subparsers(dest="kind", required=True)

    gm = sub.add_parser("gm-instruments", help="General MIDI instruments rendered by fluidsynth")
    gm.add_argument("out_dir", help="folder to create (must be empty or absent)")
    gm.add_argument("--classes", type=int, default=128,
                    help="number of GM programs, spread over 0..127 [128]")
    gm.add_argument("--clips", type=int, default=40, help="clips per class [40]")
    gm.add_argument("--seed", type=int, default=0, help="seed of pitches and velocities [0]")
    gm.add_argument("--low-pitch", type=int, default=36, help="lowest MIDI note [36]")
    gm.add_argument("--high-pitch", type=int, default=84, help="highest MIDI note [84]")
    gm.add_argument("--soundfont", default=DEFAULT_SOUNDFONT,
                    help="SoundFont file [the one of Debian's fluid-soundfont-gm]")

    speech = sub.add_parser("speech", help="espeak-ng voices x variants speaking sentences")
    speech.add_argument("out_dir", help="folder to create (must be empty or absent)")
    speech.add_argument("--classes", type=int, default=120, help="number of speakers [120]")
    speech.add_argument("--clips", type=int, default=40, help="clips per class [40]")
    speech.add_argument("--seed", type=int, default=0, help="seed of the sentences [0]")
    speech.add_argument("--languages", default="",
                        help="comma-separated espeak-ng voices to combine with variants "
                             "[a built-in list]")
    for p in (gm, speech):
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    try:
        args = get_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; we return
        return int(exc.code or 0)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        print(f"audiodream data: {out_dir} exists and is not an empty folder; "
              "choose a new one", file=sys.stderr)
        return 2
    command = "audiodream data " + shlex.join(argv)
    try:
        if args.kind == "gm-instruments":
            counts, versions, recipe, rate, samples = _gm(args, out_dir)
        else:
            counts, versions, recipe, rate, samples = _speech(args, out_dir)
    except MissingTool as exc:
        print(f"audiodream data: {exc}", file=sys.stderr)
        return 3
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"audiodream data: {exc}", file=sys.stderr)
        return 2
    manifest = write_manifest(out_dir, dataset=args.kind, command=command, sample_rate=rate,
                              clip_samples=samples, seed=args.seed, classes=counts,
                              versions=versions, recipe=recipe)
    if not args.quiet:
        print(f"{args.kind}: {manifest['num_clips']} clips in {manifest['num_classes']} "
              f"classes written to {out_dir}")
    return 0


def _progress(args, label: str):
    """A tqdm bar driven by the builders' (done, total) callbacks."""
    bar = tqdm(desc=label, unit="class", disable=args.quiet)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done == total:
            bar.close()

    return update


def _gm(args, out_dir: Path):
    from . import gm_instruments as gm

    settings = gm.GmSettings(programs=gm.spread_programs(args.classes),
                             clips_per_class=args.clips, seed=args.seed,
                             low_pitch=args.low_pitch, high_pitch=args.high_pitch,
                             soundfont=args.soundfont)
    counts, versions = gm.build(out_dir, settings, _progress(args, "rendering programs"))
    recipe = {"programs": list(settings.programs), "clips_per_class": settings.clips_per_class,
              "pitch_range": [settings.low_pitch, settings.high_pitch],
              "velocities": list(settings.velocities), "note_ms": gm.NOTE_MS,
              "fluidsynth_gain": settings.gain, "reverb": False, "chorus": False}
    return counts, versions, recipe, gm.SAMPLE_RATE, gm.CLIP_SAMPLES


def _speech(args, out_dir: Path):
    from . import speech

    languages = tuple(s.strip() for s in args.languages.split(",") if s.strip())
    settings = speech.SpeechSettings(classes=args.classes, clips_per_class=args.clips,
                                     seed=args.seed,
                                     languages=languages or speech.DEFAULT_LANGUAGES)
    counts, versions, recipe = speech.build(out_dir, settings,
                                            _progress(args, "speaking voices"))
    return counts, versions, recipe, speech.SAMPLE_RATE, speech.CLIP_SAMPLES


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
