"""The command line at its edges: checks before work, one-line errors, long files.

A real `audiodream serve` process (one model, for a fast start) and real files.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audiodream import Client
from audiodream.transfer import dream_file, plan
from conftest import start_server
from sounds import tone

CLI = [sys.executable, "-m", "audiodream.cli"]


def run(*args, timeout=300, **kwargs):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("audiodream: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def served():
    """`audiodream serve --port 0 --models instruments-m2 --max-message-mb 1`."""
    env = {**os.environ, "AUDIODREAM_THREADS": "1"}
    proc = subprocess.Popen([*CLI, "serve", "--port", "0", "--models", "instruments-m2",
                             "--max-message-mb", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:  # ends when the server prints its address (or dies)
        lines.append(line)
        found = re.search(r"listening on (\S+:(\d+))", line)
        if found:
            break
    assert found, "server did not start:\n" + "".join(lines)
    yield proc, found.group(1), int(found.group(2)), "".join(lines)
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """6 s of stereo 48 kHz, 16-bit: 1.15 MB, over the server's 1 MiB message limit."""
    path = tmp_path_factory.mktemp("edges") / "song.wav"
    sf.write(path, tone(6.0, 48000, channels=2), 48000, subtype="PCM_16")
    return path


def test_serve_chooses_models_and_says_what_is_absent(served):
    _, _, _, log = served
    assert "models: instruments-m2;" in log and "speech-m2" not in log


def test_port_in_use_is_one_line_before_any_model_loads(served):
    _, _, port, _ = served
    result = run("serve", "--port", str(port), timeout=120)
    line = one_line_error(result, 2)
    assert f"port {port}" in line and "--port" in line
    assert "loaded model" not in result.stdout + result.stderr


def test_output_is_checked_before_any_work(song, tmp_path):
    # No server runs at port 1: these fail on the file names first.
    bad = run("dream", str(song), str(tmp_path / "out.xyz"), "--server", "127.0.0.1:1")
    assert ".xyz" in one_line_error(bad, 2) and ".flac" in bad.stderr
    missing = run("dream", str(song), str(tmp_path / "no" / "out.wav"), "--server", "127.0.0.1:1")
    assert "does not exist" in one_line_error(missing, 2)
    folder = run("dream", str(song), str(tmp_path), "--server", "127.0.0.1:1")
    assert one_line_error(folder, 2)
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        denied = run("dream", str(song), str(locked / "out.wav"), "--server", "127.0.0.1:1")
        assert "permission" in one_line_error(denied, 2)
    noinput = run("dream", str(tmp_path / "nope.wav"), str(tmp_path / "o.wav"))
    assert "no such file" in one_line_error(noinput, 2)
    assert not list(tmp_path.glob("out*"))


def test_no_server_is_one_line_with_what_to_do(song, tmp_path):
    line = one_line_error(run("models", "--server", "127.0.0.1:1", timeout=60), 1)
    assert "UNAVAILABLE" in line and "audiodream serve" in line and "--local" in line


