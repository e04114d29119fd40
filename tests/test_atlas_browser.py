"""The atlas page in a real browser: headless Chromium (the system's) driven by Playwright.

Every picture loads, every player can play and reports the length of its file,
sorting the features table by a column reorders its rows, and the page logs no
error. The page is opened from the disk (file://): it must need no network.
"""

from __future__ import annotations

import os
import shutil

import pytest
import soundfile as sf

from atlas_helpers import render_atlas, spoken_wav

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    why = "no Chromium here (Debian: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(why)  # CI installs it: a skip there would hide a failure
    pytest.skip(why)


@pytest.fixture(scope="module")
def page_dir(shipped_address, tmp_path_factory):
    base = tmp_path_factory.mktemp("browser")
    speech = spoken_wav(base / "speech.wav")
    assert render_atlas(shipped_address, speech, base / "atlas") == 0
    return base / "atlas"


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        # --no-sandbox: Chromium refuses to run as root otherwise (CI runs as root).
        browser = pw.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, page_dir):
    page = browser.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto((page_dir / "index.html").as_uri())
    yield page
    page.close()
    assert not problems, problems


def test_every_image_loads(page):
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    widths = page.evaluate("Array.from(document.images).map(i => [i.src, i.naturalWidth])")
    assert len(widths) == 26  # 2 sources + 12 cells, each a spectrogram and a change map
    assert all(width > 0 for _, width in widths), widths


def test_the_view_switches_between_spectrograms_and_changes(page):
    shown = ("() => [...document.querySelectorAll('figure img')]"
             ".filter(i => i.offsetWidth > 0).map(i => i.className)")
    assert sorted(set(page.evaluate(shown))) == ["", "spec"]  # sources have no class
    page.get_by_label("change from the start", exact=False).check()
    assert page.evaluate(shown).count("change") == 12 and "spec" not in page.evaluate(shown)
    page.get_by_label("spectrograms").check()
    assert page.evaluate(shown).count("spec") == 12


def test_every_player_plays_its_whole_file(page, page_dir):
    page.wait_for_function(
        "Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1)")
    players = page.evaluate("Array.from(document.querySelectorAll('audio'))"
                            ".map(a => [a.getAttribute('src'), a.duration])")
    assert len(players) == 14
    for src, duration in players:
        info = sf.info(str(page_dir / src))
        assert duration == pytest.approx(info.frames / info.samplerate, abs=1e-3), src
    # play() resolves for each player (rejects if the sound cannot be decoded).
    played = page.evaluate("""async () => {
        const out = [];
        for (const a of document.querySelectorAll('audio')) {
            a.muted = true;
            try { await a.play(); out.push(true); } catch (e) { out.push(String(e)); }
            a.pause();
        }
        return out;
    }""")
    assert played == [True] * 14, played


def _column(page, table: str, header: str) -> list[float]:
    return page.evaluate("""([table, header]) => {
        const t = document.getElementById(table);
        const col = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent === header);
        return Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[col].dataset.v));
    }""", [table, header])


def test_sorting_by_a_feature_reorders_the_rows(page):
    before = _column(page, "features-table", "centroid Hz")
    assert len(before) == 12 and before != sorted(before)  # noise rows come first: unsorted
    table = page.locator("#features-table")
    table.get_by_role("button", name="centroid Hz", exact=True).click()
    ascending = _column(page, "features-table", "centroid Hz")
    assert ascending == sorted(before)
    table.get_by_role("button", name="centroid Hz", exact=True).click()
    assert _column(page, "features-table", "centroid Hz") == sorted(before, reverse=True)
    # Rows move whole: each row's layer travels with its centroid.
    table.get_by_role("button", name="layer", exact=True).click()
    layers = page.evaluate("""() => Array.from(
        document.getElementById('features-table').tBodies[0].rows)
        .map(r => r.cells[1].textContent)""")
    assert layers == sorted(layers, key=lambda name: ("conv1", "conv4").index(name))
