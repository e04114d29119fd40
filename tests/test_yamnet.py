"""YAMNet: the mel front end, conversion from Keras' .h5 layout, loading, dreaming."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from scipy.signal import get_window

from audiodream_server.engine.params import DreamParams
from audiodream_server.engine.pipeline import dream
from audiodream_server.models import yamnet, yamnet_convert
from audiodream_server.models.registry import LoadedModel, check_declaration

h5py = pytest.importorskip("h5py", reason="h5py converts YAMNet's Keras weights")

# A class map with the official header, quoting and a few real names at their
# official indexes (Speech 0, Dog 69); the rest are placeholders.
REAL_NAMES = {0: ("/m/09x0r", "Speech"), 1: ("/m/0ytgt", "Child speech, kid speaking"),
              69: ("/m/0bt9lr", "Dog"), 70: ("/m/05tny_", "Bark")}


def write_class_map(path) -> list[str]:
    names = []
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "mid", "display_name"])
        for i in range(yamnet.NUM_CLASSES):
            mid, name = REAL_NAMES.get(i, (f"/t/x{i}", f"Class {i}"))
            writer.writerow([i, mid, name])
            names.append(name)
    return names


def keras_weights(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Random weights in YAMNet's Keras layout: layer -> {weight: array}.

    Kernels at He scale and BatchNorm statistics near (0, 1) keep activations
    alive through 14 blocks, so the comparison below compares non-trivial numbers.
    """
    rng = np.random.default_rng(seed)
    layers: dict[str, dict[str, np.ndarray]] = {}

    def kernel(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bn(name, c):
        layers[name] = {"beta": (0.1 * rng.standard_normal(c)).astype(np.float32),
                        "moving_mean": (0.1 * rng.standard_normal(c)).astype(np.float32),
                        "moving_variance": rng.uniform(0.5, 1.5, c).astype(np.float32)}

    cin = 1
    for i, (kind, _, cout) in enumerate(yamnet.BLOCKS, start=1):
        if kind == "conv":
            layers[f"layer{i}/conv"] = {"kernel": kernel((3, 3, cin, cout), 9 * cin)}
            bn(f"layer{i}/conv/bn", cout)
        else:
            layers[f"layer{i}/depthwise_conv"] = {"depthwise_kernel": kernel((3, 3, cin, 1), 9)}
            bn(f"layer{i}/depthwise_conv/bn", cin)
            layers[f"layer{i}/pointwise_conv"] = {"kernel": kernel((1, 1, cin, cout), cin)}
            bn(f"layer{i}/pointwise_conv/bn", cout)
        cin = cout
    layers["logits"] = {"kernel": kernel((1024, yamnet.NUM_CLASSES), 1024),
                        "bias": (0.1 * rng.standard_normal(yamnet.NUM_CLASSES)).astype(np.float32)}
    return layers


def write_keras_h5(path, layers) -> None:
    """As Keras 2 `save_weights` does: a group per layer (slashes nest), datasets at
    `<layer>/<layer>/<weight>:0`, and the names in `layer_names`/`weight_names`."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layers]
        for name, weights in layers.items():
            group = f.require_group(name)
            group.attrs["weight_names"] = [f"{name}/{w}:0".encode() for w in weights]
            for w, value in weights.items():
                group.create_dataset(f"{name}/{w}:0", data=value)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(Keras layers, class names, card path, loaded model)."""
    folder = tmp_path_factory.mktemp("yamnet")
    layers = keras_weights()
    write_keras_h5(folder / "yamnet.h5", layers)
    names = write_class_map(folder / "yamnet_class_map.csv")
    code = yamnet_convert.main([str(folder / "yamnet.h5"), str(folder / "yamnet_class_map.csv"),
                                "--out", str(folder / "models" / "yamnet")])
    assert code == 0
    card = folder / "models" / "yamnet.json"
    return layers, names, card, yamnet_convert.load(card)


# ---- an independent numpy YAMNet, straight from the Keras arrays -------------------

def np_log_mel(audio: np.ndarray) -> np.ndarray:
    """`[T]` -> `[frames, 64]`: scipy's periodic Hann, numpy's FFT, the mel matrix."""
    count = 1 + (audio.size - 400) // 160
    frames = np.stack([audio[160 * t:160 * t + 400] for t in range(count)])
    spectrum = np.abs(np.fft.rfft(frames * get_window("hann", 400), n=512))
    return np.log(spectrum @ yamnet.mel_matrix() + 0.001)


def np_conv_same(x: np.ndarray, kernel: np.ndarray, stride: int, depthwise: bool) -> np.ndarray:
    """Keras "same" 3 x 3 convolution of `[H, W, C]` by a Keras kernel `[3, 3, C, D]`
    (depthwise: `[3, 3, C, 1]`, one filter per channel)."""
    h, w, _ = x.shape
    out_h, out_w = -(-h // stride), -(-w // stride)
    pad_h = max((out_h - 1) * stride + 3 - h, 0)
    pad_w = max((out_w - 1) * stride + 3 - w, 0)
    x = np.pad(x, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = 0.0
    for i in range(3):
        for j in range(3):
            patch = x[i:i + stride * out_h:stride, j:j + stride * out_w:stride]
            out = out + (patch * kernel[i, j, :, 0] if depthwise else patch @ kernel[i, j])
    return out


def np_bn_relu(x: np.ndarray, bn: dict[str, np.ndarray]) -> np.ndarray:
    y = (x - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-4) + bn["beta"]
    return np.maximum(y, 0.0)


def np_yamnet(audio: np.ndarray, layers) -> dict[str, np.ndarray]:
    """Activations `[H, W, C]` of every block and the logits of one patch, in float64."""
    x = np_log_mel(audio.astype(np.float64))[:, :, None]
    out = {}
    for i, (kind, stride, _) in enumerate(yamnet.BLOCKS, start=1):
        name = f"layer{i}"
        if kind == "conv":
            x = np_bn_relu(np_conv_same(x, layers[f"{name}/conv"]["kernel"], stride, False),
                           layers[f"{name}/conv/bn"])
        else:
            x = np_bn_relu(np_conv_same(x, layers[f"{name}/depthwise_conv"]["depthwise_kernel"],
                                        stride, True), layers[f"{name}/depthwise_conv/bn"])
            x = np_bn_relu(x @ layers[f"{name}/pointwise_conv"]["kernel"][0, 0],
                           layers[f"{name}/pointwise_conv/bn"])
        out[name] = x
    out["logits"] = x.mean(axis=(0, 1)) @ layers["logits"]["kernel"] + layers["logits"]["bias"]
    return out


def patch(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(yamnet.PATCH_SAMPLES) / yamnet.SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
            ).astype(np.float32)


# ---- the front end -------------------------------------------------------------------

def test_mel_filters_are_tensorflows_triangles():
    w = yamnet.mel_matrix()
    freqs = np.linspace(0, 8000, 257)
    mel = 1127.0 * np.log(1 + freqs / 700.0)
    edges = np.linspace(1127.0 * np.log(1 + 125 / 700.0),
                        1127.0 * np.log(1 + 7500 / 700.0), 66)
    # Triangles equally spaced in mel add up to 1 between the first and last centre
    # (each bin lies on one rising and one falling edge) ...
    inside = (mel >= edges[1]) & (mel <= edges[-2])
    np.testing.assert_allclose(w[inside].sum(axis=1), 1.0, atol=1e-9)
    # ... and nothing lies outside 125..7500 Hz.
    assert not w[(freqs <= 125) | (freqs >= 7500)].any()
    # band 10 peaks at the bin nearest its centre (in mel), unnormalised
    peak = int(np.argmax(w[:, 10]))
    assert peak == int(np.argmin(np.abs(mel - edges[11])))
    assert 0.5 < w[peak, 10] <= 1.0


def test_log_mel_matches_numpy_reference():
    audio = patch()
    ours = yamnet.LogMel()(torch.from_numpy(audio)[None])[0, 0].numpy()
    assert ours.shape == (96, 64)
    # float32 FFT and matrix product against float64: measured 4e-6 in the log
    # domain (log turns relative error into absolute error, largest near the
    # 0.001 floor). A symmetric instead of periodic Hann window is off by 0.06.
    np.testing.assert_allclose(ours, np_log_mel(audio.astype(np.float64)), atol=1e-4)


def test_same_padding_pads_after_on_stride_two():
    conv = yamnet.SameConv2d(1, 1, 3, stride=2, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0  # picks the top-left tap: x[2 i + 0 - before]
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    # before = 0 (Keras) -> out[0, 0] = x[0, 0]; PyTorch's padding=1 would give 0
    assert conv(x)[0, 0].tolist() == x[0, 0, ::2, ::2].tolist()


# ---- conversion and loading ----------------------------------------------------------

def test_card_describes_the_model(converted):
    _, names, card_path, model = converted
    card = json.loads(card_path.read_text())
    assert card["arch"] == "yamnet" and card["sample_rate"] == 16000 and card["trained"]
    assert card["classes"] == names and card["classes"][1] == "Child speech, kid speaking"
    assert card["default_layer"] == "layer10" and card["weights"] == "yamnet.safetensors"
    assert len(card["source"]["weights_sha256"]) == 64
    assert model.spec.name == "yamnet" and model.spec.trained


def test_every_tensor_lands_where_it_belongs(converted):
    layers, _, _, model = converted
    state = model.state_dict()
    # depthwise kernel [3, 3, C, 1] -> [C, 1, 3, 3]: channel c, tap (i, j)
    dw = layers["layer5/depthwise_conv"]["depthwise_kernel"]
    assert state["stages.layer5.depthwise.weight"][77, 0, 2, 1] == torch.tensor(dw[2, 1, 77, 0])
    # pointwise [1, 1, C, D] -> [D, C, 1, 1]
    pw = layers["layer9/pointwise_conv"]["kernel"]
    assert state["stages.layer9.pointwise.weight"][300, 12, 0, 0] == torch.tensor(pw[0, 0, 12, 300])
    # BatchNorm: moving mean/variance, beta; gamma is 1
    bn = layers["layer12/pointwise_conv/bn"]
    assert torch.equal(state["stages.layer12.pointwise_bn.running_mean"],
                       torch.from_numpy(bn["moving_mean"]))
    assert torch.equal(state["stages.layer12.pointwise_bn.running_var"],
                       torch.from_numpy(bn["moving_variance"]))
    assert torch.equal(state["stages.layer12.pointwise_bn.bias"], torch.from_numpy(bn["beta"]))
    assert torch.equal(state["stages.layer12.pointwise_bn.weight"], torch.ones(512))
    # Dense [1024, N] -> Linear [N, 1024]
    assert torch.equal(state["stages.logits.linear.weight"],
                       torch.from_numpy(layers["logits"]["kernel"].T.copy()))


def test_forward_equals_independent_numpy_yamnet(converted):
    layers, _, _, model = converted
    audio = patch()
    ref = np_yamnet(audio, layers)
    names = ["layer1", "layer2", "layer7", "layer14", "logits"]
    with torch.no_grad():
        acts = model.features(torch.from_numpy(audio)[None], names)
    for name in names[:-1]:
        h, w, c = ref[name].shape
        expected = ref[name].transpose(2, 0, 1).reshape(c, h * w)  # [C, T * M], time-major
        got = acts[name][0].double().numpy()
        assert got.shape == expected.shape
        assert expected.std() > 0.05  # the random network has not gone silent
        # float32 against float64 through up to 27 convolutions: measured 1e-6 of
        # the activations' range at layer14. A misplaced tensor is wrong by 0.1 to
        # 0.8 of it (kernel rows and columns swapped in one depthwise layer: 0.28;
        # PyTorch's symmetric padding on the stride-2 layers: 0.78).
        assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max(), name
    np.testing.assert_allclose(acts["logits"][0].double().numpy(), ref["logits"],
                               atol=1e-4 * np.abs(ref["logits"]).max())


def test_declares_layers_and_class_names(converted):
    _, _, _, model = converted
    check_declaration(model)
    spec = model.spec
    assert spec.fixed_input_samples == 15600 and spec.sample_rate == 16000
    assert spec.layer_names == ["logmel"] + [f"layer{i}" for i in range(1, 15)] + ["logits"]
    assert [spec.layer(n).channels for n in ("logmel", "layer1", "layer14", "logits")] \
        == [64, 32, 1024, 521]
    assert spec.logits_layer == "logits"
    resolved = DreamParams(objective="class", class_name="Dog").resolve(spec)
    assert resolved.class_index == 69


def test_input_gradient_is_finite_and_nonzero(converted):
    _, _, _, model = converted
    x = torch.from_numpy(patch())[None].requires_grad_(True)
    for layer in ("logmel", "layer10", "logits"):
        x.grad = None
        act = model.features(x, [layer])[layer]
        (act[:, 69] if layer == "logits" else act.pow(2).mean()).sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0, layer


def test_class_dream_raises_the_class_logit(converted):
    _, _, _, model = converted
    loaded = LoadedModel(model.requires_grad_(False), torch.device("cpu"))
    audio = patch()[None, :16000]  # two overlapping windows
    result = dream(audio, 16000, loaded, DreamParams(objective="class", class_name="Dog",
                                                     iterations=3, step_size=0.02))
    assert np.isfinite(result.audio).all() and result.audio.shape == audio.shape
    assert result.loss[-1] > result.loss[0]


def test_refuses_a_file_that_is_not_yamnet(tmp_path):
    layers = keras_weights()
    del layers["layer3/pointwise_conv"]
    layers["extra"] = {"kernel": np.zeros(3, np.float32)}
    write_keras_h5(tmp_path / "bad.h5", layers)
    with pytest.raises(ValueError, match="missing .*layer3/pointwise_conv/kernel.*extra/kernel"):
        yamnet_convert.keras_to_state(yamnet_convert.read_h5(tmp_path / "bad.h5"))


def test_refuses_class_map_of_other_length_and_a_pickle(tmp_path, converted):
    layers, _, card_path, _ = converted
    write_keras_h5(tmp_path / "yamnet.h5", layers)
    (tmp_path / "map.csv").write_text("index,mid,display_name\n0,/m/x,Speech\n")
    code = yamnet_convert.main([str(tmp_path / "yamnet.h5"), str(tmp_path / "map.csv"),
                                "--out", str(tmp_path / "y")])
    assert code == 2
    # a card whose weight file is a pickle is refused, never unpickled
    card = json.loads(card_path.read_text())
    torch.save({"x": torch.zeros(1)}, tmp_path / "evil.safetensors")
    (tmp_path / "evil.json").write_text(json.dumps(dict(card, weights="evil.safetensors")))
    with pytest.raises(ValueError, match="not a readable safetensors"):
        yamnet_convert.load(tmp_path / "evil.json")


@pytest.mark.parametrize("whole_model", [False, True])
def test_accepts_model_garden_layout_and_whole_model_save(tmp_path, converted, whole_model):
    """Today's Model Garden yamnet.py leaves the final Dense unnamed: Keras calls it
    `dense` (`dense/dense/kernel:0`). `model.save` nests the layers under
    `model_weights/`. Both convert to the same weights as the official layout."""
    layers, _, _, model = converted
    garden = {("dense" if name == "logits" else name): weights for name, weights in layers.items()}
    path = tmp_path / "garden.h5"
    if whole_model:
        with h5py.File(path, "w") as f:
            group = f.create_group("model_weights")
            for name, weights in garden.items():
                for w, value in weights.items():
                    group.create_dataset(f"{name}/{name}/{w}:0", data=value)
            f.create_dataset("optimizer_weights/iterations:0", data=np.zeros(()))
    else:
        write_keras_h5(path, garden)
    names = write_class_map(tmp_path / "map.csv")
    assert yamnet_convert.main([str(path), str(tmp_path / "map.csv"),
                                "--out", str(tmp_path / "m" / "garden")]) == 0
    other = yamnet_convert.load(tmp_path / "m" / "garden.json")
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    assert list(other.spec.classes) == names
