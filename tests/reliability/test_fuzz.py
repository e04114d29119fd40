"""Fuzzing a real server: generated requests, stream message sequences and raw bytes.

Whatever a client sends, the answer is a deliberate status (never INTERNAL or
UNKNOWN), an OK reply carries only finite audio of the right shape, and the
server is SERVING afterwards. CI runs about 2,000 cases with a fixed seed;
AUDIODREAM_RELIABILITY=long runs 20,000 with fresh randomness.
"""

from __future__ import annotations

import io
import re

import grpc
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiodream_proto.v1 import audiodream_pb2 as pb
from conftest import start_server
from served import BAD_CODES, LONG, MESSAGE_OPTIONS, health_status, stub
from audiodream_server.engine import params as params_mod

SCALE = 10 if LONG else 1
CASES = {"dream": 900 * SCALE, "stream": 300 * SCALE, "raw": 800 * SCALE}
PROFILE = dict(deadline=None, database=None, derandomize=not LONG,
               suppress_health_check=list(HealthCheck))
METHODS = ("ListModels", "ListLayers", "Dream", "DreamProgress", "StreamDream")
counted = {"cases": 0}
codes: dict[str, int] = {}

# The engine's own choice lists, so the fuzz follows them when they change.
CHOICES = {
    "objective": params_mod.OBJECTIVES,
    "update": params_mod.UPDATES,
    "init": params_mod.INITS,
    "grad_norm": params_mod.GRAD_NORMS,
    "output_format": params_mod.OUTPUT_FORMATS,
    "phase": params_mod.PHASES,
    "output": params_mod.OUTPUTS,
    "model": ("model2", "model1"),
    "class_name": ("x",),
}
INT_EDGES = [-1, 0, 1, 2, 3, 7, 15, 16, 17, 64, 255, 256, 512, 1024, 2047, 2048, 4096, 16384,
             16385, 2**31 - 1, -2**31]
FLOAT_EDGES = [0.0, -0.0, 1e-30, 0.5, 1.0, 1.1, 2.0, 4.0, 10.0, 1e6, 3e38, -1.0,
               float("nan"), float("inf"), float("-inf")]
LAYERS = ["conv0", "conv1", "conv3", "conv7", "logits", "", "nope", "x" * 5000, "conv1:0"]


@pytest.fixture(scope="module")
def fuzz_server(models):
    # Small limits keep each dream cheap, so the cases exercise the checks, not the CPU.
    server, address = start_server(models, max_iterations=3, max_seconds=2.0,
                                   max_message_mb=8, max_queued=64, stream_config_seconds=2.0)
    channel = grpc.insecure_channel(address, options=MESSAGE_OPTIONS)
    yield channel
    channel.close()
    server.stop(None)


def strings(name: str):
    return st.one_of(st.sampled_from(CHOICES.get(name, ("",))), st.just(""),
                     st.text(max_size=12), st.just("é" * 300))


SANE = {
    "iterations": st.integers(0, 3), "step_size": st.sampled_from([0.0, 0.02, 0.5, 10.0]),
    "n_fft": st.sampled_from([16, 256, 512, 2048, 16384]),
    "hop": st.sampled_from([1, 8, 128, 256, 512, 2048]),
    "octaves": st.integers(1, 6), "octave_scale": st.sampled_from([1.1, 1.5, 4.0]),
    "time_jitter": st.sampled_from([0, 100, 1_000_000]),
    "smoothing_kernel": st.sampled_from([1, 9, 255]), "gl_iters": st.sampled_from([0, 4]),
    "lowpass_hz": st.sampled_from([0.0, 10.0, 1e6]), "mix": st.sampled_from([0.0, 1.0]),
    "class_index": st.sampled_from([0, 1, 5]), "window_overlap": st.sampled_from([0.05, 0.75]),
    "init_frequency_hz": st.sampled_from([1.0, 96000.0]),
    "threshold": st.sampled_from([-120.0, -45.0, 0.0]), "power": st.sampled_from([0.1, 4.0]),
    "content_weight": st.sampled_from([0.0, 1000.0]),
}


