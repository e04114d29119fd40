"""`audiodream train DATA_DIR --arch A --out MODELS_DIR/NAME --epochs N`.

Trains a Bisig & Wegner model on a folder-per-class data set and writes
`NAME.safetensors` + `NAME.json` (the model card). `main` receives the
arguments after the word `train` and returns an exit code.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

# Keys of architectures.ARCHITECTURES, listed here so --help needs no torch.
ARCHES = ("model1", "model2", "melcnn", "autoencoder")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiodream train",
        description="Train a classifier (Bisig & Wegner Model1/Model2 on the waveform, or a "
                    "mel-spectrogram CNN) on a "
                    "folder-per-class data set of 1 s, 44.1 kHz clips, or the log-mel "
                    "autoencoder used for morphing (`--arch autoencoder`, any folder of "
                    "sub-folders of sounds).")
    parser.add_argument("data_dir", help="data set root: one sub-folder of audio files per class")
    parser.add_argument("--arch", required=True, choices=ARCHES, help="architecture")
    parser.add_argument("--out", required=True, metavar="MODELS_DIR/NAME",
                        help="output prefix: writes NAME.safetensors and NAME.json")
    parser.add_argument("--epochs", type=int, required=True, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=128, help="clips per step [128]")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate [1e-3]")
    parser.add_argument("--step-size", type=int, default=0,
                        help="epochs between x0.1 learning-rate decays [half the epochs]")
    parser.add_argument("--gamma", type=float, default=0.1, help="decay factor [0.1]")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, split, shuffling [0]")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of every class held out [0.2]")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads [0 = the cores this process may use]")
    parser.add_argument("--state", metavar="PATH",
                        help="training state file, saved every epoch [OUT.state.safetensors]")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the state file if it exists")
    parser.add_argument("--description", default="", help="one line for the model card")
    parser.add_argument("--confusions", type=int, default=10,
                        help="most confused class pairs to print [10]")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def main(argv: list[str]) -> int:
    try:
        args = get_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; we return
        return int(exc.code or 0)
    # Before torch starts its OpenMP pool: spinning threads collapse on busy machines.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from .autoencoder import train_autoencoder
    from .card import autoencoder_card, model_card
    from .data import load_clips
    from .trainer import TrainConfig, train
    from ..models import architectures
    from ..models.checkpoint import save_model

    torch.set_num_threads(args.threads or available_cores())
    out = Path(args.out)
    if not out.name or out.suffix in (".json", ".safetensors"):
        print("audiodream train: --out is a prefix like models/NAME (no suffix)", file=sys.stderr)
        return 2
    state_path = Path(args.state) if args.state else out.with_name(out.name + ".state.safetensors")
    config = TrainConfig(arch=args.arch, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, step_size=args.step_size, gamma=args.gamma, seed=args.seed,
                         test_fraction=args.test_fraction)
    # The autoencoder learns to reconstruct, not classes: its own trainer, card and summary.
    autoencoder = args.arch == "autoencoder"
    try:
        config.validate()
        clips = load_clips(Path(args.data_dir), architectures.SAMPLE_RATE,
                           architectures.WINDOW)
        classes = "" if autoencoder else f" in {len(clips.classes)} classes"
        print(f"{len(clips)} clips{classes} from {args.data_dir}; "
              f"{torch.get_num_threads()} torch threads")
        result = (train_autoencoder if autoencoder else train)(
            config, clips, state_path, resume=args.resume, show_progress=not args.quiet)
    except (ValueError, OSError) as exc:
        print(f"audiodream train: {exc}", file=sys.stderr)
        return 2
    about = dict(name=out.name, data_dir=Path(args.data_dir),
                 command="audiodream train " + shlex.join(argv), description=args.description)
    if autoencoder:
        card = autoencoder_card(result, config, **about)
    else:
        card = model_card(result, config, confusions=args.confusions, **about)
    weights, card_path = save_model(result.model, card, out)
    if autoencoder:
        print(f"held-out reconstruction error {result.test_mse:.3f} (log-mel mse; "
              f"{result.db(result.test_mse):.2f} dB rms) on {result.test_clips} clips; "
              f"training set {result.db(result.train_mse):.2f} dB; the training set's mean "
              f"spectrogram scores {result.db(result.baseline_mse):.2f} dB")
    else:
        _print_accuracy(result, args.confusions)
    print(f"wrote {weights} and {card_path}")
    return 0


def _print_accuracy(result, confusions: int) -> None:
    from .report import most_confused

    print(f"held-out accuracy {result.test_accuracy:.3f} on {result.test_clips} clips "
          f"(chance {1 / len(result.classes):.3f}); train accuracy {result.train_accuracy:.3f}")
    pairs = most_confused(result.test_matrix, result.classes, confusions)
    if pairs:
        print("most confused (true -> predicted: count of held-out clips of the true class):")
        for pair in pairs:
            print(f"  {pair}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
