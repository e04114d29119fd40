"""dream~, the Pure Data external (clients/pd), in a real headless Pd against a real server.

Each test builds the external (`make -C clients/pd`), writes a small patch into a
temporary directory and runs `pd -nogui -nosound` in real time: the stream's timing
is real, so no `-batch`. The patch records its input and dream~'s outputs with
`tabwrite~`, writes them with `soundfiler` and quits; every run is bounded by a
timeout. dream~'s info outlet goes to `[print infoK]` and is read from stderr.

System packages (Debian 12): puredata-core puredata-dev libgrpc-dev
protobuf-c-compiler libprotobuf-c-dev pkg-config.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from watch import Output

ROOT = Path(__file__).resolve().parents[1]
PD_DIR = ROOT / "clients" / "pd"
RATE = 44100
START_MS = 1500  # a scene without a stream to wait for starts recording this late
PACKAGES = ("puredata-core puredata-dev libgrpc-dev protobuf-c-compiler "
            "libprotobuf-c-dev pkg-config")


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("pd", "protoc-c", "pkg-config", "make", "cc")
               if shutil.which(tool) is None]
    if shutil.which("pkg-config") and subprocess.run(
            ["pkg-config", "--exists", "grpc", "libprotobuf-c"]).returncode:
        missing.append("grpc/libprotobuf-c (pkg-config)")
    if not any(Path(d, "m_pd.h").exists() for d in ("/usr/include/pd", "/usr/local/include/pd")):
        missing.append("m_pd.h")
    return missing


@pytest.fixture(scope="module")
def external() -> Path:
    """Builds dream~ once per module; skips when the build tools are not installed."""
    missing = _missing_tools()
    if missing:
        why = f"needs {', '.join(missing)}: apt-get install {PACKAGES}"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI installs them: a skip there would hide a failure
        pytest.skip(why)
    build = subprocess.run(["make", "-C", str(PD_DIR)], capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (PD_DIR / "dream~.pd_linux").exists()
    return PD_DIR


class Patch:
    """A Pd patch written object by object; connections go last, as Pd reads them."""

    def __init__(self):
        self._boxes: list[str] = []
        self._wires: list[str] = []

    def _box(self, kind: str, text: str) -> int:
        self._boxes.append(f"#X {kind} 10 {10 + 20 * len(self._boxes)} {text};")
        return len(self._boxes) - 1

    def obj(self, text: str) -> int:
        return self._box("obj", text)

    def msg(self, text: str) -> int:
        return self._box("msg", text.replace(";", " \\; ").replace(",", " \\, "))

    def connect(self, a: int, b: int, outlet: int = 0, inlet: int = 0) -> None:
        self._wires.append(f"#X connect {a} {outlet} {b} {inlet};")

    def text(self) -> str:
        return "\n".join(["#N canvas 0 0 800 600 12;", *self._boxes, *self._wires]) + "\n"


@dataclass
class Render:
    """What one Pd run left: recordings, the info outlets' messages, timing."""

    x: np.ndarray                      # the input, as dream~ got it
    outs: list[np.ndarray]             # each dream~'s signal outlet
    info: list[list[list[str]]]        # per dream~: messages, split into words
    stderr: str
    seconds: float

    def last(self, k: int, selector: str) -> float:
        values = [float(m[1]) for m in self.info[k] if m[0] == selector]
        assert values, f"dream~ #{k} never reported {selector}: {self.info[k]}"
        return values[-1]

    def states(self, k: int) -> list[str]:
        return [m[1] for m in self.info[k] if m[0] == "state"]


