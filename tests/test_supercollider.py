"""Dream, the SuperCollider UGen (clients/supercollider), in a real scsynth against a real server.

The plugin is built with `make -C clients/supercollider`; sclang (headless) compiles the
test SynthDefs with the extension's classes, which checks those too. Real-time tests run
scsynth on JACK's dummy backend (a sound card's clock, no sound card) and drive it over
OSC from Python (clients/supercollider/scsynth_osc.py): the unit's reports arrive as
/dream node replies, its info lines as /dream_info. Recordings are RecordBuf into
buffers, written with /b_write. Non-real-time tests render a score with `scsynth -N`.
Every run is bounded by a timeout.

System packages (Debian 12): supercollider-server supercollider-language
supercollider-dev jackd2, plus the Pd tests' gRPC/protobuf-c build packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from test_pd_external import best_delay, free_port, own_server  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
SC_DIR = ROOT / "clients" / "supercollider"
sys.path.insert(0, str(SC_DIR))
from scsynth_osc import Jack, Scsynth, message, score  # noqa: E402

RATE = 48000
PACKAGES = "supercollider-server supercollider-language supercollider-dev jackd2"
CONNECTED = 2  # Dream.stateNames: disconnected, connecting, connected
# Dreaming tests buffer more against a busy machine (the latency grows by as much).
PREROLL = 32768  # frames, the most Dream takes: 0.68 s at 48 kHz

# The SynthDefs, compiled by sclang with the extension's classes. A stereo source
# with structure (two tones) and noise, so the delay has one best match.
DEFS = r"""
var dir = thisProcess.argv[0];
var source = { [SinOsc.ar(220), SinOsc.ar(331)] * 0.25 + WhiteNoise.ar(0.05 ! 2) };
var defs = [
    SynthDef(\dream_rec, { |inbuf, outbuf, seconds = 6, iterations = -1, step = -1,
            mix = -1, dry = 1, id = 0, preroll = 2048|
        var x = source.value;
        var y = Dream.ar(x, iterations, step, mix, dry: dry, id: id, preroll: preroll);
        RecordBuf.ar(x, inbuf, loop: 0);
        RecordBuf.ar(y, outbuf, loop: 0);
        Line.kr(0, 1, seconds, doneAction: 2);
    }),
    SynthDef(\dream_sweep, { |inbuf, outbuf, seconds = 8|
        var x = source.value;
        // step: 0 for half the time, then a control-rate ramp to 0.2; each
        // change is a Control message
        var y = Dream.ar(x, 3, Line.kr(-0.2, 0.2, seconds).max(0), 1, preroll: 32768);
        RecordBuf.ar(x, inbuf, loop: 0);
        RecordBuf.ar(y, outbuf, loop: 0);
        Line.kr(0, 1, seconds, doneAction: 2);
    }),
    // Deterministic input (no noise generator) for renders that must repeat.
    SynthDef(\dream_nrt, { |iterations = 0, step = -1, seed = -1|
        var x = [SinOsc.ar(220), LFTri.ar(110) * 0.5] * 0.3;
        var y = Dream.ar(x, iterations, step, 1, seed: seed);
        Out.ar(0, y);
        Out.ar(2, x);
    })
];
defs.do { |d|
    d.writeDefFile(dir);
    ("INDEX" + d.name + d.children.detect { |u| u.isKindOf(Dream) }.synthIndex).postln;
};
"DEFS DONE".postln;
0.exit;
"""


def sclang_env() -> dict:
    return {**os.environ, "QTWEBENGINE_DISABLE_SANDBOX": "1", "QT_QPA_PLATFORM": "offscreen"}


@pytest.fixture(scope="module")
def plugin() -> Path:
    """Builds the plugin; without SuperCollider, fails in CI and skips elsewhere."""
    missing = [t for t in ("scsynth", "sclang", "jackd", "protoc-c", "pkg-config", "c++")
               if shutil.which(t) is None]
    if not Path("/usr/include/SuperCollider/plugin_interface/SC_PlugIn.h").exists():
        missing.append("SuperCollider plugin headers")
    if missing:
        why = f"needs {', '.join(missing)}: apt-get install {PACKAGES}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    build = subprocess.run(["make", "-C", str(SC_DIR)], capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    return SC_DIR


@pytest.fixture(scope="module")
def defs(plugin, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """The SynthDefs' folder and the UGen index of each one's Dream (for /u_cmd)."""
    out = tmp_path_factory.mktemp("defs")
    (out / "defs.scd").write_text(DEFS)
    (out / "conf.yaml").write_text(f"includePaths:\n  - {SC_DIR / 'classes'}\n"
                                   "excludePaths: []\npostInlineWarnings: false\n")
    done = subprocess.run(["sclang", "-l", str(out / "conf.yaml"), str(out / "defs.scd"),
                           str(out)], capture_output=True, text=True, timeout=120,
                          env=sclang_env(), cwd=out)
    assert "DEFS DONE" in done.stdout, done.stdout + done.stderr
    index = {line.split()[1]: int(line.split()[2]) for line in done.stdout.splitlines()
             if line.startswith("INDEX ")}
    return out, index


@pytest.fixture(scope="module")
def jack():
    with Jack(RATE, 1024) as j:
        yield j


REPORT_FIELDS = ("index", "state", "latency", "rtt", "rtt_max", "underruns", "late",
                 "iterations_run", "controls", "blocks", "dropped", "overruns", "concealed")


def report(m: tuple) -> dict:
    """A /dream reply [address, node, id, values...] as a dict (fields: see Dream.schelp)."""
    return dict(zip(REPORT_FIELDS, m[3:], strict=True))


class Session:
    """One real-time scsynth with the plugin, streaming to `server`."""

    def __init__(self, plugin: Path, defs, jack: Jack, server: str, tmp: Path):
        self.dir, self.index = defs
        self.tmp = tmp
        self.synth = Scsynth([plugin], jack, env={"AUDIODREAM_SERVER": server})
        self.next_buf = 0

    def __enter__(self) -> "Session":
        self.synth.__enter__()
        self.synth.call("/d_loadDir", str(self.dir))
        return self

    def __exit__(self, *exc) -> None:
        self.synth.__exit__(*exc)

    def buffer(self, seconds: float, channels: int = 2) -> int:
        b = self.next_buf
        self.next_buf += 1
        self.synth.call("/b_alloc", b, int(seconds * RATE), channels)
        return b

    def read(self, buf: int) -> np.ndarray:
        path = self.tmp / f"buf{buf}.wav"
        self.synth.call("/b_write", buf, str(path), "wav", "float")
        return sf.read(path, dtype="float32", always_2d=True)[0]

    def play(self, defname: str, node: int, **controls) -> None:
        args = [a for k, v in controls.items() for a in (k, float(v))]
        self.synth.send("/s_new", defname, node, 1, 0, *args)

    def cmd(self, defname: str, node: int, name: str, *args) -> None:
        self.synth.send("/u_cmd", node, self.index[defname], name, *args)

    def ended(self, node: int, timeout: float) -> None:
        self.synth.wait("/n_end", lambda m: m[1] == node, timeout)

    def reports(self, node: int) -> list[dict]:
        """The /dream replies of one node so far, as dicts."""
        return [report(m) for m in self.synth.take("/dream", lambda m: m[1] == node)]

    def wait_report(self, node: int, match, timeout: float = 60.0) -> dict:
        """Waits for a /dream reply of `node` whose dict `match` accepts."""
        return report(self.synth.wait("/dream", lambda m: m[1] == node and match(report(m)),
                                      timeout))

    def info(self, node: int) -> list[str]:
        return ["".join(chr(int(c)) for c in m[3:])
                for m in self.synth.take("/dream_info", lambda m: m[1] == node)]


def record(s: Session, defname: str, seconds: float, node: int = 1000, **controls):
    """Plays one recording synth to its end; returns (input, output, reports)."""
    bin_, bout = s.buffer(seconds), s.buffer(seconds)
    s.play(defname, node, inbuf=bin_, outbuf=bout, seconds=seconds, **controls)
    s.ended(node, timeout=seconds + 60)
    return s.read(bin_), s.read(bout), s.reports(node)


def connected_latency(reports: list[dict]) -> int:
    latencies = [int(r["latency"]) for r in reports if r["state"] == CONNECTED]
    assert latencies, reports
    return latencies[-1]


# ---- real time --------------------------------------------------------------------------


def test_transparent_stream_is_the_input_delayed_by_the_reported_latency(
        plugin, defs, jack, server_address, tmp_path):
    with Session(plugin, defs, jack, server_address, tmp_path) as s:
        x, y, reports = record(s, "dream_rec", 6, iterations=0, mix=1, preroll=PREROLL)
    latency = connected_latency(reports)
    assert latency == 2 * 2048 + PREROLL  # block + preroll + the server's one-block delay
    tail = slice(3 * RATE, len(y))  # long after the stream came up
    for c in (0, 1):
        assert best_delay(x[2 * RATE:, c], y[2 * RATE:, c], 4 * latency) == latency
        # 0 iterations at mix 1: the server returns its input bit for bit, on both
        # channels, so the output is the recorded input shifted by the latency. A block
        # that came too late on a busy machine is output as zeros (counted as an
        # underrun) and skipped later, so every other sample still matches exactly.
        got, want = y[tail, c], x[tail.start - latency: len(y) - latency, c]
        heard = got != 0
        assert heard.mean() > 0.5, reports[-1]
        np.testing.assert_array_equal(got[heard], want[heard])


def test_dreaming_is_bounded_audible_and_different_from_the_input(
        plugin, defs, jack, server_address, tmp_path):
    with Session(plugin, defs, jack, server_address, tmp_path) as s:
        bin_, bout = s.buffer(6), s.buffer(6)
        s.play("dream_rec", 1000, inbuf=bin_, outbuf=bout, seconds=6, iterations=3, step=0.1,
               preroll=PREROLL)
        s.cmd("dream_rec", 1000, "model", "model2")
        s.cmd("dream_rec", 1000, "layers", "conv2")
        s.ended(1000, 70)
        x, y, reports = s.read(bin_), s.read(bout), s.reports(1000)
    latency = connected_latency(reports)
    settled = y[4 * RATE:]
    dry = x[4 * RATE - latency: len(y) - latency]
    assert np.abs(settled).max() <= 1.0
    assert np.sqrt(np.mean(settled ** 2)) > 0.05
    assert np.abs(settled - dry).max() > 0.05
    assert max(r["iterations_run"] for r in reports) > 0  # the server's own stats


def test_a_control_rate_sweep_of_step_reaches_the_server(
        plugin, defs, jack, server_address, tmp_path):
    """step = max(0, Line.kr(-0.2, 0.2)): 0 for 4 s, then a ramp. Each change is sent (at
    most once per network block) and the sound follows: untouched while step is 0,
    dreamed once it grows."""
    with Session(plugin, defs, jack, server_address, tmp_path) as s:
        x, y, reports = record(s, "dream_sweep", 8)
    latency = connected_latency(reports)
    assert reports[-1]["controls"] > 20, reports[-1]  # many Controls, one stream
    assert reports[-1]["iterations_run"] > 0

    def change(a: float, b: float) -> float:
        """Median over 2048-frame blocks of the RMS change from the delayed input; a
        block the server ran late on is output as zeros and left out."""
        seg = slice(int(a * RATE), int(b * RATE))
        out = y[seg][: (seg.stop - seg.start) // 2048 * 2048].reshape(-1, 2048 * 2)
        dry = x[seg.start - latency: seg.stop - latency][: len(out) * 2048].reshape(-1, 2048 * 2)
        heard = (out != 0).all(axis=1)
        assert heard.mean() > 0.5, reports[-1]
        return float(np.median(np.sqrt(np.mean((out - dry)[heard] ** 2, axis=1))))

    assert change(1, 3.5) == 0  # step 0: the server gives the input back
    assert change(6.5, 8) > 0.02


def test_without_a_server_scsynth_keeps_running_with_dry_or_silent_output(
        plugin, defs, jack, tmp_path):
    nobody = f"127.0.0.1:{free_port()}"
    with Session(plugin, defs, jack, nobody, tmp_path) as s:
        bufs = [s.buffer(3) for _ in range(4)]
        s.play("dream_rec", 1000, inbuf=bufs[0], outbuf=bufs[1], seconds=3, dry=1)
        s.play("dream_rec", 1001, inbuf=bufs[2], outbuf=bufs[3], seconds=3, dry=0, id=1)
        s.ended(1000, 60)
        s.ended(1001, 60)
        s.synth.call("/status", reply="/status.reply")  # still answering
        x0, y0, x1, y1 = (s.read(b) for b in bufs)
        reports = s.reports(1000) + s.reports(1001)
        output = "\n".join(s.synth.output)
    np.testing.assert_array_equal(y0, x0)  # dry: the input, undelayed
    assert not y1.any()  # silence
    assert CONNECTED not in [r["state"] for r in reports]
    # One message per unit for the whole outage, though it retried meanwhile.
    assert output.count(f"cannot stream from {nobody}") == 2, output


def test_reconnects_and_dreams_again_after_the_server_restarts(
        plugin, defs, jack, own_server, tmp_path):  # noqa: F811 (the imported fixture)
    port, start, procs = own_server
    start()
    with Session(plugin, defs, jack, f"127.0.0.1:{port}", tmp_path) as s:
        s.play("dream_rec", 1000, inbuf=s.buffer(1), outbuf=s.buffer(1), seconds=600,
               iterations=2, step=0.1)
        s.wait_report(1000, lambda r: r["state"] == CONNECTED and r["blocks"] > 10)
        procs[0].kill()  # mid-stream, no goodbye
        procs[0].wait(10)
        s.wait_report(1000, lambda r: r["state"] != CONNECTED)
        assert s.synth.alive()
        start()  # the same port
        s.wait_report(1000, lambda r: r["state"] == CONNECTED and r["blocks"] > 20
                      and r["iterations_run"] > 0, timeout=120)
        output = "\n".join(s.synth.output)
    assert output.count("lost the stream to") == 1, output  # one message for the outage
    assert f"connected to 127.0.0.1:{port} again" in output


def test_two_units_in_two_synths_dream_with_different_layers(
        plugin, defs, jack, server_address, tmp_path):
    with Session(plugin, defs, jack, server_address, tmp_path) as s:
        bufs = [s.buffer(6) for _ in range(4)]
        for k, layer in enumerate(("conv1", "conv3 5 9")):
            node = 1000 + k
            s.play("dream_rec", node, inbuf=bufs[2 * k], outbuf=bufs[2 * k + 1], seconds=6,
                   iterations=3, step=0.1, preroll=PREROLL)
            s.cmd("dream_rec", node, "model", "model2")
            s.cmd("dream_rec", node, "layers", layer)
        s.cmd("dream_rec", 1001, "layers?", "model2")
        s.ended(1000, 70)
        s.ended(1001, 70)
        xa, ya, xb, yb = (s.read(b) for b in bufs)
        reports = [s.reports(1000), s.reports(1001)]
        info = s.info(1001)
    for x, y, r in ((xa, ya, reports[0]), (xb, yb, reports[1])):
        latency = connected_latency(r)
        settled = y[4 * RATE:]
        assert np.abs(settled).max() <= 1.0
        assert np.sqrt(np.mean(settled ** 2)) > 0.05, (r[-1], info)
        assert np.abs(settled - x[4 * RATE - latency: len(y) - latency]).max() > 0.02
    # Same source (the noise differs per synth, the tones do not): compare what each
    # did to its own input.
    da = ya[4 * RATE:] - xa[4 * RATE - connected_latency(reports[0]): len(ya)
                            - connected_latency(reports[0])]
    db = yb[4 * RATE:] - xb[4 * RATE - connected_latency(reports[1]): len(yb)
                            - connected_latency(reports[1])]
    assert np.abs(da - db).max() > 0.02  # different layers, different dreams
    layers = [line.split() for line in info if line.startswith("layers ")]
    assert layers and layers[0][1] == "model2" and "conv6" in layers[0][2:], info


# ---- non-real time ------------------------------------------------------------------------


def render(plugin: Path, defs, server: str, tmp: Path, name: str, seconds: float,
           **controls) -> tuple[np.ndarray, np.ndarray, str]:
    """Renders dream_nrt for `seconds` with scsynth -N; returns (input, output, console)."""
    folder, _ = defs
    args = [a for k, v in controls.items() for a in (k, float(v))]
    entries = [
        (0.0, [message("/d_recv", (folder / "dream_nrt.scsyndef").read_bytes())]),
        (0.0, [message("/s_new", "dream_nrt", 1000, 0, 0, *args)]),
        (seconds, [message("/c_set", 0, 0)]),  # the end
    ]
    path = tmp / f"{name}.osc"
    path.write_bytes(score(entries))
    wav = tmp / f"{name}.wav"
    plugins = ":".join(["/usr/lib/SuperCollider/plugins", str(plugin)])
    done = subprocess.run(["scsynth", "-N", str(path), "_", str(wav), str(RATE), "WAV",
                           "float", "-o", "4", "-U", plugins],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "AUDIODREAM_SERVER": server})
    assert done.returncode == 0 and wav.exists(), done.stdout + done.stderr
    audio = sf.read(wav, dtype="float32", always_2d=True)[0]
    return audio[:, 2:], audio[:, :2], done.stdout


def test_nrt_render_waits_for_every_block_and_is_the_input_delayed(
        plugin, defs, server_address, tmp_path):
    x, y, console = render(plugin, defs, server_address, tmp_path, "clear", 3, iterations=0)
    latency = [int(line.split()[-1]) for line in console.splitlines()
               if line.startswith("Dream: latency")][-1]
    assert latency == 3 * 2048
    # Every block came back from the server: zeros for the latency, then the input
    # exactly (a dry or missing block would break it anywhere).
    assert not y[:latency].any()
    np.testing.assert_array_equal(y[latency:], x[: len(y) - latency])


def test_nrt_renders_with_the_same_seed_are_identical_and_dreamed(
        plugin, defs, server_address, tmp_path):
    runs = [render(plugin, defs, server_address, tmp_path, f"seeded{k}", 2,
                   iterations=2, step=0.1, seed=7) for k in range(2)]
    (x, a, console), (_, b, _) = runs
    np.testing.assert_array_equal(a, b)
    latency = 3 * 2048
    dreamed, dry = a[latency:], x[: len(a) - latency]
    assert np.abs(dreamed).max() <= 1.0 and np.sqrt(np.mean(dreamed ** 2)) > 0.02
    # Every 64-frame block differs from the input: none is dry.
    blocks = (len(dreamed) // 64) * 64
    per_block = np.abs(dreamed[:blocks] - dry[:blocks]).reshape(-1, 64, 2).max(axis=(1, 2))
    assert (per_block > 0).all(), np.flatnonzero(per_block == 0)[:10]
    assert "cannot stream" not in console



# ---- the language side, as a newcomer meets it --------------------------------------------

HELP_EXAMPLE = r"""
var address = thisProcess.argv[0];
s = Server.default;
s.options.numInputBusChannels = 2;
s.options.numOutputBusChannels = 2;
s.waitForBoot {
    fork {
        var x, d, tries = 0;
        Dream.serverAddress = address;
        s.sync;
        x = { Dream.ar(SinOsc.ar(220) * 0.3) }.play;    // the help file's example
        d = DreamControl(x);
        while { d.stateName != \connected and: { tries < 600 } } { 0.1.wait; tries = tries + 1 };
        ("STATE" + d.stateName + d.latency).postln;
        d.queryModels { |models, default|
            ("MODELS" + models.collect(_.name).join(",") + default).postln };
        d.queryLayers("model2") { |layers, default|
            ("LAYERS" + layers.collect(_.name).join(",") + default).postln };
        tries = 0;
        while { (d.blocks ? 0) < 30 and: { tries < 600 } } { 0.1.wait; tries = tries + 1 };
        d.onInfo = { |line| ("INFO" + line).postln };
        d.model = "model1";
        1.wait;
        d.model = "model2";
        d.layers = "conv2";
        d.layers = ["conv3", 0, 5];
        2.wait;
        ("REPORT" + d.blocks + d.iterationsRun + d.underruns).postln;
        x.free;
        d.free;
        s.quit;
        1.wait;
        "DONE".postln;
        0.exit;
    }
};
"""


def test_help_example_runs_from_the_installed_extension(
        plugin, jack, server_address, tmp_path):
    """`make install` into a fresh user Extensions folder; sclang compiles the classes from
    there, boots scsynth (which finds the plugin there too), plays the help file's example
    and gets state, latency, the server's models and layers as sclang objects."""
    data = tmp_path / "data"
    install = subprocess.run(["make", "-C", str(SC_DIR), "install", f"XDG_DATA_HOME={data}"],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    folder = data / "SuperCollider" / "Extensions" / "audiodream"
    assert (folder / "Dream.so").exists() and (folder / "classes" / "Dream.sc").exists()
    assert (folder / "HelpSource" / "Classes" / "Dream.schelp").exists()
    script = tmp_path / "example.scd"
    script.write_text(HELP_EXAMPLE)
    env = {**sclang_env(), **jack.env, "XDG_DATA_HOME": str(data),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    done = subprocess.run(["sclang", str(script), server_address], capture_output=True,
                          text=True, timeout=180, env=env, cwd=tmp_path)
    out = done.stdout
    assert "DONE" in out, out + done.stderr
    assert f"STATE connected {3 * 2048}" in out, out
    models = [line.split() for line in out.splitlines() if line.startswith("MODELS ")]
    assert models and "model2" in models[0][1].split(","), out
    layers = [line.split() for line in out.splitlines() if line.startswith("LAYERS ")]
    assert layers and "conv3" in layers[0][1].split(",") and layers[0][2] == "conv3", out
    info = [line for line in out.splitlines() if line.startswith("INFO ")]
    assert "INFO warning model_changed" in "\n".join(info), out
    assert not [line for line in info if "invalid" in line], info  # the layers were valid
    report = [line.split() for line in out.splitlines() if line.startswith("REPORT ")]
    assert report and int(report[0][1]) >= 30 and float(report[0][2]) > 0, out
