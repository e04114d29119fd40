"""Dream parameters: one typed dataclass, validated once at the edge.

What each field means, its default and its allowed range or names live in one
table shared with the client, `audiodream_proto.params` (SPEC §2; Bisig &
Wegner, seed 003 §3.4). `validate` checks every field against its row and raises
with a message naming the allowed values; the names of the choices that select
code (objectives, update rules, gradient normalisations, initial signals,
loudness modes) are the keys of the engine's registries. Rules between fields
(odd kernels, hop <= n_fft, classes, layers) are code here. `resolve` then checks
the names against one model (layers, channels, classes) and fills the
model-dependent defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from audiodream_proto.params import BY_NAME, PARAMS

from ..errors import InvalidArgument, NotFound, OutOfRange
from ..models.spec import ModelSpec
from . import classes as class_outputs
from . import gradients, initial, loudness, objectives, updates

# Choice fields whose names select engine code: name -> its registry.
REGISTRIES = {"objective": objectives.OBJECTIVES, "update": updates.UPDATES,
              "init": initial.INITS, "grad_norm": gradients.GRAD_NORMS,
              "loudness": loudness.LOUDNESS}


def allowed(name: str) -> tuple[str, ...]:
    """The names choice field `name` accepts: its registry's keys, else the table's."""
    return tuple(REGISTRIES[name]) if name in REGISTRIES else BY_NAME[name].choices


OBJECTIVES = allowed("objective")
UPDATES = allowed("update")
INITS = allowed("init")
GRAD_NORMS = allowed("grad_norm")
# What needs a target sound to mean anything.
NEEDS_TARGET = ("target_features", "style", "target_filter")
# What a dream returns: the input with the change mixed in, or the change alone
# (DreamSound's "sonified gradient").
OUTPUTS = allowed("output")
# Automatic class (DreamSound): "" off; "step": the class the model hears most,
# re-chosen at every step; "input": the one it hears most in the input, fixed.
AUTO_CLASSES = allowed("auto_class")
OUTPUT_FORMATS = allowed("output_format")
PHASES = allowed("phase")
# Parameters a model may give its own default (model card "dream_defaults");
# None in DreamParams means "the model's default, else ENGINE_DEFAULTS".
ENGINE_DEFAULTS = {p.name: p.default for p in PARAMS if p.per_model}
MODEL_DEFAULTS = tuple(ENGINE_DEFAULTS)


@dataclass(frozen=True)
class LayerSelection:
    """A layer to amplify, optionally only some feature maps, with a weight."""

    name: str
    channels: tuple[int, ...] = ()
    weight: float = 1.0


@dataclass(frozen=True)
class ClassTarget:
    """One class of a class objective: by name or index, with a weight.

    After `DreamParams.resolve`, `index` is set (names looked up in the output).
    """

    name: str = ""
    index: int | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class Limits:
    """Server-side limits on what one request may ask for."""

    max_iterations: int = 1000
    max_seconds: float = 300.0
    max_channels: int = 8
    min_rate: int = 8000
    max_rate: int = 192000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class DreamParams:
    """Every parameter of one dream. Units, ranges and defaults: the parameter table
    (`audiodream_proto.params`) and the proto's comments."""

    model: str = ""
    layers: tuple[LayerSelection, ...] = ()
    objective: str = "activation"
    update: str = "add"
    iterations: int | None = None
    step_size: float | None = None
    seed: int = 0
    init: str = "input"
    init_frequency_hz: float = 440.0
    init_gain: float = 0.25
    time_jitter: int = 0
    lowpass_hz: float | None = None
    mix_original: float | None = None  # None: off, except in generate streams
    smoothing_coefficient: float = 0.5
    smoothing_kernel: int = 9
    grad_norm: str = "std"
    mix: float = 1.0
    class_index: int | None = None
    class_name: str = ""
    negate: bool = False
    window_overlap: float = 0.25
    output_format: str = "pcm"
    threshold: float = -45.0
    power: float = 1.0
    n_fft: int = 2048
    hop: int = 512
    content_weight: float = 0.0
    octaves: int = 1
    octave_scale: float = 1.5
    phase: str = "original"
    gl_iters: int = 32
    follow_input: float | None = None
    output: str = "mix"
    # Streams in "morph" mode (engine.morph): amount toward the target's code,
    # interpolation, and how much detail the code does not hold is kept.
    morph_amount: float = 0.5
    morph_interpolation: str = "linear"
    morph_detail: float = 1.0
    loudness: str = "rms"
    ceiling_db: float = 0.0
    classes: tuple[ClassTarget, ...] = ()
    class_output: str = ""
    exclusive: bool = False
    auto_class: str = ""
    highpass_hz: float = 0.0

    def validate(self, limits: Limits = DEFAULT_LIMITS) -> "DreamParams":
        """Checks every field that does not depend on the model. Returns self."""
        for row in PARAMS:
            value = getattr(self, row.name)
            if row.choices:
                _choice(row.name, value, allowed(row.name))
            elif row.low is not None or row.high is not None or row.limit:
                high = getattr(limits, row.limit) if row.limit else row.high
                _range(row.name, value, -math.inf if row.low is None else row.low,
                       math.inf if high is None else high)
        # Rules between fields, and the structured fields.
        if self.smoothing_kernel % 2 == 0:
            raise OutOfRange(f"smoothing_kernel must be odd (1..255), got {self.smoothing_kernel}")
        _range("hop", self.hop, 1, self.n_fft)
        if self.n_fft % 2:
            raise OutOfRange(f"n_fft must be even (16..16384), got {self.n_fft}")
        for target in self.classes:
            _range(f"weight of class {target.name or target.index}", target.weight,
                   -1000.0, 1000.0)
            if not target.name and target.index is None:
                raise InvalidArgument("a class target needs a name or an index")
        for sel in self.layers:
            if not sel.name:
                raise InvalidArgument("a layer selection has an empty name")
            _range(f"weight of layer {sel.name}", sel.weight, -1000.0, 1000.0)
        return self

    def needs_target(self) -> bool:
        return self.objective in NEEDS_TARGET or self.update in NEEDS_TARGET

    def resolve(self, spec: ModelSpec) -> "DreamParams":
        """Checks layers, channels and classes against `spec`; fills defaults."""
        if spec.domain == "mel" and self.update != "add":
            raise InvalidArgument(f"model {spec.name} is dreamed on its mel spectrogram, where "
                                  f"only update 'add' applies, not {self.update!r}")
        layers = self.layers or (LayerSelection(spec.default_layer),)
        for sel in layers:
            layer = spec.layer(sel.name)
            if layer is None:
                raise NotFound(f"model {spec.name} has no layer {sel.name!r}; "
                               f"layers: {', '.join(spec.layer_names)}")
            for ch in sel.channels:
                if not 0 <= ch < layer.channels:
                    raise OutOfRange(f"channel {ch} of layer {sel.name} is out of range: "
                                     f"it has channels 0..{layer.channels - 1}")
        class_index, classes = self.class_index, self.classes
        if self.objective == "class":
            classes = self._resolve_classes(spec)
            if len(classes) == 1 and classes[0].weight == 1.0:
                class_index = classes[0].index
        defaults = {name: value for name, value in spec.dream_defaults
                    if getattr(self, name) is None}
        if self.follow_input is None and self.objective in ("target_features", "style"):
            # Moving toward a target's sound: the change must be free to leave
            # the input's envelope.
            defaults["follow_input"] = 0.0
        for name in MODEL_DEFAULTS:
            if getattr(self, name) is None and name not in defaults:
                defaults[name] = ENGINE_DEFAULTS[name]
        return replace(self, model=spec.name, layers=tuple(layers), class_index=class_index,
                       classes=classes, **defaults)

    def _resolve_classes(self, spec: ModelSpec) -> tuple[ClassTarget, ...]:
        """The class objective's targets with indices, from `classes`, `class_name`
        or `class_index` (in that order); empty with `auto_class`."""
        layer, names = class_outputs.output_names(spec, self.class_output)
        targets = self.classes
        if not targets and self.class_name:
            targets = (ClassTarget(name=self.class_name),)
        elif not targets and self.class_index is not None:
            targets = (ClassTarget(index=self.class_index),)
        if not targets and not self.auto_class:
            raise InvalidArgument("objective 'class' needs classes (names or indices), "
                                  "class_index, class_name or auto_class")
        resolved = []
        for target in targets:
            index = target.index
            if target.name:
                index = class_outputs.index_of(spec, names, target.name)
            if not 0 <= index < len(names):
                raise OutOfRange(f"class index {index} is out of range: output {layer} of "
                                 f"model {spec.name} has classes 0..{len(names) - 1}")
            resolved.append(ClassTarget(names[index], index, target.weight))
        if self.exclusive and len({t.index for t in resolved}) >= len(names):
            raise InvalidArgument("exclusive needs classes left over to push away from")
        return tuple(resolved)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidArgument(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def _range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:  # a model default, filled by `resolve`
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{name} must be a finite number, got {value}")
    if not low <= value <= high:
        raise OutOfRange(f"{name} must be in {low:g}..{high:g}, got {value:g}")
