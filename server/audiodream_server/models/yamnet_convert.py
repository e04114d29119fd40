"""YAMNet weights: the official Keras `yamnet.h5` -> safetensors + model card, and back.

`audiodream convert-yamnet yamnet.h5 yamnet_class_map.csv --out MODELS_DIR/yamnet`
writes `MODELS_DIR/yamnet.safetensors` (the PyTorch state dict of `yamnet.YAMNet`)
and `MODELS_DIR/yamnet.json` (the model card); `load(card)` rebuilds the model.
The user supplies both input files (the project cannot ship or fetch them).

The .h5 is Keras' weight format: one HDF5 group per layer, named after the
layer, holding datasets named `<layer>/<weight>:0`, so a kernel sits at
`layer1/conv/layer1/conv/kernel:0` (under `model_weights/` when the whole model
was saved). YAMNet's layers and what they hold, Keras -> PyTorch:

    layer1/conv             kernel [3, 3, 1, 32]           -> conv.weight [32, 1, 3, 3]
    layerN/depthwise_conv   depthwise_kernel [3, 3, C, 1]  -> depthwise.weight [C, 1, 3, 3]
    layerN/pointwise_conv   kernel [1, 1, C, D]            -> pointwise.weight [D, C, 1, 1]
    <conv>/bn               beta, moving_mean, moving_variance [C]
                                              -> bias, running_mean, running_var; weight = 1
    logits                  kernel [1024, N], bias [N]     -> linear.weight [N, 1024], bias

Two layouts of the final layer are accepted: the official `logits` and the
unnamed Dense of today's Model Garden `yamnet.py`, which Keras calls `dense`
(`dense/dense/kernel:0`; `dense_1`... if other unnamed layers came first):
the one 2-D `<layer>/kernel` of shape [1024, N] that is not YAMNet's own.

Keras kernels are `[kh, kw, in, out]`; PyTorch's are `[out, in, kh, kw]`, and a
depthwise kernel's `in` is PyTorch's `out` (one filter per channel, groups = C).
Conversion is strict: every tensor the model needs must be in the file with the
right shape, and every dataset in the file must be used.

The class map is YAMNet's CSV `index,mid,display_name` (names may be quoted and
contain commas); the display names become the class names the `class` objective
accepts ("Dog").

Nothing here unpickles: the .h5 is read with h5py, the output is safetensors.
h5py is needed only to convert (import deferred); loading needs safetensors only.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import yamnet
from .spec import DreamableModel

ARCH = "yamnet"
CARD_SUFFIX = ".json"
WEIGHTS_SUFFIX = ".safetensors"
BN_FIELDS = (("beta", "bias"), ("moving_mean", "running_mean"),
             ("moving_variance", "running_var"))


def keras_layout(classes: int = yamnet.NUM_CLASSES) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Keras weight `layer/weight` -> (PyTorch state-dict key, Keras shape), in file order.

    >>> layout = keras_layout()
    >>> layout["layer2/depthwise_conv/depthwise_kernel"]
    ('stages.layer2.depthwise.weight', (3, 3, 32, 1))
    >>> len(layout)  # 4 for layer1, 8 for each of 13 separable blocks, 2 for logits
    110
    """
    k = yamnet.KERNEL
    out: dict[str, tuple[str, tuple[int, ...]]] = {}

    def bn(keras: str, torch_prefix: str, channels: int) -> None:
        for keras_field, torch_field in BN_FIELDS:
            out[f"{keras}/{keras_field}"] = (f"{torch_prefix}.{torch_field}", (channels,))

    cin = 1
    for i, (kind, _, cout) in enumerate(yamnet.BLOCKS, start=1):
        name, prefix = f"layer{i}", f"stages.layer{i}"
        if kind == "conv":
            out[f"{name}/conv/kernel"] = (f"{prefix}.conv.weight", (k, k, cin, cout))
            bn(f"{name}/conv/bn", f"{prefix}.bn", cout)
        else:
            out[f"{name}/depthwise_conv/depthwise_kernel"] = (
                f"{prefix}.depthwise.weight", (k, k, cin, 1))
            bn(f"{name}/depthwise_conv/bn", f"{prefix}.depthwise_bn", cin)
            out[f"{name}/pointwise_conv/kernel"] = (
                f"{prefix}.pointwise.weight", (1, 1, cin, cout))
            bn(f"{name}/pointwise_conv/bn", f"{prefix}.pointwise_bn", cout)
        cin = cout
    out["logits/kernel"] = ("stages.logits.linear.weight", (yamnet.EMBEDDING, classes))
    out["logits/bias"] = ("stages.logits.linear.bias", (classes,))
    return out


