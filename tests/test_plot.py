"""Pictures of one dream: the spectrogram against scipy, the figure, `dream --plot`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from atlas_helpers import spoken_wav
from audiodream.cli import main
from audiodream.plot import CHANGE_RANGE_DB, DYNAMIC_RANGE_DB, dream_figure
from audiodream.spectrogram import log_spectrogram


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return spoken_wav(tmp_path_factory.mktemp("plot") / "speech.wav")


def test_spectrogram_matches_scipy_at_bin_frequencies():
    # scipy's one-sided "spectrum" scaling gives a sine of peak A the power A^2 / 2;
    # ours reads A^2 (0 dBFS for a full-scale sine), so ours = scipy + 3.01 dB.
    # Rows placed exactly on two FFT bins are compared without interpolation.
    rate, n_fft, hop = 16000, 1024, 256
    x = np.random.default_rng(1).standard_normal(rate).astype(np.float32) * 0.1
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    ours = log_spectrogram(x, rate, n_fft=n_fft, hop=hop, rows=2, low_hz=bins[20],
                           high_hz=bins[400])
    f, _, ref = signal.spectrogram(x.astype(np.float64), rate, window=np.hanning(n_fft),
                                   nperseg=n_fft, noverlap=n_fft - hop, detrend=False,
                                   scaling="spectrum", mode="psd")
    expected = 10 * np.log10(2 * ref[[20, 400]].T)
    assert ours.level_db.shape == expected.shape
    np.testing.assert_allclose(ours.level_db, expected, atol=1e-3)  # float32 levels


def test_spectrogram_of_stereo_averages_power_not_samples():
    t = np.arange(8000) / 8000
    mono = np.sin(2 * np.pi * 440 * t) * 0.5
    opposite = np.stack([mono, -mono], axis=1)  # sums to silence if samples were averaged
    a, b = log_spectrogram(mono, 8000), log_spectrogram(opposite, 8000)
    np.testing.assert_allclose(a.level_db, b.level_db, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        log_spectrogram(np.zeros((2, 2, 2)), 8000)


def test_dream_figure_shows_both_spectrograms_on_one_scale(shipped_address, speech):
    from audiodream import Client

    audio, rate = sf.read(speech, dtype="float32")
    with Client(shipped_address) as client:
        out = client.dream(audio, rate, layers=["conv3"], iterations=6)
    fig = dream_figure(audio, rate, out)
    spectra = [ax for ax in fig.axes if ax.get_yscale() == "log"]
    assert len(spectra) == 3  # input, output, change
    for ax in spectra:
        assert "Hz" in ax.get_ylabel() and "(s)" in ax.get_xlabel()
    (m_in,), (m_out,), (m_change,) = (ax.collections for ax in spectra)
    assert m_in.get_clim() == m_out.get_clim()
    low, high = m_in.get_clim()
    assert high - low == pytest.approx(DYNAMIC_RANGE_DB)
    assert high == pytest.approx(max(m_in.get_array().max(), m_out.get_array().max()))
    assert m_change.get_clim() == (-CHANGE_RANGE_DB, CHANGE_RANGE_DB)
    # The change map is output minus input, both raised to the colour floor.
    expected = np.maximum(m_out.get_array(), low) - np.maximum(m_in.get_array(), low)
    np.testing.assert_allclose(m_change.get_array(), expected, atol=1e-4)
    assert np.abs(expected).max() > 3  # the dream changed something visible
    loss_ax = next(ax for ax in fig.axes if ax.get_xlabel() == "iteration")
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), out.loss)
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert f"{out.input_features.spectral_centroid_hz:.0f} -> " \
           f"{out.output_features.spectral_centroid_hz:.0f}" in texts
    assert "instruments-m2" in fig._suptitle.get_text() and "conv3" in fig._suptitle.get_text()


def test_dream_command_writes_the_plot(shipped_address, speech, tmp_path, capsys):
    from matplotlib.image import imread

    png, wav = tmp_path / "dream.png", tmp_path / "out.wav"
    code = main(["dream", speech, str(wav), "--server", shipped_address, "--iterations", "4",
                 "--layer", "conv2:3", "--plot", str(png)])
    assert code == 0, capsys.readouterr().err
    assert f"wrote {png}" in capsys.readouterr().out
    picture = imread(png)
    assert picture.shape[:2] == (750, 1100)
    assert picture[..., :3].std() > 0.1  # drawn, not blank
    assert sf.info(wav).frames == sf.info(speech).frames


def test_plot_to_a_missing_folder_is_a_clear_error(shipped_address, speech, tmp_path, capsys):
    code = main(["dream", speech, str(tmp_path / "out.wav"), "--server", shipped_address,
                 "--iterations", "1", "--quiet", "--plot", str(tmp_path / "no" / "x.png")])
    assert code == 2 and "x.png" in capsys.readouterr().err


def test_pictures_and_atlas_import_neither_torch_nor_the_server():
    code = ("import sys, audiodream.plot, audiodream.atlas, audiodream.atlas_page, "
            "audiodream.spectrogram, audiodream.cli\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('audiodream_server')]\n"
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
