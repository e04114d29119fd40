"""The C core shared by dream~ and Dream (clients/core), through its own test program.

`test_core` checks the lock-free ring (wrap-around, planar <-> interleaved), the
parameter table, a worker with no server (perform keeps time, dry or silent, one
error, info lines in order through the lock-free info ring), and, given a real
server, a 2-channel offline stream at 0 iterations that must come back as the input
delayed by the reported latency, frame for frame.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CORE_DIR = Path(__file__).resolve().parents[1] / "clients" / "core"


@pytest.fixture(scope="module")
def test_core() -> Path:
    missing = [t for t in ("protoc-c", "pkg-config", "make", "cc") if shutil.which(t) is None]
    if missing:
        why = f"needs {', '.join(missing)}: apt-get install libgrpc-dev protobuf-c-compiler " \
              "libprotobuf-c-dev pkg-config"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    build = subprocess.run(["make", "-C", str(CORE_DIR)], capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    return CORE_DIR / "test_core"


def test_core_program_passes_against_a_real_server(test_core, server_address):
    done = subprocess.run([str(test_core), server_address], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for check in ("ok ring", "ok numbers", "ok no server", "ok transparent through"):
        assert check in done.stdout, done.stdout + done.stderr