@dataclass
class Scene:
    """A patch: one source into several dream~ objects, recorded for `seconds`.

    The recording starts when every dream~ listed in `ready` (default: all) has
    said `state connected` on its info outlet (Pd waits on the outlet, not on a
    guessed delay); with `ready=[]`, START_MS after load. `events` are (ms, dream~
    index, message): at `ms` - START_MS after the recording started, or `ms` after
    load when `ms` < START_MS.
    """

    dreams: list[str]
    seconds: float
    events: list[tuple[int, int, str]] = field(default_factory=list)
    end_messages: list[str] = field(default_factory=lambda: ["print"])
    ready: list[int] | None = None

    def render(self, tmp: Path) -> Render:
        frames = int(self.seconds * RATE)
        p = Patch()
        load = p.obj("loadbang")
        p.connect(load, p.msg("; pd dsp 1"))
        # A tone plus noise: audible structure, and a unique best match for the delay.
        tone, noise, mixed = p.obj("osc~ 220"), p.obj("noise~"), p.obj("+~")
        tone_gain, noise_gain = p.obj("*~ 0.25"), p.obj("*~ 0.05")
        p.connect(tone, tone_gain)
        p.connect(noise, noise_gain)
        p.connect(tone_gain, mixed)
        p.connect(noise_gain, mixed, inlet=1)
        start = p.obj("t b")  # the recording starts
        tables = ["in"] + [f"out{k}" for k in range(len(self.dreams))]
        for name in tables:
            p.obj(f"table {name} {frames}")
        writers = [p.obj(f"tabwrite~ {name}") for name in tables]
        for w in writers:
            p.connect(start, w)
        p.connect(mixed, writers[0])
        dreams = []
        for k, args in enumerate(self.dreams):
            d = p.obj(f"dream~ {args}")
            p.connect(mixed, d)
            p.connect(d, writers[k + 1])
            p.connect(d, p.obj(f"print info{k}"), outlet=1)
            dreams.append(d)
        ready = range(len(self.dreams)) if self.ready is None else self.ready
        start_when_connected(p, load, [(dreams[k], 1) for k in ready], start)
        for ms, k, text in self.events:
            when, what = p.obj(f"delay {ms if ms < START_MS else ms - START_MS}"), p.msg(text)
            p.connect(load if ms < START_MS else start, when)
            p.connect(when, what)
            p.connect(what, dreams[k])
        # At the end: the dream~ messages, then write the tables, then quit.
        end = p.obj(f"delay {int(self.seconds * 1000) + 300}")
        order = p.obj("t b b b")
        p.connect(start, end)
        p.connect(end, order)
        p.connect(order, p.msg("; pd quit"), outlet=0)
        write = p.msg(", ".join(f"write -wave -bytes 4 {tmp / name}.wav {name}"
                                for name in tables))
        p.connect(order, write, outlet=1)
        p.connect(write, p.obj("soundfiler"))
        for text in self.end_messages:
            m = p.msg(text)
            p.connect(order, m, outlet=2)
            for d in dreams:
                p.connect(m, d)
        path = tmp / "test.pd"
        path.write_text(p.text())
        return run_pd(path, tables, len(self.dreams), self.seconds)


def start_when_connected(p: Patch, load: int, sources: list[tuple[int, int]],
                         start: int) -> None:
    """Bangs `start` once every (dream~, info outlet) in `sources` has said `state
    connected` (its first time), or START_MS after `load` when `sources` is empty."""
    if not sources:
        when = p.obj(f"delay {START_MS}")
        p.connect(load, when)
        p.connect(when, start)
        return
    count, plus, enough = p.obj("f"), p.obj("+ 1"), p.obj(f"select {len(sources)}")
    p.connect(count, plus)
    p.connect(plus, count, inlet=1)
    p.connect(plus, enough)
    p.connect(enough, start)
    for dream, outlet in sources:
        state, connected = p.obj("route state"), p.obj("route connected")
        first, order, close = p.obj("spigot 1"), p.obj("t b b"), p.msg("0")
        p.connect(dream, state, outlet=outlet)
        p.connect(state, connected)
        p.connect(connected, first)
        p.connect(first, order)
        p.connect(order, close, outlet=1)
        p.connect(close, first, inlet=1)
        p.connect(order, count)


# A safety net for a Pd that never quits, not a measure of speed.
PD_TIMEOUT = 300


