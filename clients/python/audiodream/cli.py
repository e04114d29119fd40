"""The `audiodream` command: validates arguments and dispatches; no logic of its own."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from contextlib import contextmanager

from . import __version__, cli_checks, dream_flags
from .cli_checks import UsageError
from .client import DEFAULT_ADDRESS, Client, ServerError

SERVER_ENV = "AUDIODREAM_SERVER"
# Installed packages add commands and the in-process engine through this entry
# point group; the server package's module lists what it must provide. Without
# it this is the client alone: no `serve`, no training tools, no `--local`.
EXTENSIONS = "audiodream.cli"
SERVER_COMMANDS = ("serve", "data", "train", "convert-yamnet")
NO_SERVER = ("{what} comes with the audiodream server, which is not installed here (this is "
             "the client alone); install it (from a checkout: pip install .) or use a server "
             "with --server")


@functools.cache
def extensions() -> tuple:
    """The modules installed packages add to the command (the server's, if installed),
    found once per process."""
    from importlib.metadata import entry_points

    return tuple(ep.load() for ep in entry_points(group=EXTENSIONS))


def _extension_commands() -> dict:
    commands: dict = {}
    for extension in extensions():
        commands.update(extension.COMMANDS)
    return commands


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiodream", description="Dream sound with neural networks.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    # Commands of installed extensions (the server's `serve` and training tools)
    # read the rest of the line themselves; listed here for the overview.
    for name, (_, text) in _extension_commands().items():
        sub.add_parser(name, help=text, add_help=False)

    models = sub.add_parser("models", help="list the server's models")
    _add_connection(models)
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

    dream = sub.add_parser("dream", help="dream a sound file")
    dream.add_argument("input", help="sound file to dream (WAV, FLAC, OGG)")
    dream.add_argument("output", help="where to write the dreamed sound")
    _add_connection(dream)
    dream_flags.add_dream_options(dream)
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
    dream_flags.add_dream_options(atlas)

    morph = sub.add_parser("morph", help="morph sound A toward sound B (an autoencoder model)")
    morph.add_argument("a", help="sound A, the start (WAV, FLAC, OGG)")
    morph.add_argument("b", help="sound B, the end")
    morph.add_argument("output", help="where to write the morph (A's rate, channels, length)")
    _add_connection(morph)
    how = morph.add_mutually_exclusive_group()
    how.add_argument("--amount", type=float, help="0 = A .. 1 = B, over the whole sound [0.5]")
    how.add_argument("--curve", type=float, nargs="*", metavar="AMOUNT",
                     help="amounts at evenly spaced times across the output; alone: 0 1 "
                          "(A glides to B)")
    how.add_argument("--groups", metavar="A,A,...",
                     help="one amount per equal group of latent channels, e.g. 0,1")
    morph.add_argument("--model", default="", help="autoencoder model [the server's first]")
    morph.add_argument("--spherical", action="store_true",
                       help="spherical (slerp) instead of linear interpolation")
    morph.add_argument("--griffin-lim", action="store_true",
                       help="resynthesise with Griffin-Lim instead of blending A's and B's phase")
    morph.add_argument("--gl-iters", type=int, help="Griffin-Lim iterations [32]")
    morph.add_argument("--detail", type=float,
                       help="0..1: keep the inputs' fine structure (1) or only the decoder's "
                            "mel envelope (0) [1]")
    morph.add_argument("--quiet", action="store_true", help="no summary")

    stream = sub.add_parser("stream", help="stream a sound file through StreamDream")
    stream.add_argument("input", help="sound file to stream")
    stream.add_argument("output", help="where to write the dreamed sound (latency removed)")
    _add_connection(stream)
    dream_flags.add_dream_options(stream)
    stream.add_argument("--block", type=int, default=2048, help="frames per block [2048]")
    stream.add_argument("--mode", default="process", help="process or generate [process]")
    stream.add_argument("--delay", type=int, default=0, help="output delay, frames [one block]")
    stream.add_argument("--window", type=int, default=0,
                        help="context frames dreamed per block [0 = the model's window]")
    stream.add_argument("--realtime", action="store_true",
                        help="send blocks at the pace of the audio, as a live input would, "
                             "under the real-time contract (late blocks run fewer iterations); "
                             "without it the file renders offline: every iteration runs")
    stream.add_argument("--reopen", action="store_true",
                        help="if the server shuts down or dies, go on on another of the "
                             "--server replicas (the output has one block of silence there)")
    return parser


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get(SERVER_ENV, DEFAULT_ADDRESS),
                   help="HOST:PORT of the server; replicas of one service as "
                        "HOST:PORT,HOST:PORT,... or dns:///NAME:PORT (calls balanced, "
                        f"retried on another when one is down) [${SERVER_ENV} or "
                        f"{DEFAULT_ADDRESS}]")
    p.add_argument("--token", default=os.environ.get("AUDIODREAM_TOKEN", ""),
                   help="bearer token, if the server wants one [$AUDIODREAM_TOKEN]")
    p.add_argument("--tls-ca", default="", help="CA certificate (PEM): connect with TLS")
    p.add_argument("--max-message-mb", type=int,
                   default=int(os.environ.get("AUDIODREAM_MAX_MESSAGE_MB", "64")),
                   help="largest message, MiB; the server's limit [$AUDIODREAM_MAX_MESSAGE_MB "
                        "or 64]")
    p.add_argument("--local", action="store_true",
                   help="no server: load the models and run the engine in this process "
                        "(needs the server package installed)")
    p.add_argument("--device", default="auto", help="with --local: auto, cpu, cuda [auto]")


def _local_extension():
    for extension in extensions():
        if hasattr(extension, "local_stub"):
            return extension
    raise UsageError(NO_SERVER.format(what="--local (the engine in this process)"))


def _client(args):
    """The server named by --server, or with --local an engine in this process."""
    if args.local:
        return Client(stub=_local_extension().local_stub(args.device))
    return Client(args.server, token=args.token, tls_ca=args.tls_ca,
                  max_message_mb=args.max_message_mb)


def main(argv: list[str] | None = None) -> int:
    """Runs one command; every failure ends in one line on stderr and an exit code:
    1 the server refused or failed, 2 a usage or file problem, 130 Ctrl-C."""
    argv = sys.argv[1:] if argv is None else list(argv)
    extended = _extension_commands()
    if argv and argv[0] in SERVER_COMMANDS + tuple(extended):
        # An extension's command: its own parser reads the rest, -h included.
        command = extended.get(argv[0])
        if command is None:
            return _fail(NO_SERVER.format(what=f"'audiodream {argv[0]}'"), 2)
        return command[0](argv[1:])
    args = get_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ServerError as exc:
        return _fail(cli_checks.server_hint(exc, getattr(args, "server", "")), 1)
    except (UsageError, OSError, ValueError, ImportError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _reader_left()
        return _fail(str(exc), 2)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


def _fail(message: str, code: int) -> int:
    try:
        print(f"audiodream: {message}", file=sys.stderr, flush=True)
    except BrokenPipeError:
        pass
    return code


def _reader_left() -> int:
    """`audiodream models | head -2`: the reader went away; end quietly, as a pipe tool does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's final flush must not fail again
    return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by the pipe


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


def cmd_dream(args) -> int:
    from .report import ProgressBar, print_dream_summary, write_like
    from .transfer import dream_file

    params = dream_flags.dream_params(args)
    if args.plot:
        from .plot import require_matplotlib

        require_matplotlib()  # before the dream, not after
    _check_files(args)
    with _client(args) as client, ProgressBar(disable=args.quiet) as bar:
        out = dream_file(client, args.input, model=args.model, layers=args.layer,
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


def cmd_morph(args) -> int:
    from .report import print_morph_summary, write_like

    curve = None if args.curve is None else (args.curve or [0.0, 1.0])
    groups = [float(v) for v in args.groups.split(",")] if args.groups else ()
    with _client(args) as client:
        out = client.morph(args.a, args.b, model=args.model, amount=args.amount,
                           curve=curve or (), group_amounts=groups,
                           interpolation="spherical" if args.spherical else "",
                           phase="griffinlim" if args.griffin_lim else "",
                           gl_iters=args.gl_iters, detail=args.detail)
    write_like(args.output, out.audio, out.sample_rate, args.a)
    if not args.quiet:
        print_morph_summary(out, args.output)
    return 0


def cmd_atlas(args) -> int:
    from .atlas import build_atlas, print_atlas_summary

    params = dream_flags.dream_params(args)
    with _client(args) as client:
        summary = build_atlas(client, args.out, input_path=args.input, model=args.model,
                              layers=tuple(args.layer), maps=args.maps, seconds=args.seconds,
                              audio_format=args.format, noise=not args.no_noise,
                              params=params, quiet=args.quiet, target=args.target)
    print_atlas_summary(summary)
    return 130 if summary.interrupted else 0


def cmd_stream(args) -> int:
    from .report import print_stream_summary, stream_file

    params = dream_flags.dream_params(args)
    for name, flag in dream_flags.offline_flags():
        if params.pop(name) is not None:
            raise UsageError(f"{flag} applies to offline dreams (audiodream dream), "
                             "not to streams")
    _check_files(args)
    with _local_server(args) if args.local else _client(args) as client:
        summary = stream_file(client, args.input, args.output, block=args.block, mode=args.mode,
                              delay=args.delay, window=args.window,
                              realtime=args.realtime, reopen=args.reopen,
                              model=args.model, layers=args.layer,
                              target=args.target, quiet=args.quiet, **params)
    if not args.quiet:
        print_stream_summary(summary, args.output)
    return 0


def _check_files(args) -> None:
    """Input readable, output writable in the format its name asks for: before any work."""
    cli_checks.check_input(args.input)
    if args.target:
        cli_checks.check_input(args.target)
    cli_checks.check_output(args.output)


@contextmanager
def _local_server(args):
    """`stream --local`: a real server on a free loopback port in this process."""
    with _local_extension().local_server(args.device) as address, Client(address) as client:
        yield client


def cmd_classify(args) -> int:
    from .report import print_classification

    cli_checks.check_input(args.input)
    with _client(args) as client:
        print_classification(client.classify(args.input, model=args.model, top=args.top,
                                              output=args.output))
    return 0


COMMANDS = {"models": cmd_models, "layers": cmd_layers, "dream": cmd_dream,
            "stream": cmd_stream, "morph": cmd_morph, "classify": cmd_classify,
            "atlas": cmd_atlas}


if __name__ == "__main__":
    sys.exit(main())
