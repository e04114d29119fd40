"""The output level of a dream: `loudness` and `ceiling_db` (engine/loudness.py)."""

from __future__ import annotations

import numpy as np
import pytest

from audiodream import ServerError
from audiodream_server.engine import DreamParams, dream
from audiodream_server.errors import InvalidArgument, OutOfRange
from sounds import tone


def db(x: float) -> float:
    return 20 * np.log10(x)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.fixture(scope="module")
def quiet():
    """1.5 s at 22.05 kHz, peak -18.4 dBFS: the level a newcomer's file came in at."""
    x = tone(1.5, 22050, channels=2).T
    return (x * (10 ** (-18.4 / 20) / np.abs(x).max())).astype(np.float32)


def run(model, x, **params):
    return dream(x, 22050, model, DreamParams(iterations=3, **params))


def test_default_keeps_the_inputs_loudness(default_model, quiet):
    out = run(default_model, quiet)
    assert out.params.loudness == "rms"
    assert abs(db(rms(out.audio)) - db(rms(quiet))) < 0.01
    unlevelled = run(default_model, quiet, loudness="off")
    assert out.output_gain != 1.0  # the dream did change the level, and it was put back
    np.testing.assert_allclose(out.audio, unlevelled.audio * np.float32(out.output_gain),
                               rtol=1e-5, atol=1e-7)


def test_peak_normalize_and_ceiling(default_model, quiet):
    peak = run(default_model, quiet, loudness="peak")
    assert np.abs(peak.audio).max() == pytest.approx(np.abs(quiet).max(), rel=1e-5)
    loud = run(default_model, quiet, loudness="normalize", ceiling_db=-1.0)
    assert db(np.abs(loud.audio).max()) == pytest.approx(-1.0, abs=1e-4)
    # The ceiling bounds every mode: matching the loudness may not push past it.
    capped = run(default_model, quiet * np.float32(8), ceiling_db=-12.0)
    assert db(np.abs(capped.audio).max()) <= -12.0 + 1e-4


def test_zero_iterations_returns_the_input_bit_for_bit(default_model, quiet):
    for mode in ("rms", "peak", "off"):
        out = dream(quiet, 22050, default_model, DreamParams(iterations=0, loudness=mode))
        assert out.output_gain == 1.0
        np.testing.assert_array_equal(out.audio, quiet)


def test_the_change_alone_is_only_bounded(default_model, quiet):
    change = run(default_model, quiet, output="change")
    off = run(default_model, quiet, output="change", loudness="off")
    np.testing.assert_array_equal(change.audio, off.audio)


def test_bad_values_are_refused(default_model, quiet):
    with pytest.raises(InvalidArgument, match="normalize"):
        run(default_model, quiet, loudness="loud")
    with pytest.raises(OutOfRange, match="ceiling_db"):
        run(default_model, quiet, ceiling_db=3.0)


def test_loudness_through_the_server(client, quiet):
    out = client.dream(quiet.T, 22050, iterations=2, loudness="peak", ceiling_db=-30.0)
    assert db(np.abs(out.audio).max()) == pytest.approx(-30.0, abs=1e-3)
    assert out.params.loudness == "peak" and out.params.ceiling_db == -30.0
    with pytest.raises(ServerError) as err:
        client.dream(quiet.T, 22050, loudness="loud")
    assert err.value.code == "INVALID_ARGUMENT" and "rms" in err.value.message
    with pytest.raises(ServerError) as err:
        client.dream(quiet.T, 22050, ceiling_db=1.0)
    assert err.value.code == "OUT_OF_RANGE"