def run_pd(path: Path, tables: list[str], count: int, seconds: float) -> Render:
    cmd = ["pd", "-nogui", "-nosound", "-noprefs", "-stderr", "-r", str(RATE),
           "-path", str(PD_DIR), "-open", str(path)]
    if os.geteuid() != 0:
        cmd.insert(1, "-nrt")  # as root Pd would otherwise try real-time priority
    began = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=PD_TIMEOUT + seconds)
    took = time.monotonic() - began
    info: list[list[list[str]]] = [[] for _ in range(count)]
    for line in done.stderr.splitlines():
        head, _, rest = line.partition(": ")
        if head.startswith("info") and head[4:].isdigit():
            info[int(head[4:])].append(rest.split())
    recordings = []
    for name in tables:
        wav = path.parent / f"{name}.wav"
        assert wav.exists(), f"Pd wrote no {name}.wav:\n{done.stderr}"
        recordings.append(sf.read(wav, dtype="float32")[0])
    return Render(recordings[0], recordings[1:], info, done.stderr, took)


def best_delay(x: np.ndarray, y: np.ndarray, longest: int) -> int:
    """The lag (0..longest) at which y best matches x.

    Cross-correlation with phase-transform weighting (GCC-PHAT): every frequency
    counts equally, so the periodic tone cannot pull the peak to a wrong period.
    """
    n = len(x) + len(y)
    spectrum = np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n))
    corr = np.fft.irfft(spectrum / np.maximum(np.abs(spectrum), 1e-12), n)[: longest + 1]
    return int(np.argmax(corr))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the tests ------------------------------------------------------------------------------


def test_transparent_stream_is_the_input_delayed_by_the_reported_latency(
        external, server_address, tmp_path):
    args = f"-server {server_address} -model model2 -iterations 0 -mix 1"
    r = Scene([args], seconds=4).render(tmp_path)
    latency = int(r.last(0, "latency"))
    assert r.states(0)[-1] == "connected"
    assert r.last(0, "underruns") == 0, r.stderr
    y = r.outs[0]
    delay = best_delay(r.x, y, 4 * latency)
    assert delay == latency  # what the info outlet said is what happened
    # Zero iterations at mix 1: the server returns its input bit for bit, so the
    # output is the recorded input shifted by the latency, exactly (float32 both).
    np.testing.assert_array_equal(y[latency:], r.x[: len(y) - latency])
    # block 2048 + preroll 2048 + the server's one-block delay
    assert latency == 3 * 2048


def test_stereo_object_streams_both_channels_in_one_stream(external, server_address, tmp_path):
    """[dream~ 2]: two inlets, two outlets, one stream; at 0 iterations each outlet is
    its own inlet delayed by the one reported latency."""
    seconds = 4
    frames = seconds * RATE
    p = Patch()
    load = p.obj("loadbang")
    p.connect(load, p.msg("; pd dsp 1"))
    left, right, noise = p.obj("osc~ 220"), p.obj("osc~ 331"), p.obj("noise~")
    lg, rg, ng = p.obj("*~ 0.25"), p.obj("*~ 0.2"), p.obj("*~ 0.05")
    lmix, rmix = p.obj("+~"), p.obj("-~")
    for a, b in ((left, lg), (right, rg), (noise, ng), (lg, lmix), (rg, rmix)):
        p.connect(a, b)
    p.connect(ng, lmix, inlet=1)
    p.connect(ng, rmix, inlet=1)
    d = p.obj(f"dream~ 2 -server {server_address} -model model2 -iterations 0 -mix 1")
    p.connect(lmix, d)
    p.connect(rmix, d, inlet=1)
    p.connect(d, p.obj("print info0"), outlet=2)
    tables = ["in", "in1", "out0", "out1"]
    for name in tables:
        p.obj(f"table {name} {frames}")
    writers = [p.obj(f"tabwrite~ {name}") for name in tables]
    start = p.obj("t b")
    start_when_connected(p, load, [(d, 2)], start)
    for w in writers:
        p.connect(start, w)
    p.connect(lmix, writers[0])
    p.connect(rmix, writers[1])
    p.connect(d, writers[2], outlet=0)
    p.connect(d, writers[3], outlet=1)
    end = p.obj(f"delay {seconds * 1000 + 300}")
    order = p.obj("t b b")
    p.connect(start, end)
    p.connect(end, order)
    p.connect(order, p.msg("; pd quit"), outlet=0)
    write = p.msg(", ".join(f"write -wave -bytes 4 {tmp_path / name}.wav {name}"
                            for name in tables))
    p.connect(order, write, outlet=1)
    p.connect(write, p.obj("soundfiler"))
    path = tmp_path / "stereo.pd"
    path.write_text(p.text())
    r = run_pd(path, tables, 1, seconds)
    latency = int(r.last(0, "latency"))
    assert r.states(0)[-1] == "connected"
    assert latency == 3 * 2048
    x1 = sf.read(tmp_path / "in1.wav", dtype="float32")[0]
    for x, y in ((r.x, r.outs[1]), (x1, r.outs[2])):
        assert best_delay(x, y, 4 * latency) == latency
        np.testing.assert_array_equal(y[latency:], x[: len(y) - latency])
    assert np.abs(r.outs[1] - r.outs[2]).max() > 0.1  # two channels, not one copied


