"""The `audiodream` command: validates arguments and dispatches; no logic of its own."""

from __future__ import annotations

import argparse
import os
import sys

from .client import DEFAULT_ADDRESS, Client, ServerError
from .classes import class_targets
from .layers import parse_layer

SERVER_ENV = "AUDIODREAM_SERVER"
# Server-side tools: command -> (module with `main(argv)`, one line of help).
TOOLS = {"data": ("audiodream_server.datasets.cli",
                  "build a training data set (gm-instruments, speech)"),
         "train": ("audiodream_server.training.cli",
                   "train a model on a folder-per-class data set"),
         "convert-yamnet": ("audiodream_server.models.yamnet_convert",
                            "convert YAMNet's Keras weights for the server")}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiodream", description="Dream sound with neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--host", help="address to bind [127.0.0.1]")
    serve.add_argument("--port", type=int, help="port, 0 = any free one [50051]")
    serve.add_argument("--device", help="auto, cpu, cuda, cuda:N [auto]")
    serve.add_argument("--threads", type=int, help="torch threads, 0 = one per core [0]")
    serve.add_argument("--max-message-mb", type=int, help="gRPC message limit, MiB [64]")
    serve.add_argument("--max-seconds", type=float, help="longest audio per request [300]")
    serve.add_argument("--max-iterations", type=int, help="most iterations per request [1000]")
    serve.add_argument("--max-active", type=int, help="dreams computing at once [1]")
    serve.add_argument("--max-queued", type=int, help="dreams waiting for a slot [16]")
    serve.add_argument("--max-streams", type=int, help="live streams at once [16]")
    serve.add_argument("--token", help="require this bearer token; visible in ps, so prefer "
                       "$AUDIODREAM_TOKEN or --token-file")
    serve.add_argument("--token-file", help="read the token from this file's first line "
                       "[$AUDIODREAM_TOKEN_FILE]")
    serve.add_argument("--allow-torchscript", action="store_true", default=None,
                       help="load user TorchScript models: they are programs that run with "
                            "the server's rights, enable only for trusted files "
                            "[$AUDIODREAM_ALLOW_TORCHSCRIPT]")
    serve.add_argument("--metrics-port", type=int,
                       help="serve Prometheus metrics on this HTTP port, 0 = any free one "
                            "[$AUDIODREAM_METRICS_PORT; off]")
    serve.add_argument("--tls-cert", help="PEM certificate: serve TLS only")
    serve.add_argument("--tls-key", help="PEM private key for --tls-cert")
    serve.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                       help="extra folder of models (repeatable); the shipped models and "
                            "~/.local/share/audiodream/models are always read")

    for name, text in (("models", "list the server's models"),):
        p = sub.add_parser(name, help=text)
        _add_connection(p)
    classify = sub.add_parser("classify", help="what a model hears: top classes with scores")
    classify.add_argument("input", help="sound file (WAV, FLAC, OGG)")
    classify.add_argument("--model", default="", help="a model with classes [server default]")
    classify.add_argument("--top", type=int, default=5, help="how many classes [5]")
    classify.add_argument("--output", default="",
                          help="output to read [the model's; basic-pitch: note, onset, contour]")
    _add_connection(classify)
    layers = sub.add_parser("layers", help="list a model's dreamable layers")
    layers.add_argument("model", nargs="?", default="", help="model name [server default]")
    _add_connection(layers)

    # Server-side tools with parsers of their own: `main` hands them the rest of
    # the line (their own -h included); listed here for the overview.
    for name, text in TOOLS.items():
        sub.add_parser(name, help=text[1], add_help=False)

    dream = sub.add_parser("dream", help="dream a sound file")
    dream.add_argument("input", help="sound file to dream (WAV, FLAC, OGG)")
    dream.add_argument("output", help="where to write the dreamed sound")
    _add_connection(dream)
    _add_dream_options(dream)
    dream.add_argument("--local", action="store_true", help="run the engine here, no server")
    dream.add_argument("--device", default="auto", help="with --local: auto, cpu, cuda [auto]")
    dream.add_argument("--plot", metavar="PNG",
                       help="also draw the dream: spectrograms, change, loss, features "
                            "(PNG, SVG or PDF; needs audiodream[plot])")

    atlas = sub.add_parser("atlas", help="dream every layer and some of its feature maps; "
                                         "write a browsable page")
    atlas.add_argument("input", nargs="?", help="sound file to dream from, beside pink noise")
    atlas.add_argument("--out", required=True, metavar="DIR",
                       help="folder of the atlas (index.html); rerun to resume")
    atlas.add_argument("--maps", type=int, default=4,
                       help="feature maps per layer, spread over its range, 0 = whole "
                            "layers only [4]")
    atlas.add_argument("--seconds", type=float, default=4.0,
                       help="longest part of the input dreamed, s [4]")
    atlas.add_argument("--format", default="flac", help="flac, wav, ogg [flac]")
    atlas.add_argument("--no-noise", action="store_true", help="dream only from the input")
    _add_connection(atlas)
    _add_dream_options(atlas)
    atlas.add_argument("--local", action="store_true", help="run the engine here, no server")
    atlas.add_argument("--device", default="auto", help="with --local: auto, cpu, cuda [auto]")

    stream = sub.add_parser("stream", help="stream a sound file through StreamDream")
    stream.add_argument("input", help="sound file to stream")
    stream.add_argument("output", help="where to write the dreamed sound (latency removed)")
    _add_connection(stream)
    _add_dream_options(stream)
    stream.add_argument("--block", type=int, default=2048, help="frames per block [2048]")
    stream.add_argument("--mode", default="process", help="process or generate [process]")
    stream.add_argument("--delay", type=int, default=0, help="output delay, frames [one block]")
    stream.add_argument("--window", type=int, default=0,
                        help="context frames dreamed per block [0 = the model's window]")
    stream.add_argument("--realtime", action="store_true",
                        help="send blocks at the pace of the audio, as a live input")
    stream.add_argument("--reopen", action="store_true",
                        help="if the server shuts down or dies, go on on another of the "
                             "--server replicas (the output has one block of silence there)")
    return parser