@st.composite
def params(draw, sane: bool = False) -> pb.DreamParams:
    """Any values (`sane` False) or values each within its documented range."""
    msg = pb.DreamParams()
    for field in pb.DreamParams.DESCRIPTOR.fields:
        if field.name == "layers" or draw(st.integers(0, 2)):
            continue
        if field.name == "classes":  # repeated ClassTarget: names, indices, weights
            for _ in range(draw(st.integers(1, 3))):
                target = msg.classes.add(name=draw(strings("class_name")))
                if draw(st.booleans()):
                    target.index = draw(st.sampled_from(INT_EDGES))
                if draw(st.booleans()):
                    target.weight = draw(st.sampled_from(FLOAT_EDGES))
            continue
        if sane and field.name in SANE:
            setattr(msg, field.name, draw(SANE[field.name]))
        elif sane and field.name in CHOICES and field.name != "class_name":
            setattr(msg, field.name, draw(st.sampled_from(CHOICES[field.name])))
        elif sane:
            continue
        elif field.type == field.TYPE_STRING:
            setattr(msg, field.name, draw(strings(field.name)))
        elif field.type == field.TYPE_BOOL:
            setattr(msg, field.name, draw(st.booleans()))
        elif field.type == field.TYPE_FLOAT:
            setattr(msg, field.name, draw(st.one_of(
                st.sampled_from(FLOAT_EDGES),
                st.floats(-2, 5, allow_nan=False, width=32))))
        elif field.type == field.TYPE_UINT64:
            setattr(msg, field.name, draw(st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1])))
        else:
            setattr(msg, field.name, draw(st.one_of(st.sampled_from(INT_EDGES),
                                                    st.integers(-3, 40))))
    if sane or (msg.HasField("iterations") and msg.iterations > 3):
        msg.iterations = draw(st.integers(0, 3))  # mostly dream, sometimes refuse
    for _ in range(draw(st.integers(0, 2))):
        msg.layers.add(name=draw(st.sampled_from(LAYERS[:5] if sane else LAYERS)),
                       channels=draw(st.lists(st.integers(0 if sane else -2, 70), max_size=3)),
                       **({"weight": draw(st.sampled_from([1.0, -2.0] if sane
                                                          else FLOAT_EDGES))}
                          if draw(st.booleans()) else {}))
    return msg