def test_dreaming_changes_the_sound_from_a_live_control_and_stays_bounded(
        external, server_address, tmp_path):
    switch_ms = START_MS + 2000
    args = f"-server {server_address} -model model2 -iterations 0 -layer conv2"
    scene = Scene([args], seconds=5, events=[(switch_ms, 0, "step 0.1, iterations 3")])
    r = scene.render(tmp_path)
    latency = int(r.last(0, "latency"))
    y, x = r.outs[0], r.x
    assert r.states(0) == ["connecting", "connected"]  # changed live: no reconnect
    before = int(1.8 * RATE)  # recorded before the control could reach the output
    np.testing.assert_array_equal(y[latency:before], x[: before - latency])
    after = y[int(3.5 * RATE):]
    dry = x[int(3.5 * RATE) - latency: len(y) - latency]
    assert np.abs(after).max() <= 1.0
    assert np.sqrt(np.mean(after ** 2)) > 0.05
    assert np.abs(after - dry).max() > 0.05  # it did dream


def test_without_a_server_pd_keeps_time_outputs_dry_or_silence_and_says_so(
        external, tmp_path):
    nobody = f"127.0.0.1:{free_port()}"
    seconds = 3
    r = Scene([f"-server {nobody} -dry 1", f"-server {nobody}"], seconds=seconds,
              ready=[]).render(tmp_path)
    # Pd did not hang: the patch reached its own end and wrote every recording whole.
    assert len(r.x) == len(r.outs[0]) == len(r.outs[1]) == seconds * RATE
    np.testing.assert_array_equal(r.outs[0], r.x)  # dry: the input, undelayed
    assert not r.outs[1].any()  # silence
    for k in (0, 1):
        assert r.states(k)[-1] == "disconnected"
        assert "connected" not in r.states(k)
    # One message per object for the whole outage, though it retried meanwhile.
    assert r.stderr.count(f"cannot stream from {nobody}") == 2, r.stderr
    assert r.states(0).count("connecting") >= 3


@pytest.fixture()
def own_server():
    """A server in its own process, so a test can kill it and start it again."""
    port = free_port()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, "-m", "audiodream.cli", "serve", "--port", str(port),
           "--threads", "1"]
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
        output = Output(procs[-1].stdout)  # read to the end, so the pipe never fills
        # The line it prints once it listens (loading models is slow on a busy machine).
        assert output.wait_for(r"audiodream listening on ", timeout=180), output.text()

    yield port, start, procs
    for proc in procs:
        proc.kill()
        proc.wait(10)


# The line dream~ prints once a second while connected (the stats of that second).
STATS = r"info0: iterations_run \S+"


