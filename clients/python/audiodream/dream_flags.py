"""The command line's dream options, derived from the parameter table.

Every row of `audiodream_proto.params.PARAMS` with flags becomes an option of
`dream`, `stream` and `atlas` (dest "param_" + the DreamParams field, apart from
the commands' own arguments such as OUTPUT); the structured fields (model, layers, classes)
and the options that are not parameters (target, quiet) are written here.
"""

from __future__ import annotations

import argparse

from audiodream_proto.params import PARAMS, Param

from .classes import class_targets
from .layers import parse_layer


def add_dream_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="", help="model name [server default]")
    p.add_argument("--layer", action="append", default=[], metavar="NAME[:CH,..][@W]",
                   help="layer to amplify, repeatable, e.g. conv3:1,5@0.5")
    p.add_argument("--class", dest="class_", metavar="NAME[@W],...",
                   help="dream toward these classes (tags, notes; a number = an index), "
                        "e.g. choir or 'techno,piano@0.5'; implies --objective class")
    p.add_argument("--notes", metavar="NOTE,...",
                   help="note models (basic-pitch): dream toward these notes or a chord, "
                        "e.g. C4,E4,G4 or 60,64,67; implies --objective class")
    for row in PARAMS:
        if row.flags:
            _add(p, row)
    p.add_argument("--target", metavar="FILE",
                   help="target sound for style, target_features, target_filter")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")


def _add(p: argparse.ArgumentParser, row: Param) -> None:
    if row.const is not None:
        p.add_argument(*row.flags, dest=_dest(row), action="store_const", const=row.const,
                       help=row.cli_help)
        return
    options: dict = {"dest": _dest(row), "help": row.cli_help}
    if row.choices:
        options["choices"] = tuple(c for c in row.choices if c)
    else:
        options["metavar"] = row.metavar or row.flags[0].lstrip("-").upper().replace("-", "_")
        if row.kind in (int, float):
            options["type"] = row.kind
    p.add_argument(*row.flags, **options)


def _dest(row: Param) -> str:
    return "param_" + row.name


def dream_params(args: argparse.Namespace) -> dict:
    """The DreamParams fields the dream options set (None = the server's default)."""
    for text in args.layer:
        parse_layer(text)  # syntax errors before any work
    params = {row.name: getattr(args, _dest(row)) for row in PARAMS if row.flags}
    classes = class_targets(args.class_, by_index=True) if args.class_ else []
    if args.notes:
        classes += class_targets(args.notes)
    if classes or params["auto_class"]:
        params["objective"] = params["objective"] or "class"
    params["classes"] = classes or None
    return params


def offline_flags() -> tuple[tuple[str, str], ...]:
    """(field, flag) of each parameter only offline dreams honour (streams refuse it)."""
    return tuple((row.name, row.flags[0]) for row in PARAMS if row.flags and row.offline)
