"""The real gRPC server on a real port: contract, limits, status codes, resilience."""

from __future__ import annotations

import io
import threading

import grpc
import numpy as np
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audiodream import Client, ServerError
from audiodream_proto.v1 import audiodream_pb2 as pb
from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc
from conftest import start_server
from sounds import tone


@pytest.fixture(scope="module")
def stub(server_address):
    channel = grpc.insecure_channel(server_address, options=[
        ("grpc.max_send_message_length", 256 * 1024 * 1024),
        ("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    yield pb_grpc.DreamServiceStub(channel)
    channel.close()


def pcm_audio(x: np.ndarray, rate: int) -> pb.Audio:
    return pb.Audio(pcm=x.astype("<f4").tobytes(), sample_rate=rate, channels=x.shape[1])


def test_list_models_and_layers(client):
    models = client.models()
    names = [m.name for m in models]
    assert "model1" in names and "model2" in names
    default = next(m for m in models if m.is_default)
    assert default.sample_rate == 44100 and default.fixed_input_samples == 44100
    assert default.device == "cpu" and default.trained is False and default.parameters > 0
    layers = client.layers("model1")
    assert [layer.name for layer in layers.layers] == ["conv0", "conv1", "conv2", "conv3", "logits"]
    assert layers.layers[0].channels == 32 and layers.layers[0].stride == 49
    assert layers.layers[0].frame_rate == pytest.approx(900.0)
    assert len(layers.classes) == 10 and layers.domain == "waveform"
    assert client.layers().model == default.name


@pytest.mark.parametrize("rate,channels,seconds", [
    (22050, 1, 0.3), (44100, 2, 1.0), (48000, 1, 5.0), (48000, 2, 30.0), (22050, 2, 12.3)])
def test_dream_preserves_length_rate_and_channels(client, rate, channels, seconds):
    x = tone(seconds, rate, channels)
    out = client.dream(x if channels > 1 else x[:, 0], rate, iterations=1)
    expected = x.shape if channels > 1 else (x.shape[0],)
    assert out.audio.shape == expected and out.sample_rate == rate
    assert np.abs(out.audio).max() <= 1.0


def test_zero_iterations_return_the_input_exactly_over_the_wire(client):
    x = tone(1.3, 48000, 2)
    out = client.dream(x, 48000, iterations=0)
    assert np.array_equal(out.audio, x)


def test_dream_result_carries_loss_features_timing_and_params(client):
    out = client.dream(tone(1.0, 44100)[:, 0], 44100, layers=["conv2:1,2@2"], iterations=6,
                       seed=3)
    assert len(out.loss) == 6 and out.loss[-1] > out.loss[0]
    assert out.input_features.rms > 0 and out.output_features.spectral_centroid_hz > 0
    assert out.timing["total"] >= out.timing["dream"] > 0
    assert out.params.iterations == 6 and out.params.seed == 3
    assert out.params.layers[0].name == "conv2" and list(out.params.layers[0].channels) == [1, 2]
    assert out.model == "model2" and out.windows == 1


def test_same_request_same_seed_same_bytes(client):
    x = tone(1.0, 44100)[:, 0]
    a = client.dream(x, 44100, iterations=3, time_jitter=40, seed=11).audio
    b = client.dream(x, 44100, iterations=3, time_jitter=40, seed=11).audio
    assert a.tobytes() == b.tobytes()


def test_encoded_input_and_encoded_output(stub):
    x = tone(0.8, 32000, 2)
    buf = io.BytesIO()
    sf.write(buf, x, 32000, format="FLAC", subtype="PCM_24")
    request = pb.DreamRequest(audio=pb.Audio(encoded=buf.getvalue()),
                              params=pb.DreamParams(iterations=1, output_format="wav"))
    response = stub.Dream(request)
    assert response.audio.format == "wav" and response.audio.WhichOneof("data") == "encoded"
    out, rate = sf.read(io.BytesIO(response.audio.encoded), dtype="float32")
    assert rate == 32000 and out.shape == x.shape


def test_dream_progress_streams_events_then_the_result(stub):
    request = pb.DreamRequest(audio=pcm_audio(tone(2.0, 44100), 44100),
                              params=pb.DreamParams(iterations=15))
    events = list(stub.DreamProgress(request))
    progress = [e.progress for e in events if e.HasField("progress")]
    assert events[-1].HasField("result") and sum(e.HasField("result") for e in events) == 1
    assert progress[0].stage == "queued"
    dreaming = [p for p in progress if p.stage == "dreaming"]
    assert dreaming and dreaming[-1].iteration == dreaming[-1].iterations == 15
    assert all(a.iteration <= b.iteration for a, b in zip(dreaming, dreaming[1:], strict=False))
    assert len(events[-1].result.loss) == 15


def test_client_progress_callback(client):
    seen = []
    client.dream(tone(1.0, 44100)[:, 0], 44100, iterations=5, progress=seen.append)
    assert seen and seen[-1].iteration == 5


def _nan_audio():
    x = tone(0.5, 44100)
    x[100, 0] = np.nan
    return pcm_audio(x, 44100)


def _inf_audio():
    x = tone(0.5, 44100)
    x[7, 0] = np.inf
    return pcm_audio(x, 44100)


GOOD = pcm_audio(tone(0.5, 44100), 44100)
C = grpc.StatusCode
BAD_REQUESTS = {
    "empty audio": (pb.DreamRequest(), C.INVALID_ARGUMENT),
    "empty pcm": (pb.DreamRequest(audio=pb.Audio(pcm=b"", sample_rate=44100, channels=1)),
                  C.INVALID_ARGUMENT),
    "nan samples": (pb.DreamRequest(audio=_nan_audio()), C.INVALID_ARGUMENT),
    "inf samples": (pb.DreamRequest(audio=_inf_audio()), C.INVALID_ARGUMENT),
    "undecodable bytes": (pb.DreamRequest(audio=pb.Audio(encoded=b"RIFF not really a wav")),
                          C.INVALID_ARGUMENT),
    "pcm length not a multiple": (pb.DreamRequest(audio=pb.Audio(
        pcm=b"\x00" * 10, sample_rate=44100, channels=2)), C.INVALID_ARGUMENT),
    "rate 0": (pb.DreamRequest(audio=pb.Audio(pcm=GOOD.pcm, sample_rate=0, channels=1)),
               C.INVALID_ARGUMENT),
    "rate 1e6": (pb.DreamRequest(audio=pb.Audio(pcm=GOOD.pcm, sample_rate=1_000_000,
                                                channels=1)), C.OUT_OF_RANGE),
    "0 channels": (pb.DreamRequest(audio=pb.Audio(pcm=GOOD.pcm, sample_rate=44100,
                                                  channels=0)), C.INVALID_ARGUMENT),
    "99 channels": (pb.DreamRequest(audio=pb.Audio(pcm=GOOD.pcm[:99 * 4 * 10],
                                                   sample_rate=44100, channels=99)),
                    C.OUT_OF_RANGE),
    "unknown model": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(model="yamnet-xl")),
                      C.NOT_FOUND),
    "unknown layer": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(
        layers=[pb.LayerSelection(name="conv42")])), C.NOT_FOUND),
    "channel out of range": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(
        layers=[pb.LayerSelection(name="conv0", channels=[3, 16])])), C.OUT_OF_RANGE),
    "negative iterations": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(iterations=-5)),
                            C.OUT_OF_RANGE),
    "absurd iterations": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(
        iterations=2_000_000_000)), C.OUT_OF_RANGE),
    "nan step": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(step_size=float("nan"))),
                 C.INVALID_ARGUMENT),
    "negative step": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(step_size=-1.0)),
                      C.OUT_OF_RANGE),
    "unknown objective": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(
        objective="delight")), C.INVALID_ARGUMENT),
    "unknown class": (pb.DreamRequest(audio=GOOD, params=pb.DreamParams(
        objective="class", class_name="Dog")), C.NOT_FOUND),
    "too long": (pb.DreamRequest(audio=pcm_audio(np.zeros((8000 * 41, 1), np.float32), 8000)),
                 C.RESOURCE_EXHAUSTED),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_their_status_and_the_server_keeps_answering(stub, case):
    request, code = BAD_REQUESTS[case]
    for call in (stub.Dream, lambda r: list(stub.DreamProgress(r))):
        with pytest.raises(grpc.RpcError) as info:
            call(request)
        assert info.value.code() == code, info.value.details()
        assert info.value.details()  # says what was wrong
    assert stub.ListModels(pb.ListModelsRequest()).models


