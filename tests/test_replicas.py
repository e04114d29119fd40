"""Several replicas as one service: three real `audiodream serve` processes on three ports.

The client is given all three. Checked: dreams spread over every replica and
each replica's metrics endpoint shows its share; a replica killed mid-run loses
no call that is safe to retry (and the retried dreams are bit-identical); a
stream on a replica that shuts down is warned, moves to another replica with a
gap of at most one block, and so does a stream whose replica is killed; the
CLI keeps dreaming with one replica stopped.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from audiodream import Client, ServerError
from sounds import tone
from watch import poll_until

CLI = [sys.executable, "-m", "audiodream.cli"]
RATE = 44100
BLOCK = 2048
START_SECONDS = 120  # bound on reading a server's start-up lines


@dataclass
class Replica:
    proc: subprocess.Popen
    address: str
    metrics: str  # the /metrics URL, "" when off
    port: int

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics, timeout=10) as reply:
            return reply.read().decode()

    def value(self, name: str, **labels) -> float:
        """One sample of the metric `name` with exactly these labels (0 when absent)."""
        return metric(self.scrape(), name, **labels)

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)


def metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        found = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if found and found.group(1) == name:
            have = ",".join(sorted((found.group(2) or "").split(","))) if found.group(2) else ""
            if have == want:
                return float(found.group(3))
    return 0.0


def start_replicas(count: int = 3, metrics: bool = True, extra=()) -> list[Replica]:
    env = {**os.environ, "AUDIODREAM_THREADS": "1", "AUDIODREAM_GRACE_SECONDS": "10"}
    args = ["--port", "0", *(["--metrics-port", "0"] if metrics else []), *extra]
    procs = [subprocess.Popen([*CLI, "serve", *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
             for _ in range(count)]
    replicas = []
    for proc in procs:
        address, url, lines = None, "", []
        for _ in range(500):  # start-up prints a few dozen lines at most
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if found := re.search(r"metrics on (http://\S+)", line):
                url = found.group(1)
            if found := re.search(r"listening on (\S+:(\d+))", line):
                address = found.group(1)
                break
        assert address, "server did not start:\n" + "".join(lines)
        # Keep reading its output so the server never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        replicas.append(Replica(proc, address, url, int(address.rsplit(":", 1)[1])))
    return replicas


@pytest.fixture()
def replicas():
    started = start_replicas()
    yield started
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
        r.proc.wait(timeout=60)


def everyone(replicas) -> str:
    return ",".join(r.address for r in replicas)


def sound(seconds: float = 1.0) -> np.ndarray:
    return tone(seconds, RATE).astype(np.float32)


def by_port(replicas, replica_name: str) -> Replica:
    port = int(replica_name.rsplit(":", 1)[1])
    return next(r for r in replicas if r.port == port)


def test_dreams_spread_over_every_replica_and_metrics_show_each_share(replicas):
    calls = 12
    with Client(everyone(replicas), timeout=120) as client:
        assert client.replicas == 3
        client.models()  # connects to every replica before the dreams start
        outs = [client.dream(sound(0.5), RATE, iterations=2, seed=7) for _ in range(calls)]
    served = {r.port: sum(by_port(replicas, o.replica) is r for o in outs) for r in replicas}
    counted = {r.port: r.value("audiodream_rpc_handled_total", method="Dream", code="OK")
               for r in replicas}
    assert all(n > 0 for n in served.values()), served
    assert counted == served  # each replica's metrics show exactly its share
    assert sum(counted.values()) == calls
    # The same seeded request gives the same sound on every replica.
    assert all(np.array_equal(o.audio, outs[0].audio) for o in outs)
    for r in replicas:
        text = r.scrape()
        assert metric(text, "audiodream_dream_audio_seconds_total",
                      model="instruments-m2") == pytest.approx(0.5 * served[r.port])
        assert metric(text, "audiodream_model_loaded", model="instruments-m2") == 1
        assert metric(text, "audiodream_device_info", device="cpu") == 1
        assert metric(text, "audiodream_draining") == 0


@pytest.mark.parametrize("kind", ["Dream", "DreamProgress"])
def test_a_killed_replica_loses_no_call_that_is_safe_to_retry(replicas, kind):
    """The victim computes a long dream of its own while balanced calls queue behind
    it; it is killed with calls of `kind` queued there. Dream is retried by gRPC's
    policy (nothing was answered yet), DreamProgress by the client (a "queued"
    event was); either way every call ends with the same, seeded sound."""
    victim = replicas[1]
    request = dict(iterations=4, seed=3)
    audio = sound(1.0)
    busy = threading.Event()

    def hold(update):
        if update.stage == "dreaming" and update.iteration >= 1:
            busy.set()

    def occupy():  # straight to the victim: this call dies with it
        with Client(victim.address, timeout=300) as alone:
            try:
                alone.dream(sound(20.0), RATE, iterations=200, progress=hold)
            except ServerError:
                pass

    blocker = threading.Thread(target=occupy)
    with Client(everyone(replicas), timeout=300) as client:
        client.models()
        reference = client.dream(audio, RATE, **request).audio
        blocker.start()
        assert busy.wait(120), "the victim never started its own dream"

        def one(i):
            progress = (lambda update: None) if kind == "DreamProgress" else None
            return client.dream(audio, RATE, progress=progress, **request)

        with ThreadPoolExecutor(3) as pool:
            running = [pool.submit(one, i) for i in range(12)]
            # A balanced call queued on the victim, then kill it. Another process's
            # metrics announce nothing: asked until true.
            assert poll_until(lambda: victim.value("audiodream_queue_depth") >= 1)
            assert victim.value("audiodream_rpc_in_flight", method=kind) >= 1
            victim.stop(signal.SIGKILL)
            outs = [future.result() for future in running]
        assert [m.name for m in client.models()]  # ListModels still answers
    blocker.join()
    assert victim.proc.wait(timeout=30) == -signal.SIGKILL
    assert len(outs) == 12  # no call lost ...
    assert all(np.array_equal(o.audio, reference) for o in outs)  # ... the same sound
    assert all(by_port(replicas, o.replica) is not victim for o in outs)


def _stream_through_failover(replicas, make_it_fail):
    """Streams a tone with reopen on; at block 12, `make_it_fail(replica)` hits the
    stream's replica. Returns (stream, output, blocks sent)."""
    blocks = 48
    signal_in = tone(blocks * BLOCK / RATE, RATE).astype(np.float32)
    with Client(everyone(replicas), timeout=300) as client:
        client.models()
        stream = client.stream(RATE, block_size=BLOCK, iterations=1, offline=True,
                               reopen=True)
        first = by_port(replicas, stream.ready.replica)

        def source():
            for i in range(blocks):
                if i == 12:
                    make_it_fail(first)
                yield signal_in[i * BLOCK:(i + 1) * BLOCK]

        with stream:
            out = np.concatenate(list(stream.process(source(), ahead=4)))
    return stream, first, out, blocks