def read_h5(path: str | Path) -> dict[str, np.ndarray]:
    """Every dataset of a Keras weight file, keyed `layer/weight` (e.g. `logits/bias`).

    Keras stores weight `w` of layer `L` at `L/L/w:0`; this undoes the doubling
    and the `:0`. Other datasets keep their full path, so a caller can tell
    which ones it did not expect.
    """
    import h5py  # only conversion needs it

    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f

        def visit(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                arrays[_weight_key(name)] = np.asarray(obj[()])

        root.visititems(visit)
    return arrays


def _weight_key(path: str) -> str:
    """`layer1/conv/layer1/conv/kernel:0` -> `layer1/conv/kernel`."""
    if path.endswith(":0"):
        path = path[:-2]
    parts = path.split("/")
    for cut in range(1, len(parts) // 2 + 1):
        layer = parts[:cut]
        if parts[cut:2 * cut] == layer and len(parts) == 2 * cut + 1:
            return "/".join(layer + parts[-1:])
    return path


def name_logits(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Renames an unnamed final Dense (`dense/kernel`, `dense/bias`; see the module
    docstring) to `logits/...`; other layouts pass unchanged.

    >>> sorted(name_logits({"dense/kernel": np.zeros((1024, 3)), "dense/bias": np.zeros(3)}))
    ['logits/bias', 'logits/kernel']
    """
    if "logits/kernel" in arrays:
        return arrays
    found = [key[:-len("/kernel")] for key, value in arrays.items()
             if key.endswith("/kernel") and not key.startswith("layer") and np.ndim(value) == 2
             and np.shape(value)[0] == yamnet.EMBEDDING]
    if len(found) != 1:
        return arrays
    layer = found[0]
    renamed = dict(arrays)
    for weight in ("kernel", "bias"):
        if f"{layer}/{weight}" in renamed:
            renamed[f"logits/{weight}"] = renamed.pop(f"{layer}/{weight}")
    return renamed


def keras_to_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """YAMNet's Keras arrays (keyed as `read_h5` gives them) -> a `YAMNet` state dict.

    The class count is the width of `logits/kernel`.
    Raises:
        ValueError: a tensor missing, of the wrong shape, not finite, or left over.
    """
    arrays = name_logits(arrays)
    if "logits/kernel" not in arrays or np.ndim(arrays["logits/kernel"]) != 2:
        raise ValueError("not a YAMNet weight file: no 2-D logits/kernel (nor an unnamed "
                         "dense layer of 1024 inputs)")
    layout = keras_layout(int(arrays["logits/kernel"].shape[1]))
    missing = [key for key in layout if key not in arrays]
    unexpected = sorted(arrays.keys() - layout.keys())
    if missing or unexpected:
        raise ValueError(f"not YAMNet's layers: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}")
    state: dict[str, torch.Tensor] = {}
    for key, (torch_key, shape) in layout.items():
        value = np.asarray(arrays[key], dtype=np.float32)
        if value.shape != shape:
            raise ValueError(f"{key} has shape {value.shape}, YAMNet needs {shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"{key} holds NaN or infinite values")
        if value.ndim == 4:
            # [kh, kw, in, out] -> [out, in, kh, kw]; a depthwise kernel's channel
            # axis is `in` (its `out` is the multiplier 1): -> [C, 1, kh, kw].
            order = (2, 3, 0, 1) if key.endswith("depthwise_kernel") else (3, 2, 0, 1)
            value = value.transpose(order)
        elif value.ndim == 2:  # Dense [in, out] -> Linear [out, in]
            value = value.T
        state[torch_key] = torch.from_numpy(np.ascontiguousarray(value))
        if torch_key.endswith(".running_mean"):
            prefix = torch_key[:-len("running_mean")]
            # Keras BatchNorm(scale=False) has no gamma: it is 1.
            state[prefix + "weight"] = torch.ones(shape[0])
            state[prefix + "num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return state


def read_class_map(path: str | Path) -> list[str]:
    """Display names from YAMNet's class map CSV (`index,mid,display_name`), by index.

    Raises:
        ValueError: wrong header, indexes not 0, 1, 2, ..., or a name empty or repeated
            (the `class` objective looks classes up by name).
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["index", "mid", "display_name"]:
        raise ValueError(f"{path}: expected the header index,mid,display_name")
    names: list[str] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 3 or row[0].strip() != str(len(names)):
            raise ValueError(f"{path}:{line}: expected '{len(names)},<mid>,<name>', got {row}")
        name = row[2].strip()
        if not name:
            raise ValueError(f"{path}:{line}: empty display name")
        names.append(name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: class names used twice: {', '.join(repeated[:5])}")
    return names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(h5_path: str | Path, class_map: str | Path, out_prefix: str | Path,
            name: str = "", default_layer: str = yamnet.DEFAULT_LAYER) -> tuple[Path, Path]:
    """Writes `out_prefix.safetensors` and `out_prefix.json` from the official files.

    Args:
        h5_path: Keras weights (`yamnet.h5`).
        class_map: `yamnet_class_map.csv`.
        out_prefix: path without suffix (`models/yamnet`).
        name: model name in the registry [the prefix's file name].
        default_layer: layer dreamed when a request names none.
    Returns:
        (weights path, card path).
    Raises:
        ValueError: the files do not describe YAMNet, or disagree on the class count.
    """
    from safetensors.torch import save_file

    h5_path, class_map, out_prefix = Path(h5_path), Path(class_map), Path(out_prefix)
    classes = read_class_map(class_map)
    state = keras_to_state(read_h5(h5_path))
    width = state["stages.logits.linear.bias"].shape[0]
    if width != len(classes):
        raise ValueError(f"{h5_path} has {width} classes, {class_map} names {len(classes)}")
    name = name or out_prefix.name
    model = yamnet.YAMNet(classes, name=name, default_layer=default_layer, trained=True)
    if default_layer not in model.spec.layer_names:
        raise ValueError(f"default layer {default_layer!r} is not one of "
                         f"{', '.join(model.spec.layer_names)}")
    model.load_state_dict(state, strict=True)  # proves the file fits before writing
    weights = out_prefix.with_name(out_prefix.name + WEIGHTS_SUFFIX)
    card_path = out_prefix.with_name(out_prefix.name + CARD_SUFFIX)
    card = {
        "name": name,
        "arch": ARCH,
        "sample_rate": yamnet.SAMPLE_RATE,
        "fixed_input_samples": yamnet.PATCH_SAMPLES,
        "classes": classes,
        "trained": True,
        "default_layer": default_layer,
        "description": model.spec.description,
        "weights": weights.name,
        "source": {
            "model": "YAMNet, TensorFlow Model Garden (research/audioset/yamnet), "
                     "trained on AudioSet",
            "weights_file": h5_path.name,
            "weights_sha256": _sha256(h5_path),
            "class_map_file": class_map.name,
            "class_map_sha256": _sha256(class_map),
            "converted_by": "audiodream convert-yamnet",
        },
    }
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights),
              metadata={"arch": ARCH, "name": name})
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return weights, card_path


def is_yamnet_card(card: object) -> bool:
    """True for a card this module loads (`"arch": "yamnet"`)."""
    return isinstance(card, dict) and card.get("arch") == ARCH


def read_card(card_path: str | Path) -> dict:
    """Reads and checks a YAMNet model card.

    Raises:
        ValueError: unreadable, not a YAMNet card, or fields missing or wrong.
    """
    card_path = Path(card_path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{card_path}: not a readable JSON model card ({exc})") from None
    if not is_yamnet_card(card):
        raise ValueError(f"{card_path}: not a YAMNet card (arch must be {ARCH!r})")
    if not isinstance(card.get("name"), str) or not card["name"]:
        raise ValueError(f"{card_path}: name must be a non-empty string")
    if card.get("sample_rate") != yamnet.SAMPLE_RATE:
        raise ValueError(f"{card_path}: sample_rate must be {yamnet.SAMPLE_RATE}")
    classes = card.get("classes")
    if (not isinstance(classes, list) or not classes
            or not all(isinstance(c, str) and c for c in classes)
            or len(set(classes)) != len(classes)):
        raise ValueError(f"{card_path}: classes must be a list of distinct non-empty strings")
    weights = card.get("weights", card_path.stem + WEIGHTS_SUFFIX)
    if not isinstance(weights, str) or Path(weights).name != weights:
        raise ValueError(f"{card_path}: weights must be a file name beside the card")
    return card


def load(card_path: str | Path) -> DreamableModel:
    """Builds the YAMNet a card describes and loads its safetensors weights strictly.

    Returns:
        the model in eval mode, `spec.trained` True.
    Raises:
        ValueError: card invalid; weight file missing, not safetensors, or not
            fitting (missing, unexpected or differently shaped tensors).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card_path = Path(card_path)
    card = read_card(card_path)
    weights = card_path.parent / card.get("weights", card_path.stem + WEIGHTS_SUFFIX)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{weights}: not a readable safetensors file ({exc})") from None
    model = yamnet.YAMNet(card["classes"], name=card["name"],
                          default_layer=card.get("default_layer") or yamnet.DEFAULT_LAYER,
                          description=card.get("description", ""), trained=True)
    if model.spec.default_layer not in model.spec.layer_names:
        raise ValueError(f"{card_path}: default_layer {model.spec.default_layer!r} is not a "
                         f"layer of YAMNet")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{weights}: does not fit YAMNet with {len(card['classes'])} "
                         f"classes: {exc}") from None
    return model.eval()


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiodream convert-yamnet",
        description="Convert the official YAMNet Keras weights (yamnet.h5) and class map "
                    "(yamnet_class_map.csv) to a model the server loads from a models folder.")
    parser.add_argument("h5", help="YAMNet's Keras weight file (yamnet.h5)")
    parser.add_argument("class_map", help="YAMNet's class map (yamnet_class_map.csv)")
    parser.add_argument("--out", required=True, metavar="MODELS_DIR/NAME",
                        help="output prefix: writes NAME.safetensors and NAME.json")
    parser.add_argument("--name", default="", help="model name [NAME of --out]")
    parser.add_argument("--default-layer", default=yamnet.DEFAULT_LAYER,
                        help=f"layer dreamed when a request names none [{yamnet.DEFAULT_LAYER}]")
    return parser


def main(argv: Sequence[str]) -> int:
    """`audiodream convert-yamnet H5 CSV --out PREFIX`; returns an exit code."""
    args = get_parser().parse_args(list(argv))
    out = Path(args.out)
    if not out.name or out.suffix in (CARD_SUFFIX, WEIGHTS_SUFFIX):
        print("audiodream convert-yamnet: --out is a prefix like models/yamnet (no suffix)",
              file=sys.stderr)
        return 2
    try:
        weights, card = convert(args.h5, args.class_map, out, name=args.name,
                                default_layer=args.default_layer)
    except ImportError as exc:
        print(f"audiodream convert-yamnet: {exc}; install h5py to convert", file=sys.stderr)
        return 2
    except (ValueError, OSError, KeyError) as exc:
        print(f"audiodream convert-yamnet: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {weights} and {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
