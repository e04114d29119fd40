"""The layer syntax of the command line: NAME[:CH,CH,...][@WEIGHT].

>>> parse_layer("conv3")
('conv3', [], None)
>>> parse_layer("conv3:1,5@0.5")
('conv3', [1, 5], 0.5)
>>> parse_layer("conv0@2")
('conv0', [], 2.0)
"""

from __future__ import annotations


def parse_layer(text: str) -> tuple[str, list[int], float | None]:
    """Returns (name, channels, weight or None); raises ValueError on bad syntax."""
    body, _, weight_text = text.partition("@")
    name, _, channel_text = body.partition(":")
    if not name.strip():
        raise ValueError(f"layer {text!r}: missing name (syntax NAME[:CH,CH,...][@WEIGHT])")
    try:
        channels = [int(c) for c in channel_text.split(",") if c.strip()] if channel_text else []
    except ValueError:
        raise ValueError(f"layer {text!r}: channels must be integers, e.g. conv3:1,5") from None
    try:
        weight = float(weight_text) if weight_text else None
    except ValueError:
        raise ValueError(f"layer {text!r}: weight must be a number, e.g. conv3@0.5") from None
    return name.strip(), channels, weight