def _gap(out: np.ndarray, start: int) -> int:
    """Frames in the longest run where the output is inaudible: its 64-frame RMS under
    5 % of the median RMS (the tone goes on throughout, so only a gap is that quiet)."""
    power = np.convolve(out[start:].astype(np.float64) ** 2, np.ones(64) / 64, mode="same")
    envelope = np.sqrt(power)
    quiet = envelope < 0.05 * np.median(envelope)
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return longest


def test_a_draining_replica_warns_its_stream_which_moves_with_one_block_gap(replicas):
    stream, first, out, blocks = _stream_through_failover(
        replicas, lambda r: r.stop(signal.SIGTERM))
    assert [w.code for w in stream.warnings].count("draining") == 1
    assert len(stream.moves) == 1
    move = stream.moves[0]
    assert move.reason == "draining" and move.from_replica == stream.moves[0].from_replica
    assert by_port(replicas, move.from_replica) is first
    assert by_port(replicas, move.to_replica) is not first
    assert len(out) == blocks * BLOCK  # every block answered once
    gap = _gap(out, stream.latency)
    assert gap <= BLOCK, gap
    print(f"\ndrain: moved in {move.seconds * 1000:.1f} ms, {move.resent} blocks resent, "
          f"gap {gap} frames ({gap / RATE * 1000:.1f} ms)")
    assert first.proc.wait(timeout=60) == 0  # it shut down cleanly after the move


def test_a_killed_replica_s_stream_reopens_elsewhere_with_one_block_gap(replicas):
    stream, first, out, blocks = _stream_through_failover(
        replicas, lambda r: (r.stop(signal.SIGKILL), r.proc.wait(timeout=30)))
    assert len(stream.moves) == 1
    move = stream.moves[0]
    assert move.reason in ("UNAVAILABLE", "CANCELLED")
    assert by_port(replicas, move.to_replica) is not first
    assert len(out) == blocks * BLOCK
    gap = _gap(out, stream.latency)
    assert gap <= BLOCK, gap
    print(f"\nkill: moved in {move.seconds * 1000:.1f} ms, {move.resent} blocks resent, "
          f"gap {gap} frames ({gap / RATE * 1000:.1f} ms)")


def test_without_reopen_a_stream_on_a_killed_replica_reports_it(replicas):
    with Client(everyone(replicas), timeout=300) as client:
        stream = client.stream(RATE, block_size=BLOCK, iterations=1, offline=True)
        with stream:
            stream.send(np.zeros(BLOCK, np.float32))
            stream.receive()
            victim = by_port(replicas, stream.ready.replica)
            victim.stop(signal.SIGKILL)
            victim.proc.wait(timeout=30)
            stream.send(np.zeros(BLOCK, np.float32))
            with pytest.raises(ServerError) as error:
                stream.receive()
    assert error.value.code in ("UNAVAILABLE", "CANCELLED")
    assert stream.moves == []


def test_the_cli_keeps_dreaming_with_one_replica_stopped(tmp_path):
    started = start_replicas(metrics=False)
    try:
        stopped = started[0]
        stopped.stop(signal.SIGTERM)
        assert stopped.proc.wait(timeout=60) == 0
        source = tmp_path / "in.wav"
        sf.write(source, sound(0.5), RATE)
        for i in range(4):  # more dreams than replicas: round-robin would reach each
            out = tmp_path / f"out{i}.wav"
            done = subprocess.run([*CLI, "dream", str(source), str(out), "--server",
                                   everyone(started), "--iterations", "2", "--quiet"],
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            assert sf.info(out).frames == int(0.5 * RATE)
    finally:
        for r in started:
            if r.proc.poll() is None:
                r.proc.kill()
            r.proc.wait(timeout=60)
