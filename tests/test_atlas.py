"""The layer atlas: which cells, real dreams through a real server, resuming, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from atlas_helpers import render_atlas, spoken_wav
from audiodream import Client, ServerError
from audiodream.atlas import build_atlas, pink_noise, plan_cells
from audiodream.atlas_page import layer_summary
from audiodream.client import LayerInfo, Layers
from watch import Output

LAYERS = Layers("m", 44100, "b", [LayerInfo("a", "Conv1d", 8, 100.0, 1),
                                  LayerInfo("b", "Conv1d", 3, 10.0, 1)])


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return spoken_wav(tmp_path_factory.mktemp("atlas") / "speech.wav")


@pytest.fixture(scope="module")
def atlas(shipped_address, speech, tmp_path_factory):
    """A small atlas rendered once by the command; returns (folder, its atlas.json)."""
    out = tmp_path_factory.mktemp("atlas") / "out"
    assert render_atlas(shipped_address, speech, out) == 0
    with open(out / "atlas.json") as f:
        return out, json.load(f)


def test_cells_cover_each_layer_whole_and_a_spread_of_maps():
    cells = plan_cells(LAYERS, ["noise", "input"], [], 2)
    assert [c.key for c in cells] == [
        "noise-a-all", "noise-a-m0", "noise-a-m7", "input-a-all", "input-a-m0", "input-a-m7",
        "noise-b-all", "noise-b-m0", "noise-b-m2", "input-b-all", "input-b-m0", "input-b-m2"]
    chosen = plan_cells(LAYERS, ["noise"], ["b:1"], 4)
    assert [c.key for c in chosen] == ["noise-b-all", "noise-b-m1"]
    assert [c.key for c in plan_cells(LAYERS, ["noise"], [], 0)] == ["noise-a-all",
                                                                      "noise-b-all"]
    with pytest.raises(ValueError, match="no layer 'c'; its layers: a, b"):
        plan_cells(LAYERS, ["noise"], ["c"], 2)
    with pytest.raises(ValueError, match="maps 0..2"):
        plan_cells(LAYERS, ["noise"], ["b:3"], 2)


def test_pink_noise_is_seeded_pink_and_at_the_init_level():
    x = pink_noise(44100, seed=3)
    assert np.array_equal(x, pink_noise(44100, seed=3))
    assert not np.array_equal(x, pink_noise(44100, seed=4))
    assert np.abs(x).max() == pytest.approx(0.25)
    power = np.abs(np.fft.rfft(x)) ** 2
    octave = lambda lo: power[lo:2 * lo].sum()  # noqa: E731 - 1/f: equal power per octave
    assert 0.6 < octave(1000) / octave(8000) < 1.6


def test_atlas_renders_every_cell_as_a_real_dream(atlas, speech):
    out, data = atlas
    cells = data["cells"]
    assert len(cells) == 12 and data["meta"]["cells_done"] == 12
    assert {(c["source"], c["layer"], c["label"]) for c in cells} >= {
        ("noise", "conv1", "whole layer"), ("input", "conv4", "map 0")}
    spoken, rate = sf.read(speech, dtype="float32")
    spoken = spoken[: int(1.5 * rate)]
    sounds = {}
    for c in cells:
        audio, audio_rate = sf.read(out / c["audio"], dtype="float32")
        assert audio_rate == rate and len(audio) == len(spoken) == c["frames"]
        assert os.path.getsize(out / c["image"]) > 1000
        assert os.path.getsize(out / c["change_image"]) > 1000
        assert c["iterations"] == 3 and c["params"]["model"] == "instruments-m2"
        sounds[c["key"]] = audio
    # Cells of one source differ: each dreams its own layer or map.
    keys = [c["key"] for c in cells if c["source"] == "input"]
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            assert np.abs(sounds[a] - sounds[b]).max() > 1e-3, (a, b)
    # The input cells start from the spoken sound: the server measured its features.
    rms = float(np.sqrt(np.mean(spoken.astype(np.float64) ** 2)))
    for c in cells:
        if c["source"] == "input":
            assert c["input_features"]["rms"] == pytest.approx(rms, rel=1e-3)
    page = (out / "index.html").read_text()
    # Each cell: its spectrogram and its change from the start; each source: one picture.
    assert page.count("<audio") == 12 + 2 and page.count("<img") == 2 * 12 + 2
    assert "not finished" not in page and "http" not in page  # no network needed


def test_a_cell_is_the_dream_the_client_gets(atlas, shipped_address, speech):
    out, data = atlas
    cell = next(c for c in data["cells"] if c["key"] == "input-conv4-m0")
    spoken, rate = sf.read(speech, dtype="float32")
    with Client(shipped_address) as client:
        direct = client.dream(spoken[: int(1.5 * rate)], rate, layers=[("conv4", [0])],
                              iterations=3)
    saved, _ = sf.read(out / cell["audio"], dtype="float32")
    np.testing.assert_allclose(saved, direct.audio, atol=1 / 32768 + 1e-6)  # 16-bit file
    assert cell["output_features"]["spectral_centroid_hz"] == pytest.approx(
        direct.output_features.spectral_centroid_hz, rel=1e-5)


def test_summary_ranks_layers_by_the_spread_of_their_cells(atlas):
    _, data = atlas
    rows = layer_summary(data["cells"])
    assert [(r["source"], r["layer"]) for r in rows] == [
        ("noise", "conv1"), ("noise", "conv4"), ("input", "conv1"), ("input", "conv4")]
    for r in rows:
        cells = [c for c in data["cells"]
                 if c["source"] == r["source"] and c["layer"] == r["layer"]]
        values = [c["output_features"]["spectral_flux"] for c in cells]
        assert r["spectral_flux"] == pytest.approx((np.mean(values), np.std(values)))
        assert r["spread"] >= 0 and r["shift"] > 0


def test_a_second_run_keeps_every_cell_and_a_changed_parameter_renders_again(
        shipped_address, speech, tmp_path, capsys):
    out = tmp_path / "atlas"
    # One map per layer first (conv1 and conv4: 8 cells), then the usual two (12):
    # the whole layers and map 0 are kept, only the new last maps are dreamed.
    assert render_atlas(shipped_address, speech, out, "--maps", "1") == 0
    assert "8 cells rendered, 0 kept" in capsys.readouterr().out
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    assert render_atlas(shipped_address, speech, out) == 0
    assert "4 cells rendered, 8 kept" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert render_atlas(shipped_address, speech, out) == 0
    assert "0 cells rendered, 12 kept" in capsys.readouterr().out
    (out / "cells" / "input-conv1-m0.json").unlink()  # as if cut short
    assert render_atlas(shipped_address, speech, out) == 0
    assert "1 cells rendered, 11 kept" in capsys.readouterr().out
    assert render_atlas(shipped_address, speech, out, "--step-size", "0.03") == 0
    assert "12 cells rendered, 0 kept" in capsys.readouterr().out


class _Failing:
    """A client that raises `error` at its n-th dream (Ctrl-C, or a server refusal)."""

    def __init__(self, client, n, error=KeyboardInterrupt):
        self.client, self.n, self.error = client, n, error

    def layers(self, model=""):
        return self.client.layers(model)

    def dream(self, *args, **kwargs):
        self.n -= 1
        if self.n == 0:
            raise self.error
        return self.client.dream(*args, **kwargs)


def test_an_interrupted_atlas_shows_what_it_has_and_resumes(shipped_address, speech, tmp_path):
    options = dict(input_path=speech, layers=("conv1", "conv4"), maps=2, seconds=1.0,
                   params={"iterations": 2}, quiet=True)
    with Client(shipped_address) as client:
        first = build_atlas(_Failing(client, 5), str(tmp_path), **options)
        assert first.interrupted and first.rendered == 4
        page = (tmp_path / "index.html").read_text()
        assert "not finished" in page and "4 of 12 cells" in page
        second = build_atlas(client, str(tmp_path), **options)
    assert not second.interrupted and (second.rendered, second.kept) == (8, 4)
    assert "not finished" not in (tmp_path / "index.html").read_text()


def test_ctrl_c_stops_the_command_with_a_page_and_a_hint(shipped_address, speech, tmp_path):
    # All 9 layers (90 cells): Ctrl-C arrives long before the end.
    command = [sys.executable, "-m", "audiodream.cli", "atlas", speech, "--out", str(tmp_path),
               "--server", shipped_address, "--iterations", "2", "--seconds", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    progress = Output(proc.stderr)
    # The progress bar counts the first cell done (its record is written by then).
    assert progress.wait_for(r"\b[1-9]\d*/90\b", timeout=120), progress.text()
    proc.send_signal(signal.SIGINT)
    out = proc.stdout.read()
    proc.wait(timeout=120)
    progress.wait_closed()
    err = progress.text()
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in out and "run the same command again" in out
    assert "not finished" in (tmp_path / "index.html").read_text()


def test_noise_only_atlas_needs_no_sound(shipped_address, tmp_path):
    assert render_atlas(shipped_address, None, tmp_path, "--layer", "conv0", "--maps", "1") == 0
    data = json.loads((tmp_path / "atlas.json").read_text())
    assert [c["key"] for c in data["cells"]] == [  # in the model's layer order
        f"noise-{layer}-{which}" for layer in ("conv0", "conv1", "conv4")
        for which in ("all", "m0")]
    assert data["cells"][0]["duration"] == pytest.approx(1.5)


def test_bad_requests_are_clear_errors(shipped_address, speech, tmp_path, capsys):
    assert render_atlas(shipped_address, speech, tmp_path, "--model", "nope") == 1
    assert "NOT_FOUND" in capsys.readouterr().err
    assert render_atlas(shipped_address, speech, tmp_path, "--layer", "conv9") == 2
    assert "its layers: conv0" in capsys.readouterr().err
    assert render_atlas(shipped_address, speech, tmp_path, "--format", "mp3") == 2
    assert "flac, wav, ogg" in capsys.readouterr().err
    assert render_atlas(shipped_address, str(tmp_path / "missing.wav"), tmp_path) == 2
    assert not (tmp_path / "index.html").exists()


def test_a_cell_the_server_refuses_is_shown_and_the_rest_goes_on(shipped_address, speech,
                                                                 tmp_path):
    options = dict(input_path=speech, layers=("conv1",), maps=1, seconds=1.0,
                   params={"iterations": 2}, quiet=True)
    diverged = ServerError("OUT_OF_RANGE", "the dream diverged (NaN or infinite samples)")
    with Client(shipped_address) as client:
        summary = build_atlas(_Failing(client, 2, diverged), str(tmp_path), **options)
        assert summary.rendered == 3 and summary.failed == [
            "noise-conv1-m0: the dream diverged (NaN or infinite samples)"]
        page = (tmp_path / "index.html").read_text()
        assert "1 cells could not be dreamed" in page and "OUT_OF_RANGE: the dream" in page
        assert page.count("<audio") == 3 + 2
        again = build_atlas(client, str(tmp_path), **options)  # the failed cell only
        assert (again.rendered, again.kept, again.failed) == (1, 3, [])
        with pytest.raises(ServerError, match="UNAVAILABLE"):  # not a cell's fault: stops
            build_atlas(_Failing(client, 1, ServerError("UNAVAILABLE", "gone")),
                        str(tmp_path / "other"), **options)
