"""The package list in pyproject.toml covers every package folder, and installs work."""

from __future__ import annotations

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDERS = {"audiodream": ROOT / "clients" / "python" / "audiodream",
           "audiodream_proto": ROOT / "clients" / "python" / "audiodream_proto",
           "audiodream_server": ROOT / "server" / "audiodream_server",
           "audiodream_models": ROOT / "models"}


def test_every_package_folder_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = set()
    for top, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            found.add(".".join([top, *rel.parts]))
    assert found == listed


def test_shipped_models_folder_is_importable():
    from audiodream_server.models.catalog import shipped_models_dir

    assert shipped_models_dir() == ROOT / "models"
