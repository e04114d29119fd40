"""Small requests that used to cost gigabytes, INTERNAL or NaN: each refused at once, cheaply.

A real server process; for each case its RSS is read before and after, and the
refusal must come quickly (loose bounds: the machine is shared and noisy).
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import soundfile as sf

from audiodream_proto.v1 import audiodream_pb2 as pb
from served import ServerProcess, health_status, stub

# Loose sanity bounds; the measured figures are printed.
REFUSAL_SECONDS = 3.0
RSS_GROWTH_MB = 100.0


def flac_silence(seconds: float, channels: int, rate: int = 48000) -> bytes:
    """Compressed silence: a few hundred KB that decode to gigabytes."""
    buf = io.BytesIO()
    block = np.zeros((rate * 10, channels), np.float32)
    with sf.SoundFile(buf, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(seconds // 10)):
            f.write(block)
    return buf.getvalue()


def pcm(x: np.ndarray, rate: int) -> pb.Audio:
    x = np.atleast_2d(x.T).T if x.ndim == 1 else x
    return pb.Audio(pcm=x.astype("<f4").tobytes(), sample_rate=rate, channels=x.shape[1])


def noise(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.2 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = ServerProcess(tmp_path_factory.mktemp("bombs") / "server.log")
    yield proc
    proc.stop()


def refused(server, request: pb.DreamRequest, codes: tuple, what: str) -> grpc.RpcError:
    """Sends `request`; checks the status, the time and the RSS growth; returns the error."""
    dream = stub(server.channel())
    before = server.rss_mb()
    start = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        dream.Dream(request, timeout=60)
    seconds = time.perf_counter() - start
    growth = server.rss_mb() - before
    print(f"\n{what}: {info.value.code().name} in {seconds:.3f} s, RSS {before:.0f} MB "
          f"+ {growth:.1f} MB: {info.value.details()[:120]}")
    assert info.value.code() in codes, info.value.details()
    assert seconds < REFUSAL_SECONDS and growth < RSS_GROWTH_MB
    return info.value


def test_flac_bomb_is_refused_from_its_header(server):
    bomb = flac_silence(600, 8)
    assert len(bomb) < 400_000
    error = refused(server, pb.DreamRequest(audio=pb.Audio(encoded=bomb)),
                    (grpc.StatusCode.RESOURCE_EXHAUSTED,), "600 s 8 ch FLAC")
    assert "600" in error.details() and "300" in error.details()
    # Four at once: still refused, still cheap.
    before = server.rss_mb()
    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda _: _code(server, pb.DreamRequest(
            audio=pb.Audio(encoded=bomb))), range(4)))
    assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 4
    assert server.rss_mb() - before < RSS_GROWTH_MB


def _code(server, request):
    try:
        stub(server.channel()).Dream(request, timeout=60)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_stft_memory_bomb_is_refused_by_its_estimate(server):
    request = pb.DreamRequest(audio=pcm(noise(1.0, 16000), 16000), params=pb.DreamParams(
        model="model2", update="hardcut", n_fft=16384, hop=1, iterations=2))
    error = refused(server, request, (grpc.StatusCode.RESOURCE_EXHAUSTED,), "n_fft 16384 hop 1")
    assert "hop" in error.details() and "MB" in error.details()


def test_reply_over_the_message_limit_is_refused_before_dreaming(server):
    request = pb.DreamRequest(audio=pb.Audio(encoded=flac_silence(60, 8)))
    error = refused(server, request, (grpc.StatusCode.RESOURCE_EXHAUSTED,), "60 s 8 ch -> pcm")
    assert "ogg" in error.details() and "message limit" in error.details()


def test_absurd_amplitudes_are_refused(server):
    x = noise(0.5, 16000)
    x[100] = 3e38
    error = refused(server, pb.DreamRequest(audio=pcm(x, 16000)),
                    (grpc.StatusCode.OUT_OF_RANGE,), "a 3e38 sample")
    assert "scale it down" in error.details()


@pytest.mark.parametrize("params", [
    pb.DreamParams(model="model2", update="hardcut", n_fft=2048, hop=2048, iterations=1),
    pb.DreamParams(model="model2", update="flip", n_fft=16384, hop=4096, iterations=1),
    pb.DreamParams(octaves=6, octave_scale=4.0, iterations=1, model="crepe-tiny"),
], ids=["hop-equals-n_fft", "n_fft-longer-than-sound", "octaves-too-short"])
def test_in_range_settings_that_cannot_run_are_out_of_range(server, params):
    """These passed validation and then failed inside the engine with INTERNAL."""
    request = pb.DreamRequest(audio=pcm(noise(0.3, 16000), 16000), params=params)
    code = _code(server, request)
    print(f"\n{params.model} {params.update or 'add'} n_fft {params.n_fft} hop {params.hop} "
          f"octaves {params.octaves}: {code.name}")
    assert code in (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.OK,
                    grpc.StatusCode.NOT_FOUND)


def test_one_frame_on_crepe_is_never_ok_with_nan(server):
    request = pb.DreamRequest(audio=pcm(np.zeros(1, np.float32), 8000),  # NaN on main
                              params=pb.DreamParams(model="crepe-tiny", iterations=3))
    try:
        reply = stub(server.channel()).Dream(request, timeout=120)
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.NOT_FOUND), \
            exc.details()
        return
    assert np.isfinite(np.frombuffer(reply.audio.pcm, "<f4")).all()


def test_long_names_are_cut_in_messages(server):
    dream = stub(server.channel())
    for request in (pb.ListLayersRequest(model="m" * 200_000),):
        with pytest.raises(grpc.RpcError) as info:
            dream.ListLayers(request, timeout=30)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "characters" in info.value.details() and len(info.value.details()) < 1100
    x = pcm(noise(0.2, 16000), 16000)
    with pytest.raises(grpc.RpcError) as info:
        dream.Dream(pb.DreamRequest(audio=x, params=pb.DreamParams(
            model="model2", layers=[pb.LayerSelection(name="L" * 100_000)])), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert len(info.value.details()) < 1100


def test_messages_show_no_paths_or_addresses(server):
    with pytest.raises(grpc.RpcError) as info:
        stub(server.channel()).Dream(pb.DreamRequest(audio=pb.Audio(encoded=b"RIFF" + b"\0" * 40)),
                                     timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = info.value.details()
    assert "0x7" not in details and " at 0x" not in details.replace("0x...", "")
    assert "/" not in details.replace("float32", "")


def test_server_is_serving_and_logged_no_error(server):
    """Runs last: after every bomb the server answers and its log has no ERROR."""
    assert health_status(server.channel()) == "SERVING"
    assert server.error_lines() == []
