"""The `audiodream` command: validates arguments and dispatches; no logic of its own."""

from __future__ import annotations

import argparse
import os
import sys

from .client import DEFAULT_ADDRESS, Client, ServerError
from .layers import parse_layer

SERVER_ENV = "AUDIODREAM_SERVER"


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
    serve.add_argument("--stream-capacity", type=float,
                       help="share of the compute live streams may want together; a stream "
                       "beyond it is refused [0.85; 0 = no check]")
    serve.add_argument("--token", help="require this bearer token; visible in ps, so prefer "
                       "$AUDIODREAM_TOKEN or --token-file")
    serve.add_argument("--token-file", help="read the token from this file's first line "
                       "[$AUDIODREAM_TOKEN_FILE]")
    serve.add_argument("--allow-torchscript", action="store_true", default=None,
                       help="load user TorchScript models: they are programs that run with "
                            "the server's rights, enable only for trusted files "
                            "[$AUDIODREAM_ALLOW_TORCHSCRIPT]")
    serve.add_argument("--tls-cert", help="PEM certificate: serve TLS only")
    serve.add_argument("--tls-key", help="PEM private key for --tls-cert")
    serve.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                       help="extra folder of models (repeatable); the shipped models and "
                            "~/.local/share/audiodream/models are always read")

    for name, text in (("models", "list the server's models"),):
        p = sub.add_parser(name, help=text)
        _add_connection(p)
    layers = sub.add_parser("layers", help="list a model's dreamable layers")
    layers.add_argument("model", nargs="?", default="", help="model name [server default]")
    _add_connection(layers)

    # Server-side tools with parsers of their own: the rest of the line goes to them.
    for name, text in (("data", "build a training data set (gm-instruments, speech)"),
                       ("train", "train a model on a folder-per-class data set"),
                       ("convert-yamnet", "convert YAMNet's Keras weights for the server")):
        tool = sub.add_parser(name, help=text, add_help=False)
        tool.add_argument("args", nargs=argparse.REMAINDER)

    dream = sub.add_parser("dream", help="dream a sound file")
    dream.add_argument("input", help="sound file to dream (WAV, FLAC, OGG)")
    dream.add_argument("output", help="where to write the dreamed sound")
    _add_connection(dream)
    _add_dream_options(dream)
    dream.add_argument("--local", action="store_true", help="run the engine here, no server")
    dream.add_argument("--device", default="auto", help="with --local: auto, cpu, cuda [auto]")

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
    return parser


def _add_dream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="model name [server default]")
    p.add_argument("--layer", action="append", default=[], metavar="NAME[:CH,..][@W]",
                   help="layer to amplify, repeatable, e.g. conv3:1,5@0.5")
    p.add_argument("--objective", help="activation, mean, class [activation]")
    p.add_argument("--class", dest="class_", metavar="INDEX|NAME",
                   help="class for --objective class")
    p.add_argument("--negate", action="store_true", help="push away from the class")
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
    if args.class_ is not None:
        key = "class_index" if args.class_.isdigit() else "class_name"
        params[key] = int(args.class_) if key == "class_index" else args.class_
        params["objective"] = params["objective"] or "class"
    return params


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get(SERVER_ENV, DEFAULT_ADDRESS),
                   help=f"HOST:PORT of the server [${SERVER_ENV} or {DEFAULT_ADDRESS}]")
    p.add_argument("--token", default=os.environ.get("AUDIODREAM_TOKEN", ""),
                   help="bearer token, if the server wants one [$AUDIODREAM_TOKEN]")
    p.add_argument("--tls-ca", default="", help="CA certificate (PEM): connect with TLS")


def _client(args) -> Client:
    return Client(args.server, token=args.token, tls_ca=args.tls_ca)


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ServerError as exc:
        print(f"audiodream: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
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
                 "max_iterations", "max_active", "max_queued", "max_streams", "stream_capacity",
                 "token", "token_file", "allow_torchscript", "tls_cert", "tls_key"):
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


def cmd_dream(args) -> int:
    from .report import ProgressBar, print_dream_summary, write_like

    params = _dream_params(args)
    if args.local:
        from audiodream_server import runtime

        runtime.configure_environment()
        from audiodream_server.local import LocalClient

        client = LocalClient(device=args.device)
    else:
        client = _client(args)
    with client, ProgressBar(disable=args.quiet) as bar:
        out = client.dream(args.input, model=args.model, layers=args.layer,
                           target=args.target, progress=bar.update, **params)
    write_like(args.output, out.audio, out.sample_rate, args.input)
    if not args.quiet:
        print_dream_summary(out, args.output)
    return 0


def cmd_stream(args) -> int:
    from .report import print_stream_summary, stream_file

    with _client(args) as client:
        summary = stream_file(client, args.input, args.output, block=args.block, mode=args.mode,
                              delay=args.delay, window=args.window,
                              realtime=args.realtime, model=args.model, layers=args.layer,
                              target=args.target, quiet=args.quiet, **_dream_params(args))
    if not args.quiet:
        print_stream_summary(summary, args.output)
    return 0


def _server_tool(module: str):
    def run(args) -> int:
        from audiodream_server import runtime

        runtime.configure_environment()
        from importlib import import_module

        return import_module(module).main(args.args)

    return run


COMMANDS = {"serve": cmd_serve, "models": cmd_models, "layers": cmd_layers, "dream": cmd_dream,
            "stream": cmd_stream,
            "data": _server_tool("audiodream_server.datasets.cli"),
            "train": _server_tool("audiodream_server.training.cli"),
            "convert-yamnet": _server_tool("audiodream_server.models.yamnet_convert")}


if __name__ == "__main__":
    sys.exit(main())
