"""The dream parameters as one table: the single place a DreamParams field is described.

The proto (`audiodream.v1.DreamParams`) says how a field travels; this table says
what it means: type, default, allowed range or names, unit, command-line flag and
help, and whether hosts (the C core under Pd's dream~ and SuperCollider's Dream)
change it live. Both sides derive from it:

    server   engine validation (ranges, choices, defaults), proto <-> engine params
    client   the command line's dream options, the keywords `Client.dream` accepts

A few fields carry structure (lists of messages) and have code of their own:
`STRUCTURED`. The test suite checks that every DreamParams field of the proto is
either a row here or listed there, and that each choice row names exactly the
entries of the engine's registry (objectives, update rules, ...).

Adding a numeric dream parameter: a proto field (its wire half), one `Param` row
below, and the engine code that uses it. Nothing else is hand-written per field.

No torch, no numpy: the client installs without them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One DreamParams field.

    Args:
        name: the proto field (and engine attribute, and keyword) name.
        kind: int, float, str or bool.
        default: the value in force when the field is unset. With `deferred`, the
            engine holds None until a later stage decides (`per_model`: the model's
            card, else `default`; otherwise the stream mode, see the proto).
        low, high: inclusive range of a number (None: unchecked here).
        limit: a server limit (`Limits` attribute) that bounds the value instead of
            `high` (e.g. the server's most iterations).
        choices: the allowed names of a choice field ("" included where an empty
            string means something other than the default).
        flags: command-line flags of `dream`, `stream` and `atlas` (none: keyword
            only).
        help: the flags' help; choice rows without one list their names.
        const: the flag is a switch that sets this value (store_const).
        metavar: the flag's placeholder in help [the flag's name].
        unit: of the value ("Hz", "dB", "model samples", ...).
        live: a performance control the hosts send in a stream's Control (the C
            core's `dc_params`, Pd's message `host`). Any field may be changed by
            a Control from the Python or Lua client.
        host: the Pd message that sets a live field.
        offline: honoured by offline dreams only (a stream refuses the flag).
    """

    name: str
    kind: type
    default: object
    low: float | None = None
    high: float | None = None
    limit: str = ""
    choices: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    help: str = ""
    const: object = None
    metavar: str = ""
    unit: str = ""
    deferred: bool = False
    per_model: bool = False
    live: bool = False
    host: str = ""
    offline: bool = False

    @property
    def cli_help(self) -> str:
        if self.help or not self.choices:
            return self.help
        return f"{', '.join(c for c in self.choices if c)} [{self.default}]"


# Fields with code of their own (messages, lists, or names resolved against a model).
STRUCTURED = ("model", "layers", "classes")
# ... of which these are live controls in the C core (model, layers, classes).
STRUCTURED_LIVE = ("model", "layers", "classes")