def test_a_closed_pipe_ends_quietly(served):
    _, address, _, _ = served
    proc = subprocess.Popen([*CLI, "models", "--server", address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader leaves before anything is written (`| head -0`)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == ""


def test_ctrl_c_while_dreaming_is_one_line(served, song):
    _, address, _, _ = served
    proc = subprocess.Popen([*CLI, "dream", str(song), os.devnull + ".wav", "--server", address,
                             "--max-message-mb", "1", "--iterations", "1000"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    seen = b""
    while b"loss=" not in seen:  # a step counted by the progress bar: the server is at work
        chunk = proc.stderr.read1(256)
        assert chunk, seen
        seen += chunk
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 130
    assert "audiodream: interrupted" in rest and "Traceback" not in rest


def test_help_lists_every_objective_and_the_new_flags():
    text = run("dream", "-h").stdout
    for word in ("target_features", "style", "--output-format", "--window-overlap",
                 "--init-gain", "--init-frequency", "--loudness", "--ceiling", "--local"):
        assert word in text
    for command in ("models", "layers", "stream"):
        assert "--local" in run(command, "-h").stdout


def test_a_file_over_the_message_limit_dreams_in_segments(served, song, tmp_path):
    """The CLI picks the transfer: here the file is over 1 MiB, so it goes in segments."""
    _, address, _, _ = served
    x, _ = sf.read(song, dtype="float32")
    assert plan(os.path.getsize(song), len(x), 2, 1 << 20) == "segments"
    for name in ("out.flac", "out.wav", "out.mp3"):
        out = tmp_path / name
        result = run("dream", str(song), str(out), "--server", address, "--max-message-mb", "1",
                     "--iterations", "2", "--step-size", "0.1", "--quiet")
        assert result.returncode == 0, result.stderr
        info = sf.info(out)
        assert info.format == {"out.flac": "FLAC", "out.wav": "WAV", "out.mp3": "MP3"}[name]
        assert info.samplerate == 48000 and info.channels == 2
        if name != "out.mp3":  # MP3 pads its frames
            y, _ = sf.read(out, dtype="float32")
            assert y.shape == x.shape
            rms_in, rms_out = (float(np.sqrt(np.mean(a.astype(np.float64) ** 2))) for a in (x, y))
            assert abs(20 * np.log10(rms_out / rms_in)) < 0.05  # loudness kept across segments
            assert np.sqrt(np.mean((y - x) ** 2)) > 0.05 * rms_in  # and it was dreamed


@pytest.fixture(scope="module")
def small_server(models):
    server, address = start_server(models, max_message_mb=1)
    yield address
    server.stop(None)


def test_segments_join_exactly(small_server, tmp_path):
    """At 0 iterations the joined segments are the input bit for bit: the crossfades
    sum to one and every frame lands where it belongs."""
    path = tmp_path / "long.wav"
    x = tone(9.0, 44100, channels=2)
    sf.write(path, x, 44100, subtype="FLOAT")
    with Client(small_server, max_message_mb=1) as c:
        out = dream_file(c, str(path), iterations=0)
    np.testing.assert_array_equal(out.audio, x)
    assert out.output_gain == 1.0


def test_flac_transfer_when_pcm_does_not_fit(small_server, tmp_path):
    path = tmp_path / "mid.flac"
    x = tone(2.5, 48000, channels=2)
    sf.write(path, x, 48000, subtype="PCM_16")
    assert plan(os.path.getsize(path), len(x), 2, 1 << 20) == "flac"
    with Client(small_server, max_message_mb=1) as c:
        out = dream_file(c, str(path), iterations=1)
        assert out.params.output_format == "flac" and out.audio.shape == x.shape
        long = tmp_path / "long.wav"
        sf.write(long, tone(9.0, 44100, channels=2), 44100, subtype="FLOAT")
        with pytest.raises(ValueError, match="init input"):  # segments need the input as start
            dream_file(c, str(long), init="pink", iterations=1)


def test_stream_renders_offline_unless_realtime(served, song, tmp_path):
    _, address, _, _ = served
    result = run("stream", str(song), str(tmp_path / "s.wav"), "--server", address,
                 "--block", "4096")
    assert result.returncode == 0, result.stderr
    # Offline: every block ran every iteration (the default, 4), however busy the machine.
    assert "iterations/block 4.0" in result.stdout, result.stdout
    refused = run("stream", str(song), str(tmp_path / "s.wav"), "--server", address,
                  "--loudness", "peak")
    assert "offline dreams" in one_line_error(refused, 2)


def test_layers_and_stream_run_locally(song, tmp_path):
    layers = run("layers", "speech-m2", "--local", "--device", "cpu")
    assert layers.returncode == 0 and "conv3" in layers.stdout, layers.stderr
    out = tmp_path / "local.wav"
    result = run("stream", str(song), str(out), "--local", "--device", "cpu", "--iterations", "1")
    assert result.returncode == 0, result.stderr
    assert "iterations/block 1.0" in result.stdout, result.stdout
    assert sf.info(out).frames == sf.info(song).frames
