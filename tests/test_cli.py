"""The `audiodream` command end to end: a real server process, real files."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from sounds import tone

CLI = [sys.executable, "-m", "audiodream.cli"]


def run(*args, timeout=300, **kwargs):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          **kwargs)


@pytest.fixture(scope="module")
def served():
    """`audiodream serve --port 0` as a child process; yields its address."""
    env = {**os.environ, "AUDIODREAM_THREADS": "1"}
    proc = subprocess.Popen([*CLI, "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    address, deadline, lines = None, time.time() + 120, []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"listening on (\S+:\d+)", line)
        if found:
            address = found.group(1)
            break
    assert address, "server did not start:\n" + "".join(lines)
    yield proc, address
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """A real spoken sentence when espeak-ng is installed, else a tone."""
    path = tmp_path_factory.mktemp("cli") / "speech.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-w", str(path), "audio dreams of electric sheep"],
                       check=True, timeout=60)
    else:
        sf.write(path, tone(2.0, 22050), 22050, subtype="PCM_16")
    return path


def test_models_and_layers_commands(served):
    _, address = served
    models = run("models", "--server", address)
    assert models.returncode == 0, models.stderr
    # The shipped, trained Model2 is the default; the untrained references are listed too.
    assert re.search(r"instruments-m2 \*\s+44100\s+44100\s+\d+\s+\d+\s+true", models.stdout)
    assert re.search(r"\nmodel2\s+44100.*false", models.stdout) and "speech-m2" in models.stdout
    layers = run("layers", "model1", "--server", address)
    assert layers.returncode == 0 and "conv3" in layers.stdout and "Conv1d" in layers.stdout


def test_dream_command_through_the_server(served, speech, tmp_path):
    _, address = served
    out = tmp_path / "out.wav"
    result = run("dream", str(speech), str(out), "--server", address,
                 "--layer", "conv2:1,4@1", "--layer", "conv4@0.5", "--jitter", "8",
                 "--lowpass", "9000", "--seed", "2")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "centroid" in result.stdout
    x, rate_in = sf.read(speech, dtype="float32")
    y, rate_out = sf.read(out, dtype="float32")
    assert rate_in == rate_out and y.shape == x.shape
    assert sf.info(out).subtype == sf.info(speech).subtype
    assert np.abs(y).max() <= 1.0
    # It sounds different: the change is a sizeable fraction of the input.
    assert np.sqrt(np.mean((y - x) ** 2)) > 0.1 * np.sqrt(np.mean(x ** 2))


def test_dream_command_local_matches_the_server(served, speech, tmp_path):
    _, address = served
    remote, local = tmp_path / "remote.wav", tmp_path / "local.wav"
    args = ["--iterations", "4", "--quiet", "--layer", "conv1", "--seed", "5"]
    env = {**os.environ, "AUDIODREAM_SERVER": address}
    assert run("dream", str(speech), str(remote), *args, env=env).returncode == 0
    result = run("dream", str(speech), str(local), "--local", "--device", "cpu", *args)
    assert result.returncode == 0, result.stderr
    a, _ = sf.read(remote, dtype="float32")
    b, _ = sf.read(local, dtype="float32")
    np.testing.assert_allclose(a, b, atol=1e-4)  # 16-bit files; threads may differ


def test_dream_command_reports_server_errors(served, speech, tmp_path):
    _, address = served
    result = run("dream", str(speech), str(tmp_path / "x.wav"), "--server", address,
                 "--layer", "conv42")
    assert result.returncode == 1 and "NOT_FOUND" in result.stderr and "conv3" in result.stderr
    bad = run("dream", str(speech), str(tmp_path / "x.wav"), "--server", address,
              "--layer", "conv1:a,b")
    assert bad.returncode == 2 and "integers" in bad.stderr
    missing = run("dream", str(tmp_path / "nope.wav"), str(tmp_path / "x.wav"),
                  "--server", address)
    assert missing.returncode == 2


def test_no_server_is_a_clear_error(tmp_path, speech):
    result = run("models", "--server", "127.0.0.1:1", timeout=60)
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr


def test_sigterm_stops_the_server_gracefully(served):
    proc, address = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert "audiodream stopped" in proc.stdout.read()


@pytest.mark.parametrize("command", ["serve", "models", "layers", "dream", "stream", "classify",
                                     "atlas", "data", "train", "convert-yamnet"])
def test_every_subcommand_prints_its_help(command):
    """`audiodream X -h` (server-side tools included) prints X's usage and exits 0."""
    for flag in ("-h", "--help"):
        result = run(command, flag, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"usage: audiodream {command}" in result.stdout, result.stdout[:300]
