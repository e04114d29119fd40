"""Data sets: folder-per-class training audio built from installed tools (seed 003 §3.1).

`audiodream data gm-instruments` renders General MIDI instruments with FluidSynth;
`audiodream data speech` has espeak-ng voices speak generated sentences. Both
write 1 s, 44.1 kHz mono clips and a `manifest.json` recording how.
"""