def _add_dream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="model name [server default]")
    p.add_argument("--layer", action="append", default=[], metavar="NAME[:CH,..][@W]",
                   help="layer to amplify, repeatable, e.g. conv3:1,5@0.5")
    p.add_argument("--objective", help="activation, mean, class [activation]")
    p.add_argument("--class", dest="class_", metavar="NAME[@W],...",
                   help="dream toward these classes (tags, notes; a number = an index), "
                        "e.g. choir or 'techno,piano@0.5'; implies --objective class")
    p.add_argument("--notes", metavar="NOTE,...",
                   help="note models (basic-pitch): dream toward these notes or a chord, "
                        "e.g. C4,E4,G4 or 60,64,67; implies --objective class")
    p.add_argument("--negate", action="store_true", help="push away from the classes")
    p.add_argument("--exclusive", action="store_true",
                   help="also push away from every class not named (toward this chord, "
                        "away from the rest)")
    p.add_argument("--class-output", metavar="LAYER",
                   help="output the classes are read from [the model's; basic-pitch: note, "
                        "onset, contour]")
    p.add_argument("--auto-class", choices=("step", "input"),
                   help="dream toward what the model hears most: re-chosen every step, or "
                        "fixed from the input (DreamSound); implies --objective class")
    p.add_argument("--iterations", type=int,
                   help="gradient steps [20; when streaming, per block: 4]")
    p.add_argument("--step-size", type=float,
                   help="step, a fraction of the input's level "
                        "[the model's: 0.02; streams 0.06]")
    p.add_argument("--seed", type=int, help="random seed [0]")
    p.add_argument("--init", help="input, white, pink, sine, silence [input]")
    p.add_argument("--jitter", type=int, help="random time shift, model samples [0]")
    p.add_argument("--lowpass", type=float, help="low-pass of the change, Hz [off]")
    p.add_argument("--follow", type=float,
                   help="how closely the change follows the input's envelope, 0..2 [1]; "
                        "0 = bare gradient")
    p.add_argument("--change-only", action="store_true",
                   help="return the dream's change alone (the sonified gradient)")
    p.add_argument("--smoothing", type=float, help="gradient smoothing coefficient [0.5]")
    p.add_argument("--smoothing-kernel", type=int, help="smoothing kernel, odd [9]")
    p.add_argument("--grad-norm", help="std, l2, mean_abs [std]")
    p.add_argument("--mix", type=float, help="dry/wet, 0..1 [1]")
    p.add_argument("--mix-original", type=float,
                   help="pull toward the input per step [0; generate streams 0.1]")
    p.add_argument("--update", help="add, hardcut, hardcut_add, target_filter, flip [add]")
    p.add_argument("--threshold", type=float,
                   help="filter rules: mask threshold, dB below the loudest bin [-45]")
    p.add_argument("--power", type=float, help="filter rules: magnitude exponent [1.0]")
    p.add_argument("--n-fft", type=int, help="filter rules: STFT size [2048]")
    p.add_argument("--hop", type=int, help="filter rules: STFT hop [512]")
    p.add_argument("--target", metavar="FILE",
                   help="target sound for style, target_features, target_filter")
    p.add_argument("--content-weight", type=float, help="style: pull toward the input [0]")
    p.add_argument("--octaves", type=int, help="time-scale octaves 1..6 [1]")
    p.add_argument("--octave-scale", type=float, help="scale between octaves [1.5]")
    p.add_argument("--phase", help="mel models: original or griffinlim [original]")
    p.add_argument("--gl-iters", type=int, help="mel models: Griffin-Lim iterations [32]")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _dream_params(args) -> dict:
    """The DreamParams fields the shared options set (None = server default)."""
    for text in args.layer:
        parse_layer(text)  # syntax errors before any work
    params = dict(objective=args.objective, iterations=args.iterations,
                  step_size=args.step_size, seed=args.seed, init=args.init,
                  time_jitter=args.jitter, lowpass_hz=args.lowpass,
                  smoothing_coefficient=args.smoothing,
                  smoothing_kernel=args.smoothing_kernel, grad_norm=args.grad_norm,
                  mix=args.mix, mix_original=args.mix_original, negate=args.negate or None,
                  update=args.update, threshold=args.threshold, power=args.power,
                  n_fft=args.n_fft, hop=args.hop, content_weight=args.content_weight,
                  octaves=args.octaves, octave_scale=args.octave_scale, phase=args.phase,
                  gl_iters=args.gl_iters, follow_input=args.follow,
                  output="change" if args.change_only else None)
    classes = class_targets(args.class_, by_index=True) if args.class_ else []
    if args.notes:
        classes += class_targets(args.notes)
    if classes or args.auto_class:
        params["objective"] = params["objective"] or "class"
    params.update(classes=classes or None, exclusive=args.exclusive or None,
                  class_output=args.class_output, auto_class=args.auto_class)
    return params


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get(SERVER_ENV, DEFAULT_ADDRESS),
                   help="HOST:PORT of the server; replicas of one service as "
                        "HOST:PORT,HOST:PORT,... or dns:///NAME:PORT (calls balanced, "
                        f"retried on another when one is down) [${SERVER_ENV} or "
                        f"{DEFAULT_ADDRESS}]")
    p.add_argument("--token", default=os.environ.get("AUDIODREAM_TOKEN", ""),
                   help="bearer token, if the server wants one [$AUDIODREAM_TOKEN]")
    p.add_argument("--tls-ca", default="", help="CA certificate (PEM): connect with TLS")


