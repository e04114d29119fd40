"""The checked-in stubs are what the proto generates: the contract cannot drift."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
GENERATED = ROOT / "clients" / "python" / "audiodream_proto" / "v1"


def test_generated_stubs_are_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools")
    subprocess.run(["sh", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)], check=True,
                   env={**os.environ, "PYTHON": sys.executable}, timeout=120)
    for name in ("audiodream_pb2.py", "audiodream_pb2.pyi", "audiodream_pb2_grpc.py",
                 "__init__.py"):
        fresh = (tmp_path / name).read_text()
        assert fresh == (GENERATED / name).read_text(), f"{name} is stale: run `make proto`"


def test_every_field_documents_itself():
    """Each message field in the proto has a comment on or above it (units, 0/empty)."""
    lines = (ROOT / "proto" / "audiodream" / "v1" / "audiodream.proto").read_text().splitlines()
    undocumented = []
    in_message = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("message "):
            in_message = stripped.split()[1]
        is_field = in_message and "=" in stripped and stripped.endswith(";") \
            and not stripped.startswith("//")
        if is_field:
            above = lines[i - 1].strip()
            self_evident = stripped.split()[0][0].isupper() or stripped.startswith("repeated ")
            if not (above.startswith("//") or "//" in stripped or above.endswith("{")
                    or self_evident):
                undocumented.append(f"{in_message}: {stripped}")
    assert not undocumented, undocumented

