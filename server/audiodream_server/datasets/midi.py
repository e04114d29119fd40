"""A minimal Standard MIDI File writer: one track of timed channel messages.

Only what rendering single notes needs: program change, note on/off and
"all sound off". Times are given in milliseconds; the file declares
500 ticks per quarter note at 120 bpm (500 000 µs per quarter), so one tick is
exactly one millisecond and no tempo arithmetic leaks into callers.

>>> song = MidiTrack()
>>> song.program(0, 40)
>>> song.note(0, 60, 100, start_ms=0, length_ms=500)
>>> data = song.to_bytes()
>>> data[:4], data[14:18]
(b'MThd', b'MTrk')
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

TICKS_PER_QUARTER = 500
MICROSECONDS_PER_QUARTER = 500_000  # 120 bpm: 500 ticks = 500 ms, one tick = 1 ms


def variable_length(value: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last.

    >>> variable_length(0), variable_length(127), variable_length(128), variable_length(0x3FFF)
    (b'\\x00', b'\\x7f', b'\\x81\\x00', b'\\xff\\x7f')
    """
    if value < 0:
        raise ValueError("MIDI delta times cannot be negative")
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _check(name: str, value: int, high: int) -> int:
    if not 0 <= value <= high:
        raise ValueError(f"{name} must be in 0..{high}, got {value}")
    return value


@dataclass
class MidiTrack:
    """Channel messages at absolute millisecond times, written as a format-0 file."""

    events: list[tuple[int, int, bytes]] = field(default_factory=list)

    def _add(self, time_ms: int, message: bytes) -> None:
        # The running index keeps events at equal times in insertion order.
        self.events.append((int(time_ms), len(self.events), message))

    def program(self, channel: int, program: int, time_ms: int = 0) -> None:
        """Selects General MIDI program `program` (0..127) on `channel` (0..15)."""
        self._add(time_ms, bytes([0xC0 | _check("channel", channel, 15),
                                  _check("program", program, 127)]))

    def note(self, channel: int, pitch: int, velocity: int, start_ms: int,
             length_ms: int) -> None:
        """A note-on at `start_ms` and its note-off `length_ms` later."""
        _check("channel", channel, 15)
        _check("pitch", pitch, 127)
        _check("velocity", velocity, 127)
        self._add(start_ms, bytes([0x90 | channel, pitch, velocity]))
        self._add(start_ms + length_ms, bytes([0x80 | channel, pitch, 0]))

    def silence(self, channel: int, time_ms: int) -> None:
        """Controller 120, "all sound off": ends every voice at once, release tails included."""
        self._add(time_ms, bytes([0xB0 | _check("channel", channel, 15), 120, 0]))

    def to_bytes(self) -> bytes:
        """The complete .mid file."""
        body = bytearray()
        # Tempo meta event first, so tick = millisecond holds from time 0.
        body += variable_length(0) + b"\xff\x51\x03" + MICROSECONDS_PER_QUARTER.to_bytes(3, "big")
        now = 0
        for time_ms, _, message in sorted(self.events):
            body += variable_length(time_ms - now) + message
            now = time_ms
        body += variable_length(0) + b"\xff\x2f\x00"  # end of track
        header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
        return header + b"MTrk" + struct.pack(">I", len(body)) + bytes(body)

    def write(self, path) -> None:
        with open(path, "wb") as f:
            f.write(self.to_bytes())
