"""The engine's DSP pieces against references and their own stated math."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import welch

from audiodream_server.engine import windows
from audiodream_server.engine.features import features
from audiodream_server.engine.gradients import normalise
from audiodream_server.engine.lowpass import highpass, lowpass
from audiodream_server.engine.resample import resample
from audiodream_server.engine.smoothing import cascade_sigma, cascade_smooth, gaussian_kernels


def sine(freq, rate, seconds=1.0, amp=0.5):
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("src,dst", [(22050, 44100), (48000, 44100), (44100, 16000)])
def test_resample_keeps_a_tone_and_the_requested_length(src, dst):
    x = sine(1000.0, src)[None]
    y = resample(x, src, dst, length=12345)
    assert y.shape == (1, 12345) and y.dtype == np.float32
    full = resample(x, src, dst)
    assert full.shape[1] == math.ceil(x.shape[1] * dst / src)
    freqs, power = welch(full[0], dst, nperseg=4096)
    assert abs(freqs[np.argmax(power)] - 1000.0) < dst / 4096 * 1.5
    # Amplitude kept within 1 % away from the edges (the filter's transient).
    core = full[0, dst // 10: -dst // 10]
    assert abs(np.abs(core).max() - 0.5) < 0.005


def test_resample_rejects_aliasing():
    """A 20 kHz tone at 48 kHz is above 16 kHz's Nyquist: it must vanish, not fold."""
    y = resample(sine(20000.0, 48000)[None], 48000, 16000)
    assert np.sqrt(np.mean(y[0, 2000:-2000] ** 2)) < 1e-3 * 0.5


def test_lowpass_passes_below_and_stops_above_cutoff():
    rate = 44100
    low = torch.from_numpy(sine(1000.0, rate))[None]
    high = torch.from_numpy(sine(12000.0, rate))[None]
    # Pass band: unchanged to float precision (response is exactly 1 there).
    assert torch.allclose(lowpass(low, rate, 4000.0), low, atol=1e-5)
    # Stop band: 12 kHz is beyond cutoff + width (4000 + 500 Hz): removed.
    assert lowpass(high, rate, 4000.0).abs().max() < 1e-4
    # Off, or at Nyquist: identity.
    assert lowpass(high, rate, 0.0) is high
    assert lowpass(high, rate, 30000.0) is high


def test_highpass_stops_below_half_the_corner_and_passes_above_it():
    rate, corner = 44100, 80.0
    low = torch.from_numpy(sine(20.3, rate))[None]  # <= corner / 2: stopped
    high = torch.from_numpy(sine(1003.3, rate))[None]  # >= corner: passed
    edge = rate // 20  # 50 ms: near the ends the mirrored extension has a kink
    inner = slice(edge, -edge)
    # Away from the ends, to float32 precision of the FFT over 2T samples; at the
    # ends a trace of the stopped tone remains (the kink of the mirror image).
    assert highpass(low, rate, corner)[:, inner].abs().max() < 1e-3
    assert highpass(low, rate, corner).abs().max() < 0.3
    assert (highpass(high, rate, corner) - high)[:, inner].abs().max() < 1e-3
    # DC goes everywhere; off is the identity.
    assert highpass(torch.full((1, rate), 0.3), rate, corner).abs().max() < 1e-5
    assert highpass(high, rate, 0.0) is high


def test_gaussian_kernels_are_normalised_and_smoothing_keeps_constants():
    k = gaussian_kernels(1.5, 9)
    assert k.shape == (3, 9)
    assert torch.allclose(k.sum(-1), torch.ones(3, dtype=torch.float64))
    const = torch.full((2, 100), 0.3)
    assert torch.allclose(cascade_smooth(const, 1.5, 9), const, atol=1e-6)
    noise = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0))
    assert cascade_smooth(noise, 1.5, 9).std() < 0.8 * noise.std()
    assert cascade_smooth(noise, 0.0, 9) is noise
    # Same as averaging three separate Gaussian convolutions (the cascade's definition).
    padded = torch.nn.functional.pad(noise.unsqueeze(1), (4, 4), mode="reflect")
    three = torch.nn.functional.conv1d(padded, k.float().unsqueeze(1)).mean(dim=1)
    assert torch.allclose(cascade_smooth(noise, 1.5, 9), three, atol=1e-6)
    # sigma grows from 0.5 c to 2.5 c over the iterations
    assert cascade_sigma(0.5, 0, 10) == pytest.approx(0.25)
    assert cascade_sigma(0.5, 10, 10) == pytest.approx(1.25)


