"""The client installs alone, without torch, and dreams against a real server.

A fresh virtual environment gets only `pip install ./clients/python` (no access
to this environment's packages); its `audiodream` command then dreams a real
sound through the real server started here. What belongs to the server (`serve`,
`--local`, the training tools) says so in one line instead of failing later.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import venv

import numpy as np
import pytest
import soundfile as sf

from conftest import start_server
from sounds import tone

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client_env(tmp_path_factory):
    """A fresh venv holding the client distribution alone; yields its bin folder."""
    home = tmp_path_factory.mktemp("client-alone")
    venv.EnvBuilder(with_pip=True).create(home / "venv")
    bin_dir = home / "venv" / "bin"
    # A copy of the client folder: the build must not need anything outside it.
    source = home / "client"
    shutil.copytree(ROOT / "clients" / "python", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    install = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", str(source)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr
    return bin_dir


def _run(bin_dir, *args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(bin_dir / "audiodream"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=bin_dir)


def test_the_client_installs_without_torch_or_the_server(client_env):
    listed = subprocess.run([str(client_env / "python"), "-m", "pip", "list", "--format",
                             "freeze"], capture_output=True, text=True, timeout=120).stdout
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert {"audiodream", "grpcio", "protobuf", "numpy", "soundfile"} <= names
    assert not names & {"torch", "scipy", "audiodream-server"}, names
    probe = subprocess.run([str(client_env / "python"), "-c",
                            "import audiodream, audiodream_proto.v1.audiodream_pb2 as pb, sys;"
                            "print(audiodream.__version__, 'torch' in sys.modules)"],
                           capture_output=True, text=True, timeout=120)
    version = (ROOT / "clients" / "python" / "audiodream_proto" / "VERSION").read_text().strip()
    assert probe.stdout.split() == [version, "False"], probe.stderr
    assert _run(client_env, "--version").stdout.strip() == f"audiodream {version}"


def test_the_client_alone_dreams_against_a_server(client_env, models, tmp_path):
    server, address = start_server(models)
    try:
        source, out = tmp_path / "in.wav", tmp_path / "out.wav"
        sf.write(source, tone(1.0, 16000), 16000)
        result = _run(client_env, "dream", str(source), str(out), "--server", address,
                      "--iterations", "3", "--quiet")
        assert result.returncode == 0, result.stderr
        dreamed, rate = sf.read(out, dtype="float32")
        original, _ = sf.read(source, dtype="float32")
        assert rate == 16000 and dreamed.shape == original.shape
        assert np.isfinite(dreamed).all() and not np.allclose(dreamed, original, atol=1e-4)
        listed = _run(client_env, "models", "--server", address)
        assert listed.returncode == 0 and models.default in listed.stdout
    finally:
        server.stop(None)


@pytest.mark.parametrize("args, names", [
    (("serve",), "'audiodream serve'"),
    (("train", "--help"), "'audiodream train'"),
    (("layers", "--local"), "--local"),
])
def test_what_needs_the_server_says_so(client_env, args, names):
    result = _run(client_env, *args)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert line.startswith("audiodream: ") and names in line and "server" in line
    assert "Traceback" not in result.stderr
