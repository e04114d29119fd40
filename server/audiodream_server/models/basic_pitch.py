"""Basic Pitch, Spotify's note transcriber (Bittner et al., ICASSP 2022), as a dreamable model.

Basic Pitch hears 43844 samples at 22.05 kHz (about 2 s) and says, for each of
172 frames (hop 256, 11.6 ms), which of the 88 piano keys sound ("note"),
which start ("onset") and a pitch contour of 264 bins, 3 per semitone
("contour"). It was trained on real recordings of many instruments and voices.
The weights ship in the `basic-pitch` package (Apache-2.0) as `nmp.onnx`; they
are read here by `onnx_reader` (no onnx or onnxruntime needed). In that file
the BatchNorm layers are already folded into the convolutions before them.

Front end: a constant-Q transform made of convolutions (nnAudio's CQT2010v2:
one octave of 36 complex kernels of 256 taps, applied to the signal
downsampled by 2 per octave), for 9 octaves from 27.5 Hz:

    s_0 = x;   s_{k+1} = (h * pad0(s_k, 127))[::2]         h: 256-tap low-pass
    C_k = K * reflect_pad(s_k, 128), stride 256 / 2^k        [B, 36, 172] complex
    C   = last 309 bins of (C_8 | C_7 | ... | C_0), times a per-bin scale
    P   = |C|^2 (computed as re^2 + im^2: no sqrt, so silence has a gradient)
    D   = 10 log10(P + 1e-10);  N = (D - min D) / max(D - min D)    per item
    Q   = a * N + b                                     (folded BatchNorm)
    H   = harmonic stack of Q: Q shifted by round(36 log2 h) bins for
          h = 0.5, 1, 2, ..., 7, first 264 bins          [B, 8, 172, 264]

Network (NCHW here, H = time, W = frequency; "same" padding):

    contour_features = ReLU(conv 3x39 (H))                       8 maps
    contour          = conv 5x5 (contour_features)               1 map -> sigmoid
    note_features    = ReLU(conv 7x7, stride 1x3 (sigmoid(contour)))    32 maps
    note             = conv 7x3 (note_features)                  -> sigmoid
    onset_features   = ReLU(conv 5x5, stride 1x3 (H))                   32 maps
    onset            = conv 3x3 (sigmoid(note) | onset_features) -> sigmoid

The `contour`, `note` and `onset` layers here are the logits (before the
sigmoid), shaped `[B, bins, frames]`: one "channel" per key or contour bin.
"""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import onnx_reader
from .spec import DreamableModel, LayerSpec, ModelSpec

SAMPLE_RATE = 22050
WINDOW = 43844           # 2 s minus one hop, the model's input
HOP = 256
FRAMES = 172
OCTAVES = 9
BINS_PER_OCTAVE = 36
CQT_BINS = 309           # 103 semitones x 3, from 27.5 Hz
CONTOUR_BINS = 264       # 88 keys x 3
KEYS = 88
LOWEST_MIDI = 21         # A0, 27.5 Hz
HARMONICS = (0.5, 1, 2, 3, 4, 5, 6, 7)
DB_FLOOR = 1e-10
# Default step (a fraction of the input's level): at the engine's 0.02 the change
# stayed 17-23 dB below the input in the sound benchmark (inaudible); see README.
STEP_SIZE = 0.08

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}