def test_unknown_model_in_list_layers(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.ListLayers(pb.ListLayersRequest(model="nope"))
    assert info.value.code() == C.NOT_FOUND and "model2" in info.value.details()


def test_payload_above_the_message_limit_is_refused_and_the_server_lives(models):
    server, address = start_server(models, max_message_mb=1)
    try:
        big = pcm_audio(np.zeros((300_000, 1), np.float32), 44100)  # 1.2 MB
        with Client(address, max_message_mb=64) as c:
            channel_stub = c._stub
            with pytest.raises(grpc.RpcError) as info:
                channel_stub.Dream(pb.DreamRequest(audio=big))
            assert info.value.code() == C.RESOURCE_EXHAUSTED
            assert c.models()
    finally:
        server.stop(None)


def test_client_error_names_the_status(client):
    with pytest.raises(ServerError) as info:
        client.dream(tone(0.5, 44100)[:, 0], 44100, model="nope")
    assert info.value.code == "NOT_FOUND"


def test_concurrent_dreams_do_not_disturb_each_other(server_address):
    """Four clients at once on one shared model get what they would get alone."""
    inputs = [tone(1.0, 44100, freq=110 * (k + 1))[:, 0] for k in range(4)]
    with Client(server_address) as c:
        alone = [c.dream(x, 44100, iterations=3, layers=[f"conv{k}"]).audio
                 for k, x in enumerate(inputs)]
    results = [None] * 4

    def run(k):
        with Client(server_address) as c:
            results[k] = c.dream(inputs[k], 44100, iterations=3, layers=[f"conv{k}"]).audio

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for k in range(4):
        assert np.array_equal(results[k], alone[k])


def test_busy_server_refuses_beyond_its_queue(models):
    server, address = start_server(models, max_active=1, max_queued=1)
    try:
        x = tone(3.0, 44100)[:, 0]
        outcomes = []

        def run():
            try:
                with Client(address) as c:
                    c.dream(x, 44100, iterations=40)
                outcomes.append("ok")
            except ServerError as exc:
                outcomes.append(exc.code)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert "ok" in outcomes and "RESOURCE_EXHAUSTED" in outcomes
    finally:
        server.stop(None)


def test_health_and_reflection(server_address):
    with grpc.insecure_channel(server_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "audiodream.v1.DreamService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflect.ServerReflectionInfo(iter([
            reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name for s in next(answers).list_services_response.service]
        assert "audiodream.v1.DreamService" in names


def test_container_health_probe(server_address):
    from audiodream_server.healthcheck import main as probe

    assert probe([server_address]) == 0
    assert probe(["127.0.0.1:1"]) == 1


@pytest.mark.parametrize("method", ["ListModels", "ListLayers", "Dream", "DreamProgress",
                                    "StreamDream"])
def test_malformed_protobuf_bytes_are_invalid_argument(server_address, method):
    """grpcio answers a request it cannot parse with INTERNAL; ours say INVALID_ARGUMENT."""
    path = f"/audiodream.v1.DreamService/{method}"
    raw = {"request_serializer": None, "response_deserializer": None}
    junk = b"\x0a\xff\xff\xff\xff\x0f"  # a length prefix far past the end
    with grpc.insecure_channel(server_address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            if method == "StreamDream":
                list(channel.stream_stream(path, **raw)(iter([junk]), timeout=30))
            elif method == "DreamProgress":
                list(channel.unary_stream(path, **raw)(junk, timeout=30))
            else:
                channel.unary_unary(path, **raw)(junk, timeout=30)
    assert info.value.code() == C.INVALID_ARGUMENT, info.value.details()
    assert "malformed" in info.value.details()


def test_a_cancelled_dream_stops_and_frees_its_slot_and_is_logged_at_info(models, caplog):
    """One compute slot. A dream of a million iterations (hours) is cancelled as soon
    as it reports its first step; the next dream can only get the slot if the
    cancellation reached the running dream and stopped it."""
    import logging

    server, address = start_server(models, max_active=1, max_iterations=1_000_000)
    x = np.zeros((44100, 1), np.float32)
    try:
        with caplog.at_level(logging.INFO), grpc.insecure_channel(address) as channel:
            stub = pb_grpc.DreamServiceStub(channel)
            endless = stub.DreamProgress(pb.DreamRequest(
                audio=pcm_audio(x, 44100), params=pb.DreamParams(iterations=1_000_000)),
                timeout=600)
            for event in endless:  # waits for the dream to be computing
                if event.progress.stage == "dreaming":
                    break
            endless.cancel()
            reply = stub.Dream(pb.DreamRequest(audio=pcm_audio(x, 44100),
                                               params=pb.DreamParams(iterations=1)),
                               timeout=600)
            assert len(reply.audio.pcm) == 4 * 44100
    finally:
        server.stop(None)
    assert any("caller left" in r.message and r.levelno == logging.INFO for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_status_messages_are_cleaned():
    from audiodream_server.service.status import clean

    message = clean("cannot open /home/someone/secret/models/x.pt at <obj at 0x7f12ab34cd56>\n"
                    "Traceback (most recent call last):\n  File ...")
    assert "/home" not in message and "x.pt" in message and "0x7f" not in message
    assert "Traceback" not in message
    assert len(clean("name " + "n" * 100_000)) < 200


def test_allocation_failures_are_resource_exhausted_and_bugs_internal():
    from audiodream_server.service.status import status_of

    oom = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not "
                       "enough memory: you tried to allocate 6442450944 bytes.")
    for exc in (oom, MemoryError()):
        code, message = status_of(exc)
        assert code == C.RESOURCE_EXHAUSTED and "shorter audio" in message
    assert status_of(ValueError("a bug"))[0] == C.INTERNAL