@pytest.mark.parametrize("mode", ["std", "l2", "mean_abs"])
def test_gradient_normalisation_makes_scale_irrelevant(mode):
    g = torch.randn(1, 500, generator=torch.Generator().manual_seed(1))
    scaled = g * torch.tensor([[1e-8], [1.0], [1e4]])
    out = normalise(scaled, mode)
    assert torch.allclose(out[0], out[1], rtol=1e-3, atol=1e-5)
    assert torch.allclose(out[2], out[1], rtol=1e-3, atol=1e-5)
    if mode == "std":
        assert out[1].std() == pytest.approx(1.0, rel=1e-3)
    elif mode == "l2":
        assert out[1].pow(2).mean().sqrt() == pytest.approx(1.0, rel=1e-3)
    else:
        assert out[1].abs().mean() == pytest.approx(1.0, rel=1e-3)
    assert torch.equal(normalise(torch.zeros(1, 10), mode), torch.zeros(1, 10))


def test_crossfade_sums_to_one_in_amplitude():
    """Neighbouring windows' changes are correlated: amplitude fades keep their level."""
    w = windows.crossfade_weights(3, 100, 25)
    fade_out, fade_in = w[0, 75:], w[1, :25]
    assert torch.allclose(fade_out + fade_in, torch.ones(25), atol=1e-6)
    # Identical changes in both windows come out at exactly their own level.
    same = torch.ones(3, 100)
    joined = windows.overlap_add(same, 1, windows.plan(250, 100, 25)[1] * 2 + 100, 25)
    assert torch.allclose(joined, torch.ones_like(joined), atol=1e-6)
    assert torch.all(w[0, :75] == 1) and torch.all(w[2, 75:] == 1)


@pytest.mark.parametrize("length", [50, 100, 101, 176, 1000])
def test_split_covers_the_signal_and_overlap_add_restores_length(length):
    x = torch.randn(2, length, generator=torch.Generator().manual_seed(2))
    frames = windows.split(x, 100, 25)
    count, hop = windows.plan(length, 100, 25)
    assert frames.shape == (2 * count, 100)
    # Frame k of channel c starts at k * hop.
    assert torch.equal(frames[count - 1, : min(100, length - (count - 1) * hop)],
                       x[0, (count - 1) * hop:(count - 1) * hop + 100])
    joined = windows.overlap_add(torch.zeros_like(frames), 2, length, 25)
    assert joined.shape == (2, length) and torch.all(joined == 0)


def test_equal_power_join_has_no_step_where_a_hard_join_would():
    """Two windows with different constant changes: the crossfade makes the join smooth."""
    frames = torch.stack([torch.full((1000,), 0.5), torch.full((1000,), -0.5)])
    joined = windows.overlap_add(frames, 1, 1750, 250)[0]
    assert joined.diff().abs().max() < 0.01  # largest step of a 0.5 -> -0.5 fade over 250
    hard = torch.cat([frames[0, :750], frames[1, 250:]])
    assert hard.diff().abs().max() == pytest.approx(1.0)


def test_features_of_known_signals():
    rate = 44100
    tone = features(sine(1000.0, rate)[None], rate)
    rng = np.random.default_rng(0)
    noise = features((0.1 * rng.standard_normal(rate)).astype(np.float32)[None], rate)
    assert tone.rms == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert tone.spectral_centroid_hz == pytest.approx(1000.0, rel=0.05)
    assert tone.spectral_flatness < 1e-3 < 0.5 < noise.spectral_flatness
    # White noise: centroid near a quarter of the rate; its spectrum changes frame to frame.
    assert noise.spectral_centroid_hz == pytest.approx(rate / 4, rel=0.05)
    assert noise.spectral_flux > 10 * tone.spectral_flux
    silent = features(np.zeros((1, 4096), np.float32), rate)
    assert silent == type(silent)(0.0, 0.0, 0.0, 0.0)


def test_agree_equals_a_round_trip_through_overlap_add():
    """Windows made to agree on their overlaps are what joining and cutting again gives."""
    count, window, overlap = 4, 100, 25
    length = (count - 1) * (window - overlap) + window
    frames = torch.randn(2 * count, window, generator=torch.Generator().manual_seed(4))
    expected = windows.split(windows.overlap_add(frames, 2, length, overlap), window, overlap)
    assert torch.allclose(windows.agree(frames.clone(), 2, overlap), expected, atol=1e-6)


def test_smoothing_response_is_the_cascade_kernel_away_from_the_edges():
    from audiodream_server.engine.smoothing import cascade_smooth, frequency_response
    g = torch.randn(2, 4096, generator=torch.Generator().manual_seed(6))
    direct = cascade_smooth(g, 1.2, 9)
    response = frequency_response(1.2, 9, 4096)
    via_fft = torch.fft.irfft(torch.fft.rfft(g) * response, n=4096)
    # Identical but for the 4 edge samples each side (reflected there, circular here).
    assert torch.allclose(direct[:, 8:-8], via_fft[:, 8:-8], atol=1e-5)
    assert frequency_response(0.0, 9, 4096) is None