def note_name(midi: int) -> str:
    """Scientific pitch name of MIDI note `midi` (C4 = 60).

    >>> note_name(21), note_name(60), note_name(108)
    ('A0', 'C4', 'C8')
    """
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def parse_note(text: str) -> int:
    """MIDI number of a note name ("C4", "F#3", "Bb2", case-insensitive) or a number ("60").

    >>> parse_note("C4"), parse_note("bb2"), parse_note(" 69 ")
    (60, 46, 69)

    Raises ValueError with what is allowed.
    """
    text = text.strip()
    if re.fullmatch(r"\d{1,3}", text):
        midi = int(text)
        if not 0 <= midi <= 127:
            raise ValueError(f"MIDI note {midi} is outside 0..127")
        return midi
    match = re.fullmatch(r"([A-Ga-g])([#b]?)(-?\d)", text)
    if match is None:
        raise ValueError(f"{text!r} is not a note: use a name like C4, F#3, Bb2 or a MIDI "
                         "number like 60")
    letter, accidental, octave = match.groups()
    name = letter.upper() + accidental
    name = _FLATS.get(name, name)
    if name not in NOTE_NAMES:  # Cb, Fb, E#, B#: spell them as their neighbours
        raise ValueError(f"{text!r}: unknown spelling; use one of {', '.join(NOTE_NAMES)} "
                         "(or a flat Db Eb Gb Ab Bb) and an octave")
    return NOTE_NAMES.index(name) + 12 * (int(octave) + 1)


KEY_NAMES = tuple(note_name(LOWEST_MIDI + k) for k in range(KEYS))


def contour_name(index: int) -> str:
    """Name of contour bin `index` (0..263): its key, and "+33c"/"+67c" between keys.

    >>> contour_name(0), contour_name(117), contour_name(118)
    ('A0', 'C4', 'C4+33c')
    """
    key, third = divmod(index, 3)
    return KEY_NAMES[key] + ("", "+33c", "+67c")[third]


CONTOUR_NAMES = tuple(contour_name(i) for i in range(CONTOUR_BINS))
# Outputs that classes can be read from, with their class names.
OUTPUTS = {"note": KEY_NAMES, "onset": KEY_NAMES, "contour": CONTOUR_NAMES}


def harmonic_shifts(bins_per_semitone: int = 3) -> tuple[int, ...]:
    """Bins by which harmonic h sits above the fundamental: round(12 b log2 h).

    >>> harmonic_shifts()
    (-36, 0, 36, 57, 72, 84, 93, 101)
    """
    return tuple(int(round(12 * bins_per_semitone * math.log2(h))) for h in HARMONICS)


