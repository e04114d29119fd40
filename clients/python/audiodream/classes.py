"""Class targets as people write them: "choir", "techno@0.5", "C4,E4,G4", "60".

A spec is a comma-separated list of NAME[@WEIGHT]. Tag names may contain
spaces ("male vocal"). A NAME of digits only is sent as a class index when the
caller asks (`by_index`, the CLI's --class); sent as a name, the server reads
it as a MIDI note for note models (basic-pitch, the CLI's --notes) and as an
index for the others.
"""

from __future__ import annotations

from typing import Iterable

from audiodream_proto.v1 import audiodream_pb2 as pb


def parse_classes(text: str) -> list[tuple[str, float]]:
    """"choir,techno@0.5" -> [("choir", 1.0), ("techno", 0.5)].

    >>> parse_classes("choir, male vocal@-0.5")
    [('choir', 1.0), ('male vocal', -0.5)]
    """
    out = []
    for part in text.split(","):
        name, _, weight = part.strip().partition("@")
        if not name.strip():
            raise ValueError(f"empty class name in {text!r}; write NAME[@WEIGHT],...")
        try:
            out.append((name.strip(), float(weight) if weight else 1.0))
        except ValueError:
            raise ValueError(f"weight {weight!r} of class {name!r} is not a number") from None
    return out


def class_targets(classes: Iterable, by_index: bool = False) -> list[pb.ClassTarget]:
    """ClassTarget messages from strings ("NAME[@W],..."), (name, weight) pairs,
    ints (indices) or dicts. With `by_index`, digit-only names are indices."""
    targets = []
    for item in ([classes] if isinstance(classes, str) else classes):
        if isinstance(item, pb.ClassTarget):
            targets.append(item)
            continue
        pairs: list[tuple[str | int, float]]
        if isinstance(item, str):
            pairs = list(parse_classes(item))
        elif isinstance(item, int):
            pairs = [(item, 1.0)]
        elif isinstance(item, dict):
            targets.append(pb.ClassTarget(**item))
            continue
        else:
            pairs = [tuple(item)]
        for name, weight in pairs:
            if isinstance(name, int) or (by_index and str(name).isdigit()):
                targets.append(pb.ClassTarget(index=int(name), weight=weight))
            else:
                targets.append(pb.ClassTarget(name=str(name), weight=weight))
    return targets