class LivePd:
    """Pd running a patch that the test steers over [netreceive] while reading stderr."""

    def __init__(self, patch: Patch, path: Path, control_port: int):
        path.write_text(patch.text())
        cmd = ["pd", "-nogui", "-nosound", "-noprefs", "-stderr", "-r", str(RATE),
               "-path", str(PD_DIR), "-open", str(path)]
        if os.geteuid() != 0:
            cmd.insert(1, "-nrt")
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.output = Output(self.proc.stderr)
        self.port = control_port

    def count(self, pattern: str) -> int:
        """Lines printed so far that match `pattern` (a regular expression) whole."""
        return len(re.findall(rf"^{pattern}$", self.output.text(), re.MULTILINE))

    def wait_for(self, pattern: str, count: int = 1, limit: float = 120.0) -> None:
        """Waits until `count` lines matching `pattern` (whole) were printed: woken by
        every line Pd prints. `limit` is a safety net for a Pd that hangs."""
        found = self.output.wait_for(rf"^{pattern}$", count, limit)
        assert found, f"no {pattern!r} (x{count}):\n" + self.output.text()

    def send(self, message: str) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(f"{message};\n".encode())

    def finish(self, limit: float = 60.0) -> str:
        self.send("finish")
        try:
            self.proc.wait(limit)
        finally:
            self.proc.kill()
        self.output.wait_closed()
        return self.output.text()


def test_reconnects_and_dreams_again_after_the_server_restarts(external, own_server, tmp_path):
    port, start, procs = own_server
    start()
    control = free_port()
    frames = 3 * RATE
    p = Patch()
    p.connect(p.obj("loadbang"), p.msg("; pd dsp 1"))
    tone, noise, mixed = p.obj("osc~ 220"), p.obj("noise~"), p.obj("+~")
    tone_gain, noise_gain = p.obj("*~ 0.25"), p.obj("*~ 0.05")
    p.connect(tone, tone_gain)
    p.connect(noise, noise_gain)
    p.connect(tone_gain, mixed)
    p.connect(noise_gain, mixed, inlet=1)
    dream = p.obj(f"dream~ -server 127.0.0.1:{port} -model model2 -layer conv2 "
                  "-iterations 2 -step 0.1")
    p.connect(mixed, dream)
    p.connect(dream, p.obj("print info0"), outlet=1)
    for name in ("in", "gap", "out"):
        p.obj(f"table {name} {frames}")
    w_in, w_gap, w_out = (p.obj(f"tabwrite~ {name}") for name in ("in", "gap", "out"))
    p.connect(mixed, w_in)
    p.connect(dream, w_gap)
    p.connect(dream, w_out)
    route = p.obj("route gap record finish")
    p.connect(p.obj(f"netreceive {control}"), route)
    p.connect(route, w_gap, outlet=0)
    p.connect(route, w_in, outlet=1)
    p.connect(route, w_out, outlet=1)
    # Pd says when a recording is complete, on its own clock.
    gap_done, record_done = p.obj("delay 1000"), p.obj(f"delay {frames * 1000 // RATE}")
    p.connect(route, gap_done, outlet=0)
    p.connect(route, record_done, outlet=1)
    p.connect(gap_done, p.obj("print gap"))
    p.connect(record_done, p.obj("print recorded"))
    order = p.obj("t b b")
    p.connect(route, order, outlet=2)
    write = p.msg(", ".join(f"write -wave -bytes 4 {tmp_path / name}.wav {name}"
                            for name in ("in", "gap", "out")))
    p.connect(order, p.msg("; pd quit"), outlet=0)
    p.connect(order, write, outlet=1)
    p.connect(write, p.obj("soundfiler"))

    pd = LivePd(p, tmp_path / "restart.pd", control)
    try:
        pd.wait_for("info0: state connected")
        pd.wait_for(STATS)  # a second of stream came back: it dreams
        procs[0].kill()  # mid-stream, no goodbye
        procs[0].wait(10)
        pd.wait_for("info0: state disconnected")
        pd.send("gap")  # one second of what plays while the server is gone
        pd.wait_for("gap: bang")
        start()  # the same port
        pd.wait_for("info0: state connected", count=2)
        # Two seconds of stats since: well past the latency, dreamed blocks again.
        pd.wait_for(STATS, count=pd.count(STATS) + 2)
        pd.send("record")
        pd.wait_for("recorded: bang")
        stderr = pd.finish()
    finally:
        pd.proc.kill()
    states = [line.split()[-1] for line in stderr.splitlines()
              if line.startswith("info0: state")]
    assert states[:2] == ["connecting", "connected"] and states[-1] == "connected", stderr
    assert stderr.count("lost the stream to") == 1, stderr  # one message for the outage
    assert "connected to 127.0.0.1:%d again" % port in stderr
    gap = sf.read(tmp_path / "gap.wav", dtype="float32")[0][:RATE]
    assert not gap.any()  # silence while the server was away (the default)
    x = sf.read(tmp_path / "in.wav", dtype="float32")[0]
    y = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    latency = [int(line.split()[-1]) for line in stderr.splitlines()
               if line.startswith("info0: latency")][-1]
    dry = x[: len(y) - latency]
    dreamed = y[latency:]
    assert np.abs(dreamed).max() <= 1.0 and np.sqrt(np.mean(dreamed ** 2)) > 0.05
    assert np.abs(dreamed - dry).max() > 0.05


