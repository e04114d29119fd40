"""StreamDream end to end on a real server: timing contract, joins, controls, batching."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest

from audiodream import Client, ServerError
from audiodream_proto.v1 import audiodream_pb2 as pb
from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc
from conftest import start_server
from sounds import tone

B = 2048


def blocks_of(x: np.ndarray, block: int = B) -> list[np.ndarray]:
    return [x[i:i + block] for i in range(0, len(x) - block + 1, block)]


@pytest.fixture(scope="module")
def streaming_server(models):
    server, address = start_server(models, max_streams=6)
    yield server, address
    server.stop(None)


@pytest.fixture()
def address(streaming_server):
    return streaming_server[1]


def run_stream(address, x, rate=48000, channels=1, **kwargs):
    with Client(address) as c, c.stream(rate, channels, B, **kwargs) as s:
        outputs = list(s.process(blocks_of(x)))
        return s, outputs


def test_twenty_seconds_come_back_block_for_block(address):
    x = tone(20.0, 48000)[:, 0]
    x = x[: len(x) // B * B]
    with Client(address) as c, c.stream(48000, 1, B, iterations=1) as s:
        sent = [s.send(block) for block in blocks_of(x)[:5]]
        got = [s.receive() for _ in sent]
        assert [seq for seq, _ in got] == sent == list(range(5))
        rest = list(s.process(blocks_of(x)[5:]))
    outputs = [b for _, b in got] + rest
    assert len(outputs) == len(x) // B
    assert all(o.shape == (B,) and o.dtype == np.float32 for o in outputs)
    assert sum(len(o) for o in outputs) == len(x)
    assert s.stats and s.stats[-1].blocks >= len(outputs) - 30
    assert all(np.isfinite(o).all() and np.abs(o).max() <= 1.0 for o in outputs)


@pytest.mark.parametrize("rate,channels,delay", [(48000, 1, 0), (44100, 2, 0), (22050, 1, 5000)])
def test_reported_latency_is_the_real_one(address, rate, channels, delay):
    x = tone(3.0, rate, channels)
    s, outputs = run_stream(address, x, rate, channels, iterations=0, mix=1.0, delay=delay)
    latency = s.latency
    assert latency == (delay or B)
    y = np.concatenate(outputs).reshape(-1, channels)
    n = len(y)
    assert np.array_equal(y[latency:], x[: n - latency].reshape(-1, channels))
    assert np.all(y[:latency] == 0)


def _join_ratio(y: np.ndarray, first_join: int) -> float:
    """Largest (step at a block join) / (largest step within 32 samples around it).

    A click is a step much larger than its neighbours; a smooth join is ~1.
    """
    steps = np.abs(np.diff(y))
    ratios = []
    for j in range(first_join, len(steps) - 33, B):
        around = np.concatenate([steps[j - 32:j], steps[j + 1:j + 33]])
        ratios.append(steps[j] / max(around.max(), 1e-9))
    return max(ratios)


@pytest.mark.parametrize("mode", ["process", "generate"])
def test_no_discontinuities_at_block_joins(address, mode):
    rate = 44100
    t = np.arange(6 * rate) / rate
    x = (0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    # The low-pass keeps the dream smooth, so a step at a join would stand out.
    s, outputs = run_stream(address, x, rate, iterations=3, step_size=0.05, lowpass_hz=1500.0,
                            mode=mode, init="pink", offline=True)
    y = np.concatenate(outputs)
    assert np.abs(y[s.latency:] - x[: len(y) - s.latency]).max() > 0.05  # it did dream
    assert _join_ratio(y, first_join=2 * B - 1) < 1.5
    # The same measure does see a click: one sample off at a join.
    clicked = y.copy()
    clicked[4 * B:] += 0.02
    assert _join_ratio(clicked, first_join=2 * B - 1) > 1.5


def test_generate_mode_runs_free_and_stays_bounded(address):
    x = np.zeros(48000 * 3, np.float32)  # silence in: the loop sings on its own
    s, outputs = run_stream(address, x, iterations=2, mode="generate", init="white",
                            step_size=0.05, offline=True, mix_original=0.0)
    y = np.concatenate(outputs)
    assert np.abs(y).max() <= 1.0 and np.sqrt(np.mean(y[B:] ** 2)) > 0.01
    assert s.ready.config.mode == "generate"


def test_generate_mode_starts_at_once_and_follows_the_live_input(address):
    """From the first block after the latency, the loop plays what is played, dreamed;
    a new sound later in the stream reaches the output (the loop follows it)."""
    first = tone(2.0, 48000, freq=220.0)[:, 0]
    second = tone(3.0, 48000, freq=370.0, seed=2)[:, 0]
    x = np.concatenate([first, second])
    s, outputs = run_stream(address, x, iterations=2, mode="generate", offline=True)
    y = np.concatenate(outputs)
    latency = s.latency
    early = slice(latency, latency + 24000)  # the first half second heard

    def corr(a, b):
        return float(np.corrcoef(a, b)[0, 1])

    assert np.sqrt(np.mean(y[early] ** 2)) > 0.5 * np.sqrt(np.mean(x[:24000] ** 2))
    assert corr(y[early], x[early.start - latency:early.stop - latency]) > 0.5
    # Two seconds into the new sound, the output carries it, not the old one.
    late = y[latency + 96000 + 96000: latency + 96000 + 120000]
    spectrum = np.abs(np.fft.rfft(late))
    freqs = np.fft.rfftfreq(late.size, 1 / 48000)
    near = lambda f: spectrum[(freqs > f - 20) & (freqs < f + 20)].max()  # noqa: E731
    assert near(370.0) > near(220.0)


def test_control_changes_the_dream_from_the_next_block(address):
    x = tone(2.0, 48000)[:, 0]
    blocks = blocks_of(x)
    with Client(address) as c, c.stream(48000, 1, B, iterations=0, offline=True) as s:
        before = []
        for block in blocks[:10]:
            s.send(block)
            before.append(s.receive()[1])
        s.control(iterations=3, step_size=0.05, layers=["conv1"])
        after = []
        for block in blocks[10:]:
            s.send(block)
            after.append(s.receive()[1])
    y = np.concatenate(before)
    assert np.array_equal(y[B:], x[: len(y) - B])  # untouched until the control
    changed = np.concatenate(after)
    dry = x[len(y) - B: len(y) - B + len(changed)]
    assert np.abs(changed - dry).max() > 0.01
    assert not s.warnings


def test_reset_clears_the_state(address):
    x = tone(1.0, 48000)[:, 0]
    blocks = blocks_of(x)[:12]
    with Client(address) as c, c.stream(48000, 1, B, iterations=1, mode="generate",
                                        init="pink", offline=True, seed=3) as s:
        first = [s.receive()[1] for _ in [s.send(b) for b in blocks]]
        s.reset()
        second = [s.receive()[1] for _ in [s.send(b) for b in blocks]]
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a, b)


def test_invalid_control_is_answered_in_band_and_the_stream_goes_on(address):
    x = tone(1.0, 48000)[:, 0]
    with Client(address) as c, c.stream(48000, 1, B, iterations=1) as s:
        s.send(blocks_of(x)[0])
        s.receive()
        s.control(step_size=-3.0)
        s.control(layers=["conv99"])
        s.control(mode="dance")
        s.send(blocks_of(x)[1])
        seq, block = s.receive()
        assert seq == 1 and block.shape == (B,)
        codes = [w.code for w in s.warnings]
        assert codes.count("invalid_control") == 3
        messages = " ".join(w.message for w in s.warnings)
        assert "step_size" in messages and "conv99" in messages and "dance" in messages


def test_control_with_an_uncomputable_filter_rule_is_refused_in_band(address):
    """A Control passes the same STFT rules as a stream's config: a filter rule the
    inverse STFT cannot run would otherwise fail the block (and every stream
    batched with it)."""
    x = tone(1.0, 48000)[:, 0]
    with Client(address) as c, c.stream(48000, 1, B, iterations=1, offline=True) as s:
        s.send(blocks_of(x)[0])
        s.receive()
        s.control(update="hardcut", n_fft=1024, hop=1024)
        s.send(blocks_of(x)[1])
        seq, block = s.receive()
        assert seq == 1 and np.isfinite(block).all()
        assert [w.code for w in s.warnings].count("invalid_control") == 1
        assert "hop" in " ".join(w.message for w in s.warnings)


def test_bad_chunk_gets_a_warning_and_a_silent_block(address):
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DreamServiceStub(channel)
        nan = np.full(B, np.nan, np.float32).tobytes()
        requests = [pb.StreamRequest(config=pb.StreamConfig(sample_rate=48000, channels=1)),
                    pb.StreamRequest(audio=pb.AudioChunk(seq=7, pcm=b"\x00" * 12)),
                    pb.StreamRequest(audio=pb.AudioChunk(seq=8, pcm=nan))]
        responses = list(stub.StreamDream(iter(requests)))
    kinds = [r.WhichOneof("msg") for r in responses]
    assert kinds[0] == "ready"
    chunks = [r.audio for r in responses if r.WhichOneof("msg") == "audio"]
    assert [c.seq for c in chunks] == [7, 8]
    assert all(len(c.pcm) == 4 * B for c in chunks)
    warnings = [r.warning for r in responses if r.WhichOneof("msg") == "warning"]
    # (A "degraded" warning may come too on a busy machine: real time is kept.)
    invalid = [w for w in warnings if w.code == "invalid_audio"]
    assert [w.seq for w in invalid] == [7, 8]
    assert "bytes" in invalid[0].message and "NaN" in invalid[1].message


@pytest.mark.parametrize("config,code", [
    (pb.StreamConfig(sample_rate=0, channels=1), grpc.StatusCode.INVALID_ARGUMENT),
    (pb.StreamConfig(sample_rate=48000, channels=1, block_size=10), grpc.StatusCode.OUT_OF_RANGE),
    (pb.StreamConfig(sample_rate=48000, channels=1, mode="loop"),
     grpc.StatusCode.INVALID_ARGUMENT),
    (pb.StreamConfig(sample_rate=48000, channels=1, window=1000), grpc.StatusCode.OUT_OF_RANGE),
    (pb.StreamConfig(sample_rate=48000, channels=1, delay=47000), grpc.StatusCode.OUT_OF_RANGE),
    (pb.StreamConfig(sample_rate=48000, channels=1, params=pb.DreamParams(model="nope")),
     grpc.StatusCode.NOT_FOUND),
    (pb.StreamConfig(sample_rate=48000, channels=1, params=pb.DreamParams(
        step_size=float("nan"))), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_invalid_config_ends_the_call(address, config, code):
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DreamServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.StreamDream(iter([pb.StreamRequest(config=config)])))
    assert info.value.code() == code and info.value.details()


def test_first_message_must_be_a_config(address):
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.DreamServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.StreamDream(iter([pb.StreamRequest(audio=pb.AudioChunk(seq=0))])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_vanished_client_frees_its_stream(models):
    server, address = start_server(models)
    try:
        hub = server_hub(server)
        x = tone(1.0, 48000)[:, 0]
        c = Client(address)
        s = c.stream(48000, 1, B, iterations=1)
        s.send(blocks_of(x)[0])
        s.receive()
        assert hub.active == 1
        s.close()  # cancels mid-stream
        c.close()
        assert hub.wait_active(lambda n: n == 0, timeout=30)  # woken as the call ends
    finally:
        server.stop(None)


def test_a_cancelled_stream_frees_its_thread_and_the_worker_at_once(models):
    """A block waiting in the scheduler and a block being dreamed both give up when
    their stream is cancelled: the stream's thread is free for the next stream and
    the worker stops stepping the cancelled block. The hog asks a million
    iterations (hours): only the cancellation signal lets the last stream through."""
    server, address = start_server(models, max_streams=2, max_iterations=1_000_000)
    block = blocks_of(tone(1.0, 48000)[:, 0])[0]
    try:
        hub = server_hub(server)
        with Client(address, timeout=600) as c:  # fails, not hangs, if the hog runs on
            hog = c.stream(48000, 1, B, iterations=1_000_000, offline=True)
            hog.send(block)
            waiting = c.stream(48000, 1, B, iterations=1, offline=True)
            waiting.send(block)  # queued behind the hog (or batched with it)
            waiting.close()
            assert hub.wait_active(lambda n: n == 1, timeout=30)
            # Two stream threads: the cancelled one must be back for this one to open.
            with c.stream(48000, 1, B, iterations=1, offline=True) as late:
                hog.close()  # the worker is stepping its block: it stops
                assert hub.wait_active(lambda n: n == 1, timeout=30)
                late.send(block)
                assert len(late.receive()[1]) == B
    finally:
        server.stop(None)


def server_hub(server):
    return server.services.dream.streams


def test_too_many_streams_are_refused(models):
    server, address = start_server(models, max_streams=1)
    try:
        with Client(address) as c, c.stream(48000, 1, B, iterations=0) as first:
            assert first.latency == B
            with pytest.raises(ServerError) as info:
                c.stream(48000, 1, B)
            assert info.value.code == "RESOURCE_EXHAUSTED"
    finally:
        server.stop(None)


def test_model_change_by_control(address):
    x = tone(1.0, 48000)[:, 0]
    with Client(address) as c, c.stream(48000, 1, B, iterations=1) as s:
        s.send(blocks_of(x)[0])
        s.receive()
        s.control(model="model1")
        s.send(blocks_of(x)[1])
        s.receive()
        assert s.ready.model == "model1"
        assert "model_changed" in [w.code for w in s.warnings]


def test_concurrent_streams_are_batched_and_exact(streaming_server):
    server, address = streaming_server
    inputs = [tone(2.0, 48000, freq=100 * (k + 1), seed=k)[:, 0] for k in range(4)]
    settings = [dict(iterations=2, layers=[f"conv{k + 1}"], seed=k, time_jitter=10 * k,
                     offline=True) for k in range(4)]
    alone = [np.concatenate(run_stream(address, inputs[k], **settings[k])[1]) for k in range(4)]
    together = [None] * 4
    start = threading.Barrier(4)

    def run(k):
        start.wait()
        together[k] = np.concatenate(run_stream(address, inputs[k], **settings[k])[1])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    hub = server_hub(server)
    assert hub.scheduler(hub_model(server)).stats().largest_pass > 1  # they shared passes
    for k in range(4):
        # Batched BLAS may round differently from batch-of-one: float32 tolerance.
        np.testing.assert_allclose(together[k], alone[k], atol=1e-5)


def hub_model(server):
    return server.services.dream.models.get()


def test_a_slow_step_does_not_keep_later_blocks_at_zero_iterations(default_model):
    """After one very slow step, the cost estimate decays until steps run again."""
    import torch

    from audiodream_server.engine import DreamParams
    from audiodream_server.stream.scheduler import StreamScheduler
    from audiodream_server.stream.session import Job

    scheduler = StreamScheduler(default_model, sample_seconds=10.0 / 44100)  # as if a
    try:                                                   # 1 s step had taken 10 s
        params = DreamParams(iterations=2).resolve(default_model.spec)
        runs = []
        for _ in range(40):
            x = torch.zeros(1, 44100)
            job = Job(x=x, x0=x, params=params, iterations=2, shifts=None,
                      deadline=time.perf_counter() + 0.5)
            runs.append(scheduler.run(job, block_seconds=0.5).iterations_run)
            if runs[-1]:
                break
        assert runs[0] == 0 and runs[-1] > 0
    finally:
        scheduler.close()


def test_a_block_whose_stream_is_gone_is_never_stepped(default_model):
    """The `gone` signal raised before or while a job waits: `run` raises Cancelled
    at once and the worker runs no pass for it (queued: cancelled; taken: skipped)."""
    import torch

    from audiodream_server.engine import DreamParams
    from audiodream_server.errors import Cancelled
    from audiodream_server.signals import Signal
    from audiodream_server.stream.scheduler import StreamScheduler
    from audiodream_server.stream.session import Job

    scheduler = StreamScheduler(default_model)
    try:
        params = DreamParams(iterations=3).resolve(default_model.spec)
        x = torch.zeros(1, 44100)
        job = Job(x=x, x0=x, params=params, iterations=3, shifts=None,
                  deadline=float("inf"))
        gone = Signal()
        gone.set()
        with pytest.raises(Cancelled):
            scheduler.run(job, gone)
        x = torch.zeros(1, 44100)
        wanted = Job(x=x, x0=x, params=params, iterations=1, shifts=None,
                     deadline=float("inf"))
        assert scheduler.run(wanted).iterations_run == 1  # the worker is past the first
        assert job.iterations_run == 0 and scheduler.stats().passes == 1
    finally:
        scheduler.close()


def test_a_shorter_context_window_keeps_the_timing_contract(address):
    """Half a second of context instead of the model's second: same latency, dreams."""
    x = tone(3.0, 48000)[:, 0]
    s, outputs = run_stream(address, x, iterations=0, window=24000)
    assert s.ready.config.window == 24000
    y = np.concatenate(outputs)
    assert np.array_equal(y[s.latency:], x[: len(y) - s.latency])
    s, outputs = run_stream(address, x, iterations=3, step_size=0.05, window=24000,
                            offline=True)
    y = np.concatenate(outputs)
    assert np.abs(y).max() <= 1.0 and np.abs(y[s.latency:] - x[: len(y) - s.latency]).max() > 0.01


