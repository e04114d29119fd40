"""Reference outputs of the original musicnn and Basic Pitch, for the parity test.

Run by hand, not in CI: it needs TensorFlow 2.15 (musicnn's own graph and
checkpoint), onnxruntime and onnx (Basic Pitch's own nmp.onnx) and librosa
(musicnn's front end), which the server never needs. Make an environment of
its own, outside the project:

    python3 -m venv ~/music-refenv
    ~/music-refenv/bin/pip install tensorflow-cpu==2.15.1 onnxruntime onnx==1.16.2 "numpy<2" librosa
    # (a newer onnx needs an ml_dtypes newer than TensorFlow 2.15 accepts)
    ~/music-refenv/bin/pip install --no-deps musicnn==0.1.0 basic-pitch==0.4.0
    ~/music-refenv/bin/python scripts/music_parity.py tests/data/music_parity.npz

It writes a small .npz fixture: the fixed inputs' reference front end
(librosa's log-mel; the CQT after the input BatchNorm), a middle layer
(musicnn cnn2; Basic Pitch's contour features) and the final outputs, plus
librosa's mel filterbank. `tests/test_music_models.py` compares our PyTorch
ports against it.

    python scripts/music_parity.py --check-notes IN.wav OUT.wav C4,E4,G4
scores two sound files with the original Basic Pitch (onnxruntime) and prints
the named notes' mean activations in each: the cross-check of a dream toward a
chord made with our port.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The fixture keeps every 4th frame of the time-frequency arrays and every 16th
# of Basic Pitch's contour features (8 maps x 264 bins), to stay small.
FRAME_STEP, FEATURE_STEP = 4, 16


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"the {name} package is not installed here (pip install --no-deps ...)")
    return Path(list(spec.submodule_search_locations)[0])


def fixed_signal(rate: int, length: int, kind: int) -> np.ndarray:
    """Fixed, formula-made inputs (no random generator, so any numpy gives them).

    kind 0: a C major triad with harmonics, notes entering one after another;
    kind 1: a gliding tone over a pulsing low note, with a little deterministic buzz.
    """
    t = np.arange(length, dtype=np.float64) / rate
    x = np.zeros(length)
    if kind == 0:
        for i, f in enumerate((261.63, 329.63, 392.0)):
            envelope = np.clip((t - 0.4 * i) * 20, 0, 1) * np.exp(-0.6 * np.maximum(t - 0.4 * i, 0))
            for h in range(1, 6):
                x += envelope * np.sin(2 * np.pi * f * h * t) / h ** 1.5
    else:
        glide = 2 * np.pi * np.cumsum(220.0 * 2 ** (t / 2.0)) / rate
        x += 0.6 * np.sin(glide) + 0.2 * np.sin(3 * glide)
        x += 0.5 * np.sin(2 * np.pi * 82.41 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
        x += 0.05 * np.sign(np.sin(2 * np.pi * 1234.5 * t + 3 * np.sin(2 * np.pi * 7 * t)))
    return (0.4 * x / np.abs(x).max()).astype(np.float32)


# --- musicnn ------------------------------------------------------------------------

def musicnn_reference(out: dict) -> None:
    import librosa
    import tensorflow.compat.v1 as tf

    tf.disable_eager_execution()
    folder = package_dir("musicnn")
    source = (folder / "models.py").read_text()
    # The package's models.py is TF 1.x code; under TF 2 it runs through compat.v1.
    source = source.replace("import tensorflow as tf", "import tensorflow.compat.v1 as tf")
    source = source.replace("tf.compat.v1.", "tf.")
    namespace: dict = {}
    exec(compile(source, str(folder / "models.py"), "exec"), namespace)  # noqa: S102

    out["musicnn_mel_filterbank"] = librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)
    for variant, classes in (("MTT_musicnn", 50), ("MSD_musicnn", 50)):
        graph = tf.Graph()
        with graph.as_default():
            x = tf.placeholder(tf.float32, [None, 187, 96])
            training = tf.placeholder(tf.bool)
            with tf.name_scope("model"):
                outputs = namespace["define_model"](x, training, variant, classes)
            logits, cnn2 = outputs[0], outputs[4]
            sess = tf.Session(graph=graph)
            tf.train.Saver().restore(sess, str(folder / variant) + "/")
        for kind in (0, 1):
            audio = fixed_signal(16000, 48000, kind)
            # The front end exactly as the package's extractor computes it (librosa
            # of 2019: reflect padding), float16 rounding included.
            mel = librosa.feature.melspectrogram(y=audio, sr=16000, hop_length=256, n_fft=512,
                                                 n_mels=96, pad_mode="reflect").T
            logmel = np.log10(10000 * mel.astype(np.float16) + 1)[:187].astype(np.float32)
            got_logits, got_cnn2 = sess.run([logits, cnn2], {x: logmel[None], training: False})
            key = f"{variant}_{kind}"
            out[f"{key}_audio_kind"] = np.int32(kind)
            out[f"{key}_logmel"] = logmel[::FRAME_STEP]            # [47, 96]
            out[f"{key}_cnn2"] = got_cnn2[0, ::FRAME_STEP, :, 0]    # [47, 64]
            out[f"{key}_logits"] = got_logits[0]
            top = np.argsort(-got_logits[0])[:3]
            print(f"{variant} input {kind}: top tags {top.tolist()}")
        sess.close()


# --- Basic Pitch --------------------------------------------------------------------

def basic_pitch_session(intermediate: bool):
    import onnx
    import onnxruntime

    path = package_dir("basic_pitch") / "saved_models" / "icassp_2022" / "nmp.onnx"
    model = onnx.load(str(path))
    names = {"hcqt_in": "model_1/batch_normalization/FusedBatchNormV3",
             "contour_features": "Relu__38:0"}
    extra = {}
    if intermediate:
        for node in model.graph.node:
            for output in node.outputs if hasattr(node, "outputs") else node.output:
                for key, prefix in names.items():
                    if output.startswith(prefix) and (node.op_type == "Add" or key != "hcqt_in"):
                        extra[key] = output
        for output in extra.values():
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(output))
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session, extra


def basic_pitch_outputs(session, extra: dict, audio: np.ndarray) -> dict:
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: audio[None, :, None]})
    by_name = dict(zip(names, values))
    result = {}
    for o in names:
        value = by_name[o]
        if value.ndim == 3 and value.shape[-1] == 264:
            result["contour"] = value[0]
        elif value.ndim == 3 and value.shape[-1] == 88:
            # note and onset: StatefulPartitionedCall:1 is the note output.
            result["note" if o.endswith(":1") else "onset"] = value[0]
    for key, output in extra.items():
        result[key] = by_name[output][0]
    return result


def basic_pitch_reference(out: dict) -> None:
    session, extra = basic_pitch_session(intermediate=True)
    for kind in (0, 1):
        audio = fixed_signal(22050, 43844, kind)
        result = basic_pitch_outputs(session, extra, audio)
        key = f"basic_pitch_{kind}"
        out[f"{key}_audio_kind"] = np.int32(kind)
        out[f"{key}_cqt"] = result["hcqt_in"][::FRAME_STEP, :, 0]     # [43, 309]
        # [8, 11, 264]
        out[f"{key}_contour_features"] = result["contour_features"][:, ::FEATURE_STEP]
        for name in ("note", "onset", "contour"):
            out[f"{key}_{name}"] = result[name][::FRAME_STEP]        # [43, 88 or 264]
        print(f"basic pitch input {kind}: loudest key index "
              f"{int(result['note'].mean(0).argmax())}")


def note_midi(name: str) -> int:
    """"C4" -> 60, "Db4"/"C#4" -> 61, "60" -> 60 (this environment has no torch,
    so the server's parser is not imported)."""
    name = name.strip()
    if name.isdigit():
        return int(name)
    steps = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
    shift = {"#": 1, "b": -1}.get(name[1], 0) if len(name) > 2 else 0
    return steps[name[0].upper()] + shift + 12 * (int(name[-1]) + 1)


def check_notes(inp: str, outp: str, notes: str) -> None:
    import librosa

    keys = [note_midi(n) - 21 for n in notes.split(",")]
    session, _ = basic_pitch_session(intermediate=False)
    for label, path in (("input", inp), ("output", outp)):
        audio, _ = librosa.load(path, sr=22050, mono=True)
        frames = []
        for start in range(0, max(1, len(audio) - 43844 + 1), 43844 // 2):
            window = np.zeros(43844, np.float32)
            part = audio[start:start + 43844]
            window[:len(part)] = part
            frames.append(basic_pitch_outputs(session, {}, window)["note"])
        note = np.concatenate(frames).mean(axis=0)
        chosen = note[keys].mean()
        others = np.delete(note, keys).mean()
        print(f"{label}: named notes {chosen:.4f}, other keys {others:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixture", nargs="?", default="tests/data/music_parity.npz")
    parser.add_argument("--check-notes", nargs=3, metavar=("IN", "OUT", "NOTES"))
    args = parser.parse_args()
    if args.check_notes:
        check_notes(*args.check_notes)
        return
    out: dict = {}
    musicnn_reference(out)
    basic_pitch_reference(out)
    np.savez_compressed(args.fixture, **out)
    print(f"wrote {args.fixture} ({Path(args.fixture).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