def test_two_objects_dream_independently_and_answer_queries(
        external, server_address, tmp_path):
    args = f"-server {server_address} -model model2 -iterations 3 -step 0.1"
    asks = START_MS + 1000
    scene = Scene([f"{args} -layer conv1", f"{args} -layer conv6 5 9"], seconds=4,
                  events=[(asks, 0, "models"), (asks, 1, "layers? model2"),
                          (asks, 1, "target nothing")])
    r = scene.render(tmp_path)
    a, b = r.outs
    for k, y in enumerate(r.outs):
        assert r.states(k) == ["connecting", "connected"]
        latency = int(r.last(k, "latency"))
        settled = y[latency + RATE:]
        dry = r.x[RATE: len(y) - latency]
        assert np.abs(settled).max() <= 1.0 and np.sqrt(np.mean(settled ** 2)) > 0.05
        assert np.abs(settled - dry).max() > 0.02
    assert np.abs(a - b).max() > 0.02  # different layers, different dreams
    models = [m for m in r.info[0] if m[0] == "models"]
    assert models and "model2" in models[0][1:]
    layers = [m for m in r.info[1] if m[0] == "layers"]
    assert layers and layers[0][1] == "model2" and "conv6" in layers[0][2:]
    assert ["layer", "conv6", "128"] in [m[:3] for m in r.info[1]]
    assert "target nothing: no such array" in r.stderr


def test_target_sound_from_an_array_steers_the_filter_rule(
        external, server_address, tmp_path):
    """`target ARRAY` sends the array as the stream's target sound: with it the
    target_filter rule runs; without it the server refuses the rule in-band."""
    args = f"-server {server_address} -model model2 -iterations 3 -step 0.2 -layer conv2"
    change = START_MS + 2000  # "in" holds 2 s of the input by then
    scene = Scene([args, args], seconds=4,
                  events=[(change, 0, "update target_filter"),
                          (change, 1, "target in"),
                          (change + 50, 1, "update target_filter")])
    r = scene.render(tmp_path)
    refused = [m for m in r.info[0] if m[:2] == ["warning", "invalid_control"]]
    assert refused and "target" in " ".join(refused[0]), r.info[0]
    assert not [m for m in r.info[1] if m[:2] == ["warning", "invalid_control"]], r.info[1]
    assert "no such array" not in r.stderr
    for y in r.outs:
        latency = int(r.last(1, "latency"))
        settled = y[latency + RATE:]
        assert np.abs(settled).max() <= 1.0 and np.sqrt(np.mean(settled ** 2)) > 0.02
    tail = slice(int(3.2 * RATE), int(3.9 * RATE))  # after the change
    assert np.abs(r.outs[0][tail] - r.outs[1][tail]).max() > 0.01