@st.composite
def samples(draw, frames_max: int = 4000) -> np.ndarray:
    channels = draw(st.integers(1, 3))
    frames = draw(st.integers(1, frames_max))
    kind = draw(st.sampled_from(["tone", "tone", "tone", "zeros", "loud", "special"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (0.3 * rng.standard_normal((frames, channels))).astype(np.float32)
    if kind == "zeros":
        x[:] = 0
    elif kind == "loud":
        with np.errstate(over="ignore"):
            x *= draw(st.sampled_from([10.0, 1e3, 1e5, 3e38]))
    elif kind == "special":
        x[draw(st.integers(0, frames - 1)), 0] = draw(st.sampled_from(
            [np.nan, np.inf, -np.inf, 3e38]))
    return x


@st.composite
def audio(draw) -> pb.Audio:
    x = draw(samples())
    kind = draw(st.sampled_from(["pcm", "pcm", "wav", "flac", "garbage", "truncated", "empty"]))
    rate = draw(st.sampled_from([0, 7999, 8000, 16000, 22050, 44100, 48000, 192000, 192001]))
    if kind == "pcm":
        pcm = x.astype("<f4").tobytes()
        if draw(st.booleans()):
            pcm = pcm[:draw(st.integers(0, len(pcm)))]
        return pb.Audio(pcm=pcm, sample_rate=rate,
                        channels=draw(st.sampled_from([0, 1, 2, 3, 9, x.shape[1]])))
    if kind == "empty":
        return pb.Audio()
    if kind == "garbage":
        return pb.Audio(encoded=draw(st.binary(max_size=200)))
    buf = io.BytesIO()
    with np.errstate(all="ignore"):
        clipped = np.nan_to_num(np.clip(x, -1, 1))
    file_rate = max(rate, 1) if kind == "wav" else draw(st.sampled_from([8000, 16000, 48000]))
    sf.write(buf, clipped, file_rate, format="WAV" if kind == "wav" else "FLAC",
             subtype="FLOAT" if kind == "wav" else "PCM_16")
    data = buf.getvalue()
    if kind == "truncated":
        data = data[:draw(st.integers(0, len(data)))]
    return pb.Audio(encoded=data)


@st.composite
def dream_requests(draw) -> pb.DreamRequest:
    if draw(st.booleans()):  # well-formed: reaches the engine with in-range settings
        x = draw(samples())
        rate = draw(st.sampled_from([8000, 16000, 44100, 48000]))
        request = pb.DreamRequest(audio=pb.Audio(pcm=x.astype("<f4").tobytes(),
                                                 sample_rate=rate, channels=x.shape[1]),
                                  params=draw(params(sane=True)))
    else:
        request = pb.DreamRequest(audio=draw(audio()), params=draw(params()))
    if draw(st.integers(0, 3)) == 0:
        request.target.CopyFrom(draw(audio()))
    return request


def check_dream_reply(reply: pb.DreamResponse, request: pb.DreamRequest) -> None:
    out = reply.audio
    if out.pcm:
        x = np.frombuffer(out.pcm, "<f4")
        assert np.isfinite(x).all(), "OK reply with non-finite audio"
        if request.audio.WhichOneof("data") == "pcm":
            assert x.size == len(request.audio.pcm) // 4, "reply length differs from input"
    else:
        x, _ = sf.read(io.BytesIO(out.encoded), dtype="float32")
        assert np.isfinite(x).all()


def expect_deliberate(exc: grpc.RpcError, what: object) -> None:
    codes[exc.code().name] = codes.get(exc.code().name, 0) + 1
    assert exc.code() not in BAD_CODES, f"{exc.code()} {exc.details()} for {what!r:.2000}"
    assert len(exc.details() or "") <= 1100
    # Leaks would look like these; a client's own strings echoed back are fine.
    for leak in ("Traceback (most recent call", "site-packages", "audiodream_server/"):
        assert leak not in (exc.details() or ""), exc.details()
    assert not re.search(r"0x[0-9a-fA-F]{6,}", exc.details() or ""), exc.details()


@settings(max_examples=CASES["dream"], **PROFILE)
@given(request=dream_requests(), progress=st.booleans())
def test_generated_dream_requests(fuzz_server, request, progress):
    counted["cases"] += 1
    dream = stub(fuzz_server)
    try:
        if progress:
            events = list(dream.DreamProgress(request, timeout=60))
            assert events[-1].HasField("result")
            check_dream_reply(events[-1].result, request)
        else:
            check_dream_reply(dream.Dream(request, timeout=60), request)
        codes["OK"] = codes.get("OK", 0) + 1
    except grpc.RpcError as exc:
        expect_deliberate(exc, request)


@st.composite
def stream_messages(draw) -> list[pb.StreamRequest]:
    messages = []
    if draw(st.integers(0, 5)):
        config = pb.StreamConfig(
            params=draw(params()), sample_rate=draw(st.sampled_from([0, 8000, 16000, 44100])),
            channels=draw(st.sampled_from([0, 1, 2, 9])),
            block_size=draw(st.sampled_from([0, 63, 64, 256, 512, 2048, 16385])),
            window=draw(st.sampled_from([0, 1, 128, 1024, 4096, 10**7])),
            mode=draw(st.sampled_from(["", "process", "generate", "nope"])),
            delay=draw(st.sampled_from([0, 1, 256, 10**6])), offline=draw(st.booleans()))
        if draw(st.integers(0, 4)) == 0:
            config.target.CopyFrom(draw(audio()))
        messages.append(pb.StreamRequest(config=config))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["audio", "audio", "control", "config"]))
        if kind == "audio":
            block = draw(samples(frames_max=600))
            messages.append(pb.StreamRequest(audio=pb.AudioChunk(
                seq=draw(st.integers(0, 2**64 - 1)), pcm=block.astype("<f4").tobytes())))
        elif kind == "control":
            messages.append(pb.StreamRequest(control=pb.Control(
                params=draw(params()), reset=draw(st.booleans()),
                mode=draw(st.sampled_from(["", "process", "generate", "nope"])))))
        else:
            messages.append(pb.StreamRequest(config=pb.StreamConfig()))
    return messages


@settings(max_examples=CASES["stream"], **PROFILE)
@given(messages=stream_messages())
def test_generated_stream_sequences(fuzz_server, messages):
    counted["cases"] += 1
    try:
        for reply in stub(fuzz_server).StreamDream(iter(messages), timeout=60):
            if reply.HasField("audio"):
                assert np.isfinite(np.frombuffer(reply.audio.pcm, "<f4")).all()
    except grpc.RpcError as exc:
        expect_deliberate(exc, messages)


@settings(max_examples=CASES["raw"], **PROFILE)
@given(method=st.sampled_from(METHODS), data=st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"\xff" * 10, b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05ab", b"\x08" * 20,
                     b"\x0a\x02\xc3\x28", b"\x1a\x80\x80\x80\x80\x10"])))
def test_raw_malformed_bytes(fuzz_server, method, data):
    """Bytes that are not a valid message are INVALID_ARGUMENT, never INTERNAL."""
    counted["cases"] += 1
    path = f"/audiodream.v1.DreamService/{method}"
    identity = {"request_serializer": None, "response_deserializer": None}
    try:
        if method == "StreamDream":
            list(fuzz_server.stream_stream(path, **identity)(iter([data, data]), timeout=30))
        elif method == "DreamProgress":
            list(fuzz_server.unary_stream(path, **identity)(data, timeout=30))
        else:
            fuzz_server.unary_unary(path, **identity)(data, timeout=30)
    except grpc.RpcError as exc:
        expect_deliberate(exc, data)


def test_server_serving_after_the_fuzz(fuzz_server):
    """Runs last in this module: every case above ran and the server still answers."""
    assert counted["cases"] >= sum(CASES.values()) * 0.95
    print(f"\nfuzz: {counted['cases']} cases, no INTERNAL/UNKNOWN; statuses: {codes}")
    assert health_status(fuzz_server) == "SERVING"
    assert stub(fuzz_server).ListModels(pb.ListModelsRequest(), timeout=5).models