def test_a_context_the_model_cannot_take_is_refused(models):
    from audiodream_server.models.calibration import calibrate_batchnorm, calibration_audio
    from audiodream_server.models.melcnn import MelCNN
    from audiodream_server.models.registry import LoadedModel, ResidentModels

    torch_module = MelCNN("mel-test", ["a", "b"])
    calibrate_batchnorm(torch_module, calibration_audio(4, 44100, 44100))
    torch_module.eval().requires_grad_(False)
    import torch

    resident = ResidentModels({"mel-test": LoadedModel(torch_module, torch.device("cpu"))},
                              "mel-test")
    server, address = start_server(resident)
    try:
        with Client(address) as c:
            with pytest.raises(ServerError) as info:  # 4096 samples: 9 frames, 4 poolings
                c.stream(44100, 1, 2048, window=4096)
            assert info.value.code == "OUT_OF_RANGE" and "window" in info.value.message
            with c.stream(44100, 1, 2048, window=22050, iterations=1) as s:  # long enough
                assert s.ready.config.window == 22050
    finally:
        server.stop(None)


def test_streams_with_different_contexts_share_a_model(address):
    """Batching stacks only equal context lengths; both streams come through."""
    x = tone(2.0, 48000)[:, 0]
    results = {}

    def run(window):
        results[window] = run_stream(address, x, iterations=2, window=window, offline=True)

    threads = [threading.Thread(target=run, args=(w,)) for w in (0, 24000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s, outputs in results.values():
        assert len(outputs) == len(x) // B and not s.warnings
    assert set(results) == {0, 24000}


def test_one_batch_may_hold_jobs_of_different_context_lengths(default_model):
    """Jobs that are due together but differ in length run side by side, not stacked."""
    import torch

    from audiodream_server.engine import DreamParams
    from audiodream_server.stream.scheduler import StreamScheduler
    from audiodream_server.stream.session import Job

    scheduler = StreamScheduler(default_model)
    try:
        params = DreamParams(iterations=2).resolve(default_model.spec)
        jobs = [Job(x=torch.zeros(1, n), x0=torch.zeros(1, n), params=params, iterations=2,
                    shifts=None, deadline=float("inf")) for n in (44100, 22050, 44100)]
        scheduler.run_together(jobs)
        assert [job.iterations_run for job in jobs] == [2, 2, 2]
        assert [job.x.shape[-1] for job in jobs] == [44100, 22050, 44100]
        # One batch, but per iteration one pass of the two long jobs and one of the
        # short one: what was really stacked is counted, not what was due together.
        stats = scheduler.stats()
        assert stats.batches == 1 and stats.passes == 4
        assert stats.pass_sizes == {2: 2, 1: 2} and stats.largest_pass == 2
    finally:
        scheduler.close()


def _process_in_thread(address, blocks) -> tuple[threading.Thread, list]:
    """Runs `DreamStream.process` over `blocks`; the list gets the outputs and then
    the exception it raised, if any."""
    outcome: list = []

    def run():
        try:
            with Client(address) as c, c.stream(48000, 1, B, iterations=0, offline=True) as s:
                outcome.extend(s.process(blocks))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)  # a guard against the old hang, not a timing bound
    return thread, outcome


def test_process_raises_what_its_sender_raised_instead_of_hanging(address):
    """A wrongly sized block, or an iterable that fails, ends `process` with that
    error in the caller's thread; the blocks before it come back first."""
    good = np.zeros(B, np.float32)
    thread, outcome = _process_in_thread(address, [good, np.zeros(B + 1, np.float32)])
    assert not thread.is_alive(), "process hung after its sender failed"
    assert len(outcome) == 2 and outcome[0].shape == (B,)
    assert isinstance(outcome[1], ValueError)

    def failing():
        yield good
        raise RuntimeError("the source ran dry")

    thread, outcome = _process_in_thread(address, failing())
    assert not thread.is_alive(), "process hung after its iterable failed"
    assert isinstance(outcome[-1], RuntimeError) and "ran dry" in str(outcome[-1])