def test_window_reopens_the_stream_with_a_shorter_context(external, server_address, tmp_path):
    """`window N` asks the server for a shorter context (cheaper); one it refuses is
    reported and the object keeps trying; the timing contract holds either way."""
    args = f"-server {server_address} -model model2 -iterations 0 -mix 1"
    scene = Scene([args, args], seconds=3,
                  events=[(300, 0, "window 22050"), (300, 1, "window 100")],
                  ready=[])  # #0 reopens and #1 never connects: no one moment to wait on
    r = scene.render(tmp_path)
    assert r.states(0)[-1] == "connected"
    latency = int(r.last(0, "latency"))
    y = r.outs[0]
    np.testing.assert_array_equal(y[latency:], r.x[: len(y) - latency])
    assert "OUT_OF_RANGE" in r.stderr and "window must be in" in r.stderr
    assert r.states(1)[-1] != "connected"


def test_help_patch_loads_without_errors(external):
    """Every box of dream~-help.pd is something Pd can create (a stray ';' in a
    comment, for one, would turn the rest into a message to nowhere)."""
    done = subprocess.run(["pd", "-nogui", "-nosound", "-noprefs", "-stderr", "-path",
                           str(PD_DIR), "-open", str(PD_DIR / "dream~-help.pd"),
                           "-send", "pd quit"], capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines()
                if "error" in line.lower() or "no such object" in line
                or "couldn't create" in line]
    assert not problems, done.stderr


def test_class_messages_steer_the_objective_and_unknown_names_are_refused(
        external, server_address, tmp_path):
    """`class NAME[@W] ...`, `exclusive 1`: the server takes the classes (no
    warning) and the dream changes; an unknown class comes back as an
    invalid_control warning on the info outlet and the stream goes on."""
    args = f"-server {server_address} -model model2 -iterations 3 -step 0.2"
    change = START_MS + 1000
    scene = Scene([args, args], seconds=3.5,
                  events=[(change, 0, "class untrained_3@2 5"), (change, 0, "exclusive 1"),
                          (change, 1, "class no_such_class")])
    r = scene.render(tmp_path)
    invalid = [" ".join(m) for m in r.info[0] if m[:2] == ["warning", "invalid_control"]]
    assert not invalid, invalid
    refused = [m for m in r.info[1] if m[:2] == ["warning", "invalid_control"]]
    assert refused and "no such class" in " ".join(refused[0]).replace("_", " "), r.info[1]
    for k, y in enumerate(r.outs):
        assert r.states(k) == ["connecting", "connected"]
        assert np.abs(y).max() <= 1.0
    latency = int(r.last(0, "latency"))
    tail = slice(int(2.6 * RATE), int(3.3 * RATE))  # well after the change
    dry = r.x[tail.start - latency: tail.stop - latency]
    assert np.abs(r.outs[0][tail] - dry).max() > 0.01


# ---- several replicas ----------------------------------------------------------------------

def test_given_several_servers_it_streams_from_the_first_that_answers(
        external, server_address, tmp_path):
    nobody = f"127.0.0.1:{free_port()}"
    args = f"-server {nobody} {server_address} -model model2 -iterations 0 -mix 1"
    r = Scene([args], seconds=4).render(tmp_path)
    assert r.states(0)[-1] == "connected"
    assert f"cannot stream from {nobody}" in r.stderr and "trying the next replica" in r.stderr
    assert "reconnecting" not in r.stderr  # no back-off: the next replica answered
    # The last second: long connected, the input comes back (at 0 iterations, the
    # input itself, late by the latency; underruns on a loaded machine leave holes).
    latency = int(r.last(0, "latency"))
    y, x = r.outs[0][-RATE:], r.x[len(r.outs[0]) - latency - RATE: len(r.outs[0]) - latency]
    assert np.mean(y == x) > 0.5, r.stderr