def _client(args) -> Client:
    return Client(args.server, token=args.token, tls_ca=args.tls_ca)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TOOLS:  # its own parser reads the rest, -h included
        return run_tool(TOOLS[argv[0]][0], argv[1:])
    args = get_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ServerError as exc:
        print(f"audiodream: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, ImportError) as exc:
        print(f"audiodream: {exc}", file=sys.stderr)
        return 2


def cmd_serve(args) -> int:
    from audiodream_server import runtime

    runtime.configure_environment()
    import logging

    from audiodream_server.service.config import ServerConfig
    from audiodream_server.service.server import serve

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig.from_env()
    for name in ("host", "port", "device", "threads", "max_message_mb", "max_seconds",
                 "max_iterations", "max_active", "max_queued", "max_streams", "token",
                 "token_file", "allow_torchscript", "tls_cert", "tls_key", "metrics_port"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    if args.models_dir:
        config.models_dir = os.pathsep.join(filter(None, [config.models_dir, *args.models_dir]))
    try:
        config.resolve_token()
    except ValueError as exc:
        print(f"audiodream: {exc}", file=sys.stderr)
        return 2
    serve(config)
    return 0


def cmd_models(args) -> int:
    from .report import print_models

    with _client(args) as client:
        print_models(client.models())
    return 0


def cmd_layers(args) -> int:
    from .report import print_layers

    with _client(args) as client:
        print_layers(client.layers(args.model))
    return 0


def _local_or_remote(args):
    """The in-process engine with --local (imports torch), else a server connection."""
    if not args.local:
        return _client(args)
    from audiodream_server import runtime

    runtime.configure_environment()
    from audiodream_server.local import LocalClient

    return LocalClient(device=args.device)


def cmd_dream(args) -> int:
    from .report import ProgressBar, print_dream_summary, write_like

    params = _dream_params(args)
    if args.plot:
        from .plot import require_matplotlib

        require_matplotlib()  # before the dream, not after
    client = _local_or_remote(args)
    with client, ProgressBar(disable=args.quiet) as bar:
        out = client.dream(args.input, model=args.model, layers=args.layer,
                           target=args.target, progress=bar.update, **params)
    write_like(args.output, out.audio, out.sample_rate, args.input)
    if not args.quiet:
        print_dream_summary(out, args.output)
    if args.plot:
        from .plot import save_dream_plot

        save_dream_plot(args.plot, args.input, 0, out)
        if not args.quiet:
            print(f"wrote {args.plot}")
    return 0


def cmd_atlas(args) -> int:
    from .atlas import build_atlas, print_atlas_summary

    params = _dream_params(args)
    with _local_or_remote(args) as client:
        summary = build_atlas(client, args.out, input_path=args.input, model=args.model,
                              layers=tuple(args.layer), maps=args.maps, seconds=args.seconds,
                              audio_format=args.format, noise=not args.no_noise,
                              params=params, quiet=args.quiet, target=args.target)
    print_atlas_summary(summary)
    return 130 if summary.interrupted else 0


def cmd_stream(args) -> int:
    from .report import print_stream_summary, stream_file

    with _client(args) as client:
        summary = stream_file(client, args.input, args.output, block=args.block, mode=args.mode,
                              delay=args.delay, window=args.window,
                              realtime=args.realtime, reopen=args.reopen,
                              model=args.model, layers=args.layer,
                              target=args.target, quiet=args.quiet, **_dream_params(args))
    if not args.quiet:
        print_stream_summary(summary, args.output)
    return 0


def cmd_classify(args) -> int:
    from .report import print_classification

    with _client(args) as client:
        print_classification(client.classify(args.input, model=args.model, top=args.top,
                                              output=args.output))
    return 0


def run_tool(module: str, argv: list[str]) -> int:
    from audiodream_server import runtime

    runtime.configure_environment()
    from importlib import import_module

    code = import_module(module).main(argv)
    return code or 0


COMMANDS = {"serve": cmd_serve, "models": cmd_models, "layers": cmd_layers, "dream": cmd_dream,
            "stream": cmd_stream, "classify": cmd_classify, "atlas": cmd_atlas}


if __name__ == "__main__":
    sys.exit(main())