PARAMS: tuple[Param, ...] = (
    Param("objective", str, "activation",
          choices=("activation", "mean", "class", "target_features", "style"),
          flags=("--objective",), live=True, host="objective"),
    Param("update", str, "add",
          choices=("add", "hardcut", "hardcut_add", "target_filter", "flip"),
          flags=("--update",), live=True, host="update"),
    Param("iterations", int, 20, low=0, limit="max_iterations", unit="steps",
          flags=("--iterations",), deferred=True, per_model=True, live=True,
          host="iterations", help="gradient steps [20; when streaming, per block: 4]"),
    Param("step_size", float, 0.02, low=0.0, high=10.0, unit="of the input's level",
          flags=("--step-size",), deferred=True, per_model=True, live=True, host="step",
          help="step, a fraction of the input's level [the model's: 0.02; streams 0.06]"),
    Param("seed", int, 0, low=0, high=2**63 - 1, flags=("--seed",), live=True, host="seed",
          help="random seed [0]"),
    Param("init", str, "input", choices=("input", "white", "pink", "sine", "silence"),
          flags=("--init",)),
    Param("init_frequency_hz", float, 440.0, low=1.0, high=96000.0, unit="Hz",
          flags=("--init-frequency",), help="frequency of a sine start, Hz [440]"),
    Param("init_gain", float, 0.25, low=0.0, high=1.0, unit="peak, linear",
          flags=("--init-gain",), help="peak of a noise or sine start, 0..1 [0.25]"),
    Param("time_jitter", int, 0, low=0, high=1_000_000, unit="model samples",
          flags=("--jitter",), live=True, host="jitter",
          help="random time shift, model samples [0]"),
    Param("lowpass_hz", float, 0.0, low=0.0, high=1e6, unit="Hz", flags=("--lowpass",),
          deferred=True, per_model=True, live=True, host="lowpass",
          help="low-pass of the change, Hz [off]"),
    Param("mix_original", float, 0.0, low=0.0, high=1.0, flags=("--mix-original",),
          deferred=True, help="pull toward the input per step [0; generate streams 0.1]"),
    Param("smoothing_coefficient", float, 0.5, low=0.0, high=10.0, flags=("--smoothing",),
          live=True, host="smoothing", help="gradient smoothing coefficient [0.5]"),
    Param("smoothing_kernel", int, 9, low=1, high=255, unit="samples, odd",
          flags=("--smoothing-kernel",), help="smoothing kernel, odd [9]"),
    Param("grad_norm", str, "std", choices=("std", "l2", "mean_abs"), flags=("--grad-norm",)),
    Param("mix", float, 1.0, low=0.0, high=1.0, flags=("--mix",), live=True, host="mix",
          help="dry/wet, 0..1 [1]"),
    Param("class_index", int, None),
    Param("class_name", str, ""),
    Param("negate", bool, False, flags=("--negate",), const=True,
          help="push away from the classes"),
    Param("window_overlap", float, 0.25, low=0.05, high=0.75, unit="of the window",
          flags=("--window-overlap",), help="overlap of the model's windows, 0.05..0.75 [0.25]"),
    Param("output_format", str, "pcm", choices=("pcm", "wav", "flac", "ogg"),
          flags=("--output-format",), offline=True,
          help="how the server sends the result: pcm, wav, flac, ogg [chosen to fit: pcm, "
               "else flac, else the file goes in segments]; the file written is the one "
               "OUTPUT's extension names"),
    Param("threshold", float, -45.0, low=-120.0, high=0.0, unit="dB",
          flags=("--threshold",),
          help="filter rules: mask threshold, dB below the loudest bin [-45]"),
    Param("power", float, 1.0, low=0.1, high=4.0, flags=("--power",),
          help="filter rules: magnitude exponent [1.0]"),
    Param("n_fft", int, 2048, low=16, high=16384, unit="model samples, even",
          flags=("--n-fft",), help="filter rules: STFT size [2048]"),
    Param("hop", int, 512, low=1, high=16384, unit="model samples, <= n_fft",
          flags=("--hop",), help="filter rules: STFT hop [512]"),
    Param("content_weight", float, 0.0, low=0.0, high=1000.0, flags=("--content-weight",),
          help="style: pull toward the input [0]"),
    Param("octaves", int, 1, low=1, high=6, flags=("--octaves",),
          help="time-scale octaves 1..6 [1]"),
    Param("octave_scale", float, 1.5, low=1.1, high=4.0, flags=("--octave-scale",),
          help="scale between octaves [1.5]"),
    Param("phase", str, "original", choices=("original", "griffinlim"), flags=("--phase",),
          help="mel models: original or griffinlim [original]"),
    Param("gl_iters", int, 32, low=0, high=500, flags=("--gl-iters",),
          help="mel models: Griffin-Lim iterations [32]"),
    Param("follow_input", float, 1.0, low=0.0, high=2.0, flags=("--follow",),
          deferred=True, per_model=True,
          help="how closely the change follows the input's envelope, 0..2 [1]; "
               "0 = bare gradient"),
    Param("output", str, "mix", choices=("mix", "change"), flags=("--change-only",),
          const="change", help="return the dream's change alone (the sonified gradient)"),
    Param("morph_amount", float, 0.5, low=0.0, high=1.0, live=True, host="morph"),
    Param("morph_interpolation", str, "linear", choices=("linear", "spherical")),
    Param("morph_detail", float, 1.0, low=0.0, high=1.0),
    Param("loudness", str, "rms", choices=("rms", "peak", "normalize", "off"),
          flags=("--loudness",), offline=True,
          help="output level: rms (keep the input's loudness), peak (keep its peak), "
               "normalize (peak at --ceiling), off (the dream's own) [rms]; "
               "offline dreams only"),
    Param("ceiling_db", float, 0.0, low=-60.0, high=0.0, unit="dBFS", flags=("--ceiling",),
          offline=True,
          help="highest output peak, dBFS, -60..0 [0]; e.g. -1 for 1 dB of headroom"),
    Param("class_output", str, "", flags=("--class-output",), metavar="LAYER",
          help="output the classes are read from [the model's; basic-pitch: note, onset, "
               "contour]"),
    Param("exclusive", bool, False, flags=("--exclusive",), const=True, live=True,
          host="exclusive",
          help="also push away from every class not named (toward this chord, away from "
               "the rest)"),
    Param("auto_class", str, "", choices=("", "step", "input"), flags=("--auto-class",),
          live=True, host="autoclass",
          help="dream toward what the model hears most: re-chosen every step, or fixed "
               "from the input (DreamSound); implies --objective class"),
    Param("highpass_hz", float, 0.0, low=0.0, high=1e6, unit="Hz", flags=("--highpass",),
          help="high-pass of the change, Hz: the dream adds no rumble or DC below it "
               "[off]; e.g. 40"),
)

BY_NAME: dict[str, Param] = {p.name: p for p in PARAMS}
# Keywords a caller may pass for DreamParams fields (model and layers have their own).
KEYWORDS: tuple[str, ...] = tuple(p.name for p in PARAMS) + ("classes",)


def choices(name: str) -> tuple[str, ...]:
    """The allowed names of choice field `name`."""
    return BY_NAME[name].choices
