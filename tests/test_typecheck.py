"""The client's type hints hold: mypy checks the client distribution (configured in
clients/python/pyproject.toml), as a user's own type checker would read them."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

CLIENT = pathlib.Path(__file__).resolve().parents[1] / "clients" / "python"


def test_the_client_type_checks():
    pytest.importorskip("mypy", reason="mypy comes with the dev extra")
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=CLIENT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_client_ships_its_type_hints():
    for package in ("audiodream", "audiodream_proto"):
        assert (CLIENT / package / "py.typed").exists()