def test_a_draining_replica_sends_the_stream_to_the_next(external, tmp_path):
    from test_replicas import start_replicas

    replicas = start_replicas(2, metrics=False)
    try:
        first, second = replicas
        control = free_port()
        p = Patch()
        p.connect(p.obj("loadbang"), p.msg("; pd dsp 1"))
        dream = p.obj(f"dream~ -server {first.address} {second.address} -model model2 "
                      "-iterations 1")
        p.connect(p.obj("osc~ 220"), dream)
        p.connect(dream, p.obj("print info0"), outlet=1)
        route = p.obj("route finish")
        p.connect(p.obj(f"netreceive {control}"), route)
        p.connect(route, p.msg("; pd quit"))
        pd = LivePd(p, tmp_path / "replicas.pd", control)
        try:
            pd.wait_for("info0: state connected")
            first.stop(signal.SIGTERM)  # the stream is on the first: it drains
            pd.wait_for("info0: state connected", count=2, limit=60)
            stderr = pd.finish()
        finally:
            pd.proc.kill()
        assert first.proc.wait(timeout=60) == 0  # it shut down cleanly once left
    finally:
        for r in replicas:
            if r.proc.poll() is None:
                r.proc.kill()
            r.proc.wait(timeout=60)
    assert "info0: warning draining" in stderr
    assert f"left {first.address} (it is shutting down); trying the next replica" in stderr
    assert "reconnecting" not in stderr


def test_late_replies_are_concealed_never_a_gap(external, server_address, tmp_path):
    """With no pre-roll every reply comes after its frames are due: each such gap is
    played as the dry input at the reported latency (entered and left by crossfades),
    counted as concealed, and owed (adapt 0: fixed latency). A transparent stream
    makes the concealment exact: the output is the input delayed by the latency,
    sample for sample, gaps included."""
    args = f"-server {server_address} -model model2 -iterations 0 -mix 1 -preroll 0 -adapt 0"
    r = Scene([args], seconds=3).render(tmp_path)
    assert r.states(0)[-1] == "connected"
    latency = int(r.last(0, "latency"))
    assert latency == 2 * 2048  # block + no pre-roll + the server's one-block delay
    assert r.last(0, "concealed") > 0, r.stderr
    assert r.last(0, "underruns") == 0, r.stderr
    y = r.outs[0]
    np.testing.assert_array_equal(y[latency:], r.x[: len(y) - latency])


def test_the_preroll_grows_after_late_replies_and_reports_the_new_latency(
        external, server_address, tmp_path):
    """adapt N: late frames become latency (at most N more), reported on the info
    outlet; once grown, the replies are in time and the output is the input delayed
    by the latency last reported."""
    args = (f"-server {server_address} -model model2 -iterations 0 -mix 1 -preroll 0 "
            "-adapt 8192")
    r = Scene([args], seconds=4).render(tmp_path)
    assert r.states(0)[-1] == "connected"
    reported = [int(float(m[1])) for m in r.info[0] if m[0] == "latency"]
    assert reported[0] == 2 * 2048 and 2 * 2048 < reported[-1] <= 2 * 2048 + 8192, reported
    assert r.last(0, "concealed") > 0 and r.last(0, "underruns") == 0, r.stderr
    y = r.outs[0]
    # The last second, sample for sample at a latency that was reported: the last
    # one, or, when the pre-roll grew again within that second, those before it.
    tail = slice(len(y) - RATE, len(y))
    same = np.zeros(RATE, bool)
    for lag in set(reported):
        same |= y[tail] == r.x[tail.start - lag: tail.stop - lag]
    assert same.mean() > 0.9, same.mean()


def test_delay_sets_the_servers_delay_and_the_latency_follows(external, server_address,
                                                              tmp_path):
    """`-delay N` (and the `delay` message): the server's output trails by N frames, so
    each sample is dreamed over more blocks; the reported latency includes it."""
    args = f"-server {server_address} -model model2 -iterations 0 -mix 1 -delay 4096"
    r = Scene([args], seconds=3).render(tmp_path)
    latency = int(r.last(0, "latency"))
    assert latency == 4096 + 2048 + 2048  # delay + block + pre-roll
    y = r.outs[0]
    np.testing.assert_array_equal(y[latency:], r.x[: len(y) - latency])