class HarmonicCQT(nn.Module):
    """Waveform `[B, T]` -> harmonic CQT `[B, 8, frames, 264]` (see the module docstring).

    The constants (kernels, low-pass, per-bin scale, folded BatchNorm) are
    buffers filled from the weights file.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel_real", torch.zeros(BINS_PER_OCTAVE, 1, 256))
        self.register_buffer("kernel_imag", torch.zeros(BINS_PER_OCTAVE, 1, 256))
        self.register_buffer("bias_real", torch.zeros(BINS_PER_OCTAVE))
        self.register_buffer("bias_imag", torch.zeros(BINS_PER_OCTAVE))
        self.register_buffer("lowpass", torch.zeros(1, 1, 256))
        self.register_buffer("bin_scale", torch.ones(CQT_BINS))
        self.register_buffer("norm_scale", torch.ones(()))
        self.register_buffer("norm_shift", torch.zeros(()))
        self.shifts = harmonic_shifts()

    def cqt_power(self, audio: torch.Tensor) -> torch.Tensor:
        """`[B, T]` -> |CQT|^2 `[B, 309, frames]`, lowest bin first."""
        signal = audio.unsqueeze(1)
        octaves = []
        for k in range(OCTAVES):
            hop = HOP >> k
            padded = nn.functional.pad(signal, (128, 128), mode="reflect")
            real = nn.functional.conv1d(padded, self.kernel_real, self.bias_real, stride=hop)
            imag = nn.functional.conv1d(padded, self.kernel_imag, self.bias_imag, stride=hop)
            octaves.append(real.square() + imag.square())
            if k + 1 < OCTAVES:
                signal = nn.functional.conv1d(nn.functional.pad(signal, (127, 127)),
                                              self.lowpass, stride=2)
        frames = min(o.shape[-1] for o in octaves)
        power = torch.cat([o[..., :frames] for o in reversed(octaves)], dim=1)[:, -CQT_BINS:]
        return power * self.bin_scale.square()[:, None]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        db = 10.0 * torch.log10(self.cqt_power(audio) + DB_FLOOR)        # [B, 309, F]
        db = db - db.amin(dim=(1, 2), keepdim=True)
        top = db.amax(dim=(1, 2), keepdim=True)
        norm = torch.where(top == 0, torch.zeros_like(db), db / torch.where(top == 0, 1.0, top))
        q = (norm * self.norm_scale + self.norm_shift).transpose(1, 2)    # [B, F, 309]
        stacked = []
        for shift in self.shifts:
            if shift < 0:
                part = nn.functional.pad(q[..., :shift], (-shift, 0))
            elif shift > 0:
                part = nn.functional.pad(q[..., shift:], (0, shift))
            else:
                part = q
            stacked.append(part[..., :CONTOUR_BINS])
        return torch.stack(stacked, dim=1)                                 # [B, 8, F, 264]


class TimeFoldedConv2d(nn.Conv2d):
    """A stride-1 Conv2d with a short time kernel and a wide frequency kernel
    (here 3 x 39), computed as a Conv1d along frequency:

        y[o, t, f] = b[o] + sum_{i, k, j} W[o, i, k, j] x[i, t + k - p_t, f + j - p_f]
                   = conv1d_f( X_t , W' )[o, f],   X_t[(i, k), f] = x[i, t + k - p_t, f]

    with the k time taps folded into the input channels (W' = W reshaped to
    `[O, I * K, J]`) and every frame a batch item. Same weights, same sums; its
    backward pass ran 3-4x faster than PyTorch's CPU Conv2d for this shape.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, cin, frames, bins = x.shape
        taps, width = self.kernel_size
        pad_t, pad_f = self.padding
        padded = nn.functional.pad(x, (0, 0, pad_t, pad_t))
        stacked = torch.stack([padded[:, :, k:k + frames] for k in range(taps)], dim=2)
        rows = stacked.permute(0, 3, 1, 2, 4).reshape(batch * frames, cin * taps, bins)
        weight = self.weight.reshape(self.out_channels, cin * taps, width)
        y = nn.functional.conv1d(rows, weight, self.bias, padding=pad_f)
        return y.reshape(batch, frames, self.out_channels, -1).permute(0, 2, 1, 3)


def _as_bins(logits: torch.Tensor) -> torch.Tensor:
    """`[B, 1, F, N]` -> `[B, N, F]`: one channel per key or bin, frames last."""
    return logits[:, 0].transpose(1, 2)


class BasicPitch(DreamableModel):
    """Basic Pitch (ICASSP 2022 "nmp" model) on 43844-sample windows at 22.05 kHz.

    Shape: audio `[B, 43844]` -> note logits `[B, 88, 172]`. Layers: hcqt
    `[B, 8, 172, 264]`, contour_features `[B, 8, 172, 264]`, contour `[B, 264, 172]`,
    note_features `[B, 32, 172, 88]`, note `[B, 88, 172]`, onset_features
    `[B, 32, 172, 88]`, onset `[B, 88, 172]`.
    """

    LAYER_ORDER = ("hcqt", "contour_features", "contour", "note_features", "note",
                   "onset_features", "onset")

    def __init__(self, name: str = "basic-pitch", trained: bool = False):
        super().__init__()
        self.frontend = HarmonicCQT()
        self.contour_conv1 = TimeFoldedConv2d(8, 8, (3, 39), padding=(1, 19))
        self.contour_conv2 = nn.Conv2d(8, 1, (5, 5), padding=(2, 2))
        self.note_conv1 = nn.Conv2d(1, 32, (7, 7), stride=(1, 3), padding=(3, 2))
        self.note_conv2 = nn.Conv2d(32, 1, (7, 3), padding=(3, 1))
        self.onset_conv1 = nn.Conv2d(8, 32, (5, 5), stride=(1, 3), padding=(2, 1))
        self.onset_conv2 = nn.Conv2d(33, 1, (3, 3), padding=(1, 1))
        self.stages = nn.ModuleDict()  # not a chain: stage_features runs the graph
        channels = {"hcqt": 8, "contour_features": 8, "contour": CONTOUR_BINS,
                    "note_features": 32, "note": KEYS, "onset_features": 32, "onset": KEYS}
        types = {"hcqt": "CQT"}
        layers = tuple(LayerSpec(n, types.get(n, "Conv2d"), channels[n], HOP)
                       for n in self.LAYER_ORDER)
        self.spec = ModelSpec(
            name=name, sample_rate=SAMPLE_RATE, fixed_input_samples=WINDOW, layers=layers,
            classes=KEY_NAMES, default_layer="contour_features", trained=trained,
            logits_layer="note",
            description="Basic Pitch note transcriber (Spotify, ICASSP 2022): 2 s at 22.05 kHz, "
                        "88 keys A0..C8 per 11.6 ms frame, onsets, a 1/3-semitone pitch contour "
                        "(classes like 'C4'; weights: the basic-pitch package, Apache-2.0)",
            class_activation="sigmoid", class_outputs=tuple(OUTPUTS.items()), note_classes=True,
            dream_defaults=(("step_size", STEP_SIZE),))

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        return self.frontend(audio)

    def stage_features(self, h: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        wanted = set(names)
        deepest = max((self.LAYER_ORDER.index(n) for n in wanted if n in self.LAYER_ORDER),
                      default=len(self.LAYER_ORDER) - 1)
        out: dict[str, torch.Tensor] = {}

        def keep(name: str, value: torch.Tensor) -> bool:
            if name in wanted:
                out[name] = value
            return self.LAYER_ORDER.index(name) >= deepest

        if keep("hcqt", h):
            return out
        contour_features = torch.relu(self.contour_conv1(h))
        if keep("contour_features", contour_features):
            return out
        contour = self.contour_conv2(contour_features)
        if keep("contour", _as_bins(contour)):
            return out
        note_features = torch.relu(self.note_conv1(torch.sigmoid(contour)))
        if keep("note_features", note_features):
            return out
        note = self.note_conv2(note_features)
        if keep("note", _as_bins(note)):
            return out
        onset_features = torch.relu(self.onset_conv1(h))
        if keep("onset_features", onset_features):
            return out
        onset = self.onset_conv2(torch.cat([torch.sigmoid(note), onset_features], dim=1))
        keep("onset", _as_bins(onset))
        return out

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.features(audio, ["note"])["note"]

    def outputs(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """The original's three outputs, probabilities `[B, frames, bins]`:
        "note" and "onset" (88 keys), "contour" (264 bins)."""
        acts = self.features(audio, ["contour", "note", "onset"])
        return {name: torch.sigmoid(acts[name]).transpose(1, 2) for name in OUTPUTS}


# --- weights from the package's ONNX file -------------------------------------------

# Convolution kernels by shape (each is unique in nmp.onnx) -> our module.
CONV_SHAPES = {(8, 8, 3, 39): "contour_conv1", (1, 8, 5, 5): "contour_conv2",
               (32, 1, 7, 7): "note_conv1", (1, 32, 7, 3): "note_conv2",
               (32, 8, 5, 5): "onset_conv1", (1, 33, 3, 3): "onset_conv2"}


def state_from_onnx(graph: onnx_reader.Graph) -> dict[str, torch.Tensor]:
    """This module's state dict from the nmp.onnx graph. Raises ValueError if a
    constant the port needs is missing or ambiguous."""
    t = graph.tensors
    state: dict[str, torch.Tensor] = {}
    cqt_real, cqt_imag, lowpass = set(), set(), set()
    consumers = {name: node for node in graph.nodes for name in node.inputs}
    for node in graph.nodes:
        if node.op_type != "Conv" or node.inputs[1] not in t:
            continue
        weight = t[node.inputs[1]]
        bias = t[node.inputs[2]] if len(node.inputs) > 2 else np.zeros(weight.shape[0], "f4")
        shape = tuple(weight.shape)
        if shape == (BINS_PER_OCTAVE, 1, 1, 256):
            negated = consumers.get(node.outputs[0]) is not None and \
                consumers[node.outputs[0]].op_type == "Neg"
            (cqt_imag if negated else cqt_real).add((node.inputs[1], node.inputs[2]))
        elif shape == (1, 1, 1, 256):
            lowpass.add(node.inputs[1])
        elif shape in CONV_SHAPES:
            module = CONV_SHAPES[shape]
            state[f"{module}.weight"] = torch.from_numpy(weight.copy())
            state[f"{module}.bias"] = torch.from_numpy(bias.copy())
    if len(cqt_real) != 1 or len(cqt_imag) != 1 or len(lowpass) != 1:
        raise ValueError("nmp.onnx: expected one real and one imaginary CQT kernel and one "
                         f"low-pass filter, found {len(cqt_real)}, {len(cqt_imag)}, {len(lowpass)}")
    for part, found in (("real", cqt_real), ("imag", cqt_imag)):
        kernel, bias = next(iter(found))
        state[f"frontend.kernel_{part}"] = torch.from_numpy(t[kernel][:, :, 0].copy())
        state[f"frontend.bias_{part}"] = torch.from_numpy(t[bias].copy())
    state["frontend.lowpass"] = torch.from_numpy(t[next(iter(lowpass))][:, :, 0].copy())
    scales = [t[n.inputs[1]] for n in graph.nodes if n.op_type == "Mul" and
              n.inputs[1] in t and t[n.inputs[1]].shape == (CQT_BINS, 1, 1)]
    if len(scales) != 1:
        raise ValueError("nmp.onnx: the CQT's per-bin scale was not found")
    state["frontend.bin_scale"] = torch.from_numpy(scales[0].reshape(-1).copy())
    folded = {n.op_type: t[n.inputs[1]] for n in graph.nodes
              if n.outputs[0].startswith("model_1/batch_normalization/") and
              n.op_type in ("Mul", "Add") and n.inputs[1] in t}
    if set(folded) != {"Mul", "Add"}:
        raise ValueError("nmp.onnx: the folded input BatchNorm was not found")
    state["frontend.norm_scale"] = torch.tensor(float(folded["Mul"].reshape(-1)[0]))
    state["frontend.norm_shift"] = torch.tensor(float(folded["Add"].reshape(-1)[0]))
    missing = [m for m in CONV_SHAPES.values() if f"{m}.weight" not in state]
    if missing:
        raise ValueError(f"nmp.onnx: no kernel found for {', '.join(missing)}")
    return state


def weights_file() -> Path | None:
    """The installed basic-pitch package's `nmp.onnx`, found without importing the
    package (it needs TensorFlow or onnxruntime); None if not installed."""
    try:
        spec = importlib.util.find_spec("basic_pitch")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for root in list(spec.submodule_search_locations or []):
        path = Path(root) / "saved_models" / "icassp_2022" / "nmp.onnx"
        if path.is_file():
            return path
    return None


def load(name: str = "basic-pitch") -> BasicPitch:
    """Basic Pitch with the package's weights, in eval mode.

    Raises:
        FileNotFoundError: the basic-pitch package is not installed.
        ValueError, RuntimeError: the file does not fit the architecture.
    """
    path = weights_file()
    if path is None:
        raise FileNotFoundError("Basic Pitch weights not found: install the basic-pitch package "
                                "(pip install --no-deps basic-pitch==0.4.0)")
    model = BasicPitch(name, trained=True)
    model.load_state_dict(state_from_onnx(onnx_reader.read(path)), strict=True)
    return model.eval()


def factories() -> dict[str, Callable[[], BasicPitch]]:
    """Registry name -> factory, when the weights file is installed."""
    return {"basic-pitch": load} if weights_file() is not None else {}
