"""Classes by name: which output a class objective reads, and which indices it means.

A classifier declares its logits layer and class names (`ModelSpec`). Some
models have several outputs that can be read as classes (Basic Pitch: "note",
"onset" and "contour"); their spec lists them in `class_outputs`. A name is
looked up in the chosen output's names, exactly, then ignoring case (and
reading "_" as a space); for
models whose classes are notes (`note_classes`), a note name in any spelling
or a MIDI number is accepted too ("C4", "Db4", "60"), and on the contour output
it means the bin centred on that note. Otherwise a name of digits only that
is no class's name is a class index (hosts like Pd send numbers as words).
"""

from __future__ import annotations

from ..errors import InvalidArgument, NotFound, OutOfRange
from ..models import basic_pitch
from ..models.spec import ModelSpec


def outputs(spec: ModelSpec) -> dict[str, tuple[str, ...]]:
    """Output layer -> its class names; the logits layer first."""
    found = dict(spec.class_outputs)
    if spec.logits_layer and spec.logits_layer not in found:
        found = {spec.logits_layer: spec.classes, **found}
    return found


def output_names(spec: ModelSpec, output: str) -> tuple[str, tuple[str, ...]]:
    """(layer, class names) of `output` ("" = the logits layer). Raises if unknown."""
    if not spec.classes:
        raise InvalidArgument(f"model {spec.name} is not a classifier; use objective "
                              "'activation' or 'mean'")
    choices = outputs(spec)
    layer = output or spec.logits_layer
    if layer not in choices:
        raise NotFound(f"model {spec.name} has no class output {layer!r}; "
                       f"outputs: {', '.join(choices)}")
    return layer, choices[layer]


def index_of(spec: ModelSpec, names: tuple[str, ...], name: str) -> int:
    """Index of class `name` among `names` (see the module docstring)."""
    if name in names:
        return names.index(name)
    folded = [n.lower() for n in names]
    # Hosts whose words cannot hold spaces (Pd) write "male_vocal" for "male vocal".
    for candidate in (name.lower(), name.lower().replace("_", " ")):
        if candidate in folded and folded.count(candidate) == 1:
            return folded.index(candidate)
    if spec.note_classes:
        try:
            midi = basic_pitch.parse_note(name)
        except ValueError as exc:
            raise NotFound(f"model {spec.name}: {exc}") from None
        key = midi - basic_pitch.LOWEST_MIDI
        per_key = len(names) // basic_pitch.KEYS
        if not 0 <= key < basic_pitch.KEYS:
            raise OutOfRange(f"note {name!r} (MIDI {midi}) is outside the model's keys "
                             f"{names[0]}..{names[-1]} (MIDI {basic_pitch.LOWEST_MIDI}.."
                             f"{basic_pitch.LOWEST_MIDI + basic_pitch.KEYS - 1})")
        return key * per_key
    if name.isdigit():  # hosts that send numbers as words (Pd): an index
        return int(name)
    raise NotFound(f"model {spec.name} has no class {name!r}; ListLayers (or "
                   "`audiodream layers MODEL`) gives its class names")
