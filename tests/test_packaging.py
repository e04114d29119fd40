"""Two distributions: the client (clients/python, no torch) and the server (.), which
share only the generated stubs' package; their package lists cover every folder."""

from __future__ import annotations

import ast
import pathlib
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLIENT = ROOT / "clients" / "python"
FOLDERS = {"audiodream": CLIENT / "audiodream",
           "audiodream_proto": CLIENT / "audiodream_proto",
           "audiodream_server": ROOT / "server" / "audiodream_server",
           "audiodream_models": ROOT / "models"}


def _packages(pyproject: pathlib.Path) -> set[str]:
    return set(tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["packages"])


def _found(*tops: str) -> set[str]:
    found = set()
    for top in tops:
        folder = FOLDERS[top]
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            found.add(".".join([top, *rel.parts]))
    return found


def test_every_package_folder_is_listed_in_its_distribution():
    assert _packages(CLIENT / "pyproject.toml") == _found("audiodream", "audiodream_proto")
    assert _packages(ROOT / "pyproject.toml") == _found("audiodream_server", "audiodream_models")


def _imports(folder: pathlib.Path) -> dict[str, set[str]]:
    """Top-level packages each module imports (absolute imports only)."""
    out = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize("side, forbidden", [
    ("audiodream", {"audiodream_server", "audiodream_models", "torch", "scipy"}),
    ("audiodream_proto", {"audiodream", "audiodream_server", "torch", "numpy"}),
    ("audiodream_server", {"audiodream"}),
])
def test_server_and_client_meet_only_in_the_stubs_package(side, forbidden):
    """server -> proto <- client: neither imports the other (the client finds the
    server's commands through an entry point, not an import)."""
    wrong = {module: names & forbidden for module, names in _imports(FOLDERS[side]).items()
             if names & forbidden}
    assert not wrong


def test_one_version_for_both_distributions_and_every_client():
    import audiodream
    import audiodream_proto
    import audiodream_server

    version = (CLIENT / "audiodream_proto" / "VERSION").read_text().strip()
    assert audiodream.__version__ == audiodream_server.__version__ == version
    assert audiodream_proto.__version__ == version
    lua = ROOT / "clients" / "lua"
    assert f'VERSION = "{version}"' in (lua / "audiodream" / "init.lua").read_text()
    assert f"audiodream-lua/{version}" in (lua / "audiodream" / "grpc.lua").read_text()
    assert (lua / f"audiodream-{version}-1.rockspec").exists()
    assert f"lib.version = {version}" in (ROOT / "clients" / "pd" / "Makefile").read_text()
    assert f"VERSION {version};" in (ROOT / "clients" / "pd" / "dream-meta.pd").read_text()


def test_the_server_extends_the_clients_command():
    from importlib.metadata import entry_points

    from audiodream_server import commands

    (extension,) = [ep for ep in entry_points(group="audiodream.cli")]
    assert extension.load() is commands
    # The client names them too, to say what is missing when the server is not installed.
    from audiodream.cli import SERVER_COMMANDS

    assert set(commands.COMMANDS) == set(SERVER_COMMANDS)


def test_shipped_models_folder_is_importable():
    from audiodream_server.models.catalog import shipped_models_dir

    assert shipped_models_dir() == ROOT / "models"
