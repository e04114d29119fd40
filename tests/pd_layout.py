"""Estimated boxes of a Pd patch, to check that nothing overlaps (Pd's 12-point font).

A box's size follows from its text: a character is about 7 px wide and a line
16 px high at font size 12; comments wrap at their `f` width (60 characters by
default), object and message boxes are one line unless given an `f` width.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

CHAR_W, LINE_H, BOX_PAD = 7, 16, 4


@dataclass
class Box:
    canvas: str
    kind: str
    text: str
    x: int
    y: int
    w: int
    h: int

    def overlaps(self, other: "Box") -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)


def records(patch: str) -> list[str]:
    """The patch's records: `;` ends one unless escaped."""
    return [r.strip() for r in re.split(r"(?<!\\);\s*\n", patch) if r.strip()]


def boxes(patch: str) -> list[Box]:
    out, stack = [], []
    for n, rec in enumerate(records(patch)):
        words = rec.split()
        if words[:2] == ["#N", "canvas"]:
            stack.append(f"{words[6]}#{n}" if len(words) > 7 else "main")
            continue
        if words[0] != "#X" or len(words) < 4 or not words[2].lstrip("-").isdigit():
            continue
        kind, x, y = words[1], int(words[2]), int(words[3])
        body = " ".join(words[4:])
        width = re.search(r"(?<!\\), f (\d+)$", body)
        body = re.sub(r"(?<!\\), f \d+$", "", body).replace("\\", "")
        canvas = stack[-1]
        if kind == "restore":  # the subpatch ends; its box is on the canvas around it
            stack.pop()
            out.append(_obj(stack[-1], "obj", body, x, y, None))
            continue
        if kind == "text":
            chars = int(width.group(1)) if width else 60
            lines = max(1, math.ceil(len(body) / chars))
            out.append(Box(canvas, kind, body, x, y, min(len(body), chars) * CHAR_W,
                           lines * LINE_H))
        elif kind in ("obj", "msg"):
            gui = words[4] if len(words) > 4 else ""
            if gui == "hsl":
                out.append(Box(canvas, gui, body, x, y, int(words[5]), int(words[6])))
            elif gui == "tgl":
                out.append(Box(canvas, gui, body, x, y, int(words[5]), int(words[5])))
            else:
                out.append(_obj(canvas, kind, body, x, y, width))
        elif kind in ("floatatom", "symbolatom"):
            out.append(Box(canvas, kind, body, x, y, int(words[4]) * CHAR_W + BOX_PAD, LINE_H + 4))
    return out


def _obj(canvas, kind, body, x, y, width):
    chars = int(width.group(1)) if width else len(body)
    lines = max(1, math.ceil(len(body) / chars)) if chars else 1
    return Box(canvas, kind, body, x, y, chars * CHAR_W + 2 * BOX_PAD, lines * LINE_H + 4)


def overlaps(patch: str) -> list[tuple[Box, Box]]:
    found = boxes(patch)
    return [(a, b) for i, a in enumerate(found) for b in found[i + 1:]
            if a.canvas == b.canvas and a.overlaps(b)]
