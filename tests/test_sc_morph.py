"""Dream (the SuperCollider UGen) in morph mode, in a real scsynth against a real server
holding the shipped autoencoder: a `target` buffer, `morph 1` and `mode morph` sent as
unit commands move the live input toward the target's spectrum."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from audiodream_server import listening
from audiodream_server.models.catalog import build_registry
from conftest import start_server
from test_supercollider import (CONNECTED, PREROLL, RATE, Session, connected_latency,  # noqa: F401
                                defs, jack, plugin)


def spectrum_distance(x: np.ndarray, y: np.ndarray) -> float:
    """RMS difference (dB) of the level-normalised third-octave spectra."""
    a = listening.third_octave_ltas(x.astype(np.float64), RATE)
    b = listening.third_octave_ltas(y.astype(np.float64), RATE)
    return float(np.sqrt(np.mean(((a - a.mean()) - (b - b.mean())) ** 2)))


def test_unit_commands_morph_the_input_toward_a_target_buffer(
        plugin, defs, jack, tmp_path):  # noqa: F811 - the fixtures
    models = build_registry(pretrained=False, untrained_models=False).load(
        torch.device("cpu"), ["instruments-ae"])
    server, address = start_server(models)
    t = np.arange(RATE) / RATE
    target = sum(0.8 ** k * np.sin(2 * np.pi * 523.25 * (k + 1) * t) for k in range(12))
    sf.write(tmp_path / "target.wav", (0.3 * target / np.abs(target).max()), RATE)
    try:
        with Session(plugin, defs, jack, address, tmp_path) as s:
            bin_, bout = s.buffer(8), s.buffer(8)
            s.synth.call("/b_allocRead", 60, str(tmp_path / "target.wav"))
            s.play("dream_rec", 1000, inbuf=bin_, outbuf=bout, seconds=8, iterations=0,
                   preroll=PREROLL)
            s.wait_report(1000, lambda r: r["state"] == CONNECTED)
            s.cmd("dream_rec", 1000, "target", 60)
            s.cmd("dream_rec", 1000, "morph", 1.0)
            s.cmd("dream_rec", 1000, "mode", "morph")
            s.ended(1000, 80)
            x, y, reports = s.read(bin_), s.read(bout), s.reports(1000)
            info = s.info(1000)
    finally:
        server.stop(None)
    # The mode may reach the server before the buffer's samples ("no_target": the
    # input passes through until they come); nothing may be refused.
    assert not [line for line in info if "invalid_control" in line], info
    latency = connected_latency(reports)
    settled = y[5 * RATE:, 0]
    dry = x[5 * RATE - latency: len(y) - latency, 0]
    heard = settled != 0  # a block late on a busy machine is output as zeros
    assert heard.mean() > 0.5, reports[-1]
    assert np.abs(settled).max() <= 1.0
    # Closer to the target's spectrum than the input it came from.
    moved, before = spectrum_distance(settled[heard], target), spectrum_distance(dry[heard], target)
    assert moved < before - 3.0, (moved, before)
