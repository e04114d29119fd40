"""dream~'s help patch as a newcomer meets it: it opens clean and quiet, demos a trained
model, is laid out without overlaps, and the build makes a deken-ready package."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

from audiodream_server.models.catalog import build_registry
from conftest import start_server
from pd_layout import overlaps
from test_pd_external import PD_DIR, external  # noqa: F401 - the build fixture

HELP = PD_DIR / "dream~-help.pd"
# Quits 3 s of Pd time after the demo object reports 'connected' (its state box
# sends to dream~-help-state), or after 120 s if it never does.
WATCHER = """#N canvas 0 0 400 300 12;
#X obj 10 10 r dream~-help-state;
#X obj 10 40 select connected;
#X obj 10 70 delay 3000;
#X msg 10 100 \\; pd quit;
#X obj 200 10 loadbang;
#X obj 200 40 delay 120000;
#X msg 200 70 \\; pd quit;
#X obj 10 130 print help-state;
#X connect 0 0 1 0;
#X connect 1 0 2 0;
#X connect 2 0 3 0;
#X connect 4 0 5 0;
#X connect 5 0 6 0;
#X connect 0 0 7 0;
"""


def test_help_patch_is_laid_out_without_overlaps():
    clashes = [(a.canvas, a.text[:40], b.text[:40]) for a, b in overlaps(HELP.read_text())]
    assert not clashes


def test_layout_check_finds_overlaps():
    """The check itself: two comments on top of each other are caught."""
    patch = "#N canvas 0 0 400 300 12;\n#X text 10 10 hello there;\n#X text 20 14 again;\n"
    assert len(overlaps(patch)) == 1


def test_help_patch_demos_trained_models_only():
    text = HELP.read_text()
    assert "-model instruments-m2" in text and "model2 " not in text.replace("-m2", "")


@pytest.fixture(scope="module")
def trained_server():
    models = build_registry(pretrained=False).load(torch.device("cpu"), names=["instruments-m2"])
    server, address = start_server(models)
    yield address
    server.stop(None)


def test_help_patch_opens_clean_and_quiet_with_dsp_on(external, trained_server, tmp_path):  # noqa: F811
    """With a server up, opening the help patch and turning DSP on posts nothing:
    no error, no scrolling info (the info outlet is routed in the patch)."""
    watcher = tmp_path / "watch.pd"
    watcher.write_text(WATCHER)
    env = {**os.environ, "AUDIODREAM_SERVER": trained_server}
    done = subprocess.run(["pd", "-nogui", "-nosound", "-noprefs", "-stderr", "-path",
                           str(PD_DIR), "-open", str(HELP), "-open", str(watcher),
                           "-send", "pd dsp 1"],
                          capture_output=True, text=True, timeout=300, env=env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    states = [line for line in lines if line.startswith("help-state:")]
    assert "help-state: symbol connected" in states, done.stderr
    others = [line for line in lines if not line.startswith("help-state:")]
    assert not others, done.stderr


@pytest.mark.skipif(not shutil.which("deken"), reason="deken (Debian package) not installed")
def test_deken_package_has_a_description_and_the_licence(external, tmp_path):  # noqa: F811
    build = subprocess.run(["make", "-C", str(PD_DIR), "deken"], capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    folder = PD_DIR / "build" / "deken"
    (objects,) = folder.glob("dream*.dek.txt")
    assert objects.read_text().startswith("dream~\tdream Pd's audio live")
    (package,) = folder.glob("dream*.dek")
    listing = subprocess.run(["unzip", "-l", str(package)], capture_output=True, text=True,
                             check=True).stdout
    for name in ("dream/LICENSE.txt", "dream/dream~-help.pd", "dream/dream-meta.pd",
                 "dream/dream~.pd_linux"):
        assert name in listing
    assert "DEKEN GENERATED" not in objects.read_text()

