"""Stream resampling on an absolute grid: only new frames are resampled, and the result
is the whole signal's resampling (scipy's polyphase filter, the same FIR)."""

from __future__ import annotations

import numpy as np
import pytest

from audiodream_server.engine.gridresample import GridResampler
from audiodream_server.engine.resample import resample
from audiodream_server.stream.session import StreamSession
from audiodream_server.stream.settings import STREAM_DEFAULTS, StreamSettings


@pytest.mark.parametrize("rates", [(48000, 44100), (44100, 48000), (48000, 16000),
                                   (22050, 44100), (44100, 44100)])
def test_a_segment_is_the_whole_signals_resampling_there(rates):
    """Tolerance: exact. Both run the same FIR over the same input samples on the same
    output instants (a segment starts on an instant shared by both grids)."""
    a, b = rates
    x = np.random.default_rng(0).standard_normal((2, a)).astype(np.float32)
    whole = resample(x, a, b)
    r = GridResampler(a, b)
    end = whole.shape[-1]
    for start, stop in ((0, 100), (777, 2881), (end // 2, end // 2 + 1882), (end - 300, end)):
        np.testing.assert_array_equal(r.segment(x, 0, start, stop), whole[:, start:stop])
    # A source that starts later (a stream's context) gives the same samples.
    late = a // 4
    np.testing.assert_array_equal(r.segment(x[:, late:], late, r.end(late) + 40, end - 40),
                                  whole[:, r.end(late) + 40:end - 40])


def test_a_streams_model_context_is_the_resampled_input_block_after_block(default_model):
    """48 kHz into a 44.1 kHz model: after any number of blocks, the context the model
    dreams is the whole input so far resampled at once, where the FIR saw only input
    (not the provisional last samples, recomputed with the next block)."""
    settings = StreamSettings(48000, 1, 2048, offline=True).resolve(default_model.spec)
    session = StreamSession(settings, STREAM_DEFAULTS.resolve(default_model.spec),
                            default_model)
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal(2048 * 9)).astype(np.float32)
    padded = np.concatenate([np.zeros(settings.window, np.float32), x])
    for k in range(9):
        session._take(x[None, 2048 * k:2048 * (k + 1)])
    whole = resample(padded[None], 48000, default_model.spec.sample_rate)
    end = session._in.end(session._frames)
    settled = session._live.shape[-1] - session._provisional
    want = whole[:, end - session._live.shape[-1]:end - session._provisional]
    np.testing.assert_allclose(session._live[:, :settled], want, atol=1e-6)
