"""Measures Dream in a real-time scsynth: latency, round trip, gaps, late/dropped blocks.

For each hardware block size, starts JACK's dummy backend with that period, a scsynth
on it with the built plugin (make), and one synth playing a sine through Dream for
SECONDS of real time; reads the unit's /dream reports. Needs a running server, jackd,
scsynth and sclang (to compile the SynthDef with the extension's classes). Prints one
table row per size.

    python measure.py --server 127.0.0.1:50051 --seconds 120 --sizes 64 1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from scsynth_osc import Jack, Scsynth

HERE = Path(__file__).resolve().parent
RATE = 48000
FIELDS = ("index", "state", "latency", "rtt", "rtt_max", "underruns", "late",
          "iterations_run", "controls", "blocks", "dropped", "overruns", "concealed")

DEF = r"""
SynthDef(\dream_measure, { |iterations = -1, preroll = 2048|
    Out.ar(0, Dream.ar(SinOsc.ar(220) * 0.3, iterations, preroll: preroll));
}).writeDefFile(thisProcess.argv[0]);
"DEF DONE".postln;
0.exit;
"""


def compile_def(folder: Path) -> None:
    (folder / "def.scd").write_text(DEF)
    (folder / "conf.yaml").write_text(f"includePaths:\n  - {HERE / 'classes'}\n"
                                      "excludePaths: []\n")
    env = {**os.environ, "QTWEBENGINE_DISABLE_SANDBOX": "1", "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(["sclang", "-l", str(folder / "conf.yaml"), str(folder / "def.scd"),
                           str(folder)], capture_output=True, text=True, timeout=120, env=env)
    if "DEF DONE" not in done.stdout:
        raise RuntimeError(done.stdout + done.stderr)


def run(server: str, size: int, seconds: float, model: str, iterations: float,
        preroll: int, folder: Path) -> dict:
    with Jack(RATE, size) as jack, Scsynth([HERE], jack,
                                           env={"AUDIODREAM_SERVER": server}) as s:
        s.call("/d_loadDir", str(folder))
        s.send("/s_new", "dream_measure", 1000, 0, 0, "iterations", float(iterations),
               "preroll", float(preroll))
        first = s.wait("/dream", lambda m: m[1] == 1000, timeout=30)
        if model:
            s.send("/u_cmd", 1000, int(first[3]), "model", model)
        began = time.monotonic()
        reports = []
        while time.monotonic() - began < seconds:
            try:
                m = s.wait("/dream", lambda m: m[1] == 1000, timeout=5)
            except TimeoutError:
                continue
            reports.append(dict(zip(FIELDS, m[3:], strict=True)))
        s.send("/n_free", 1000)
        output = s.output
    connected = [r for r in reports if r["state"] == 2]
    last = connected[-1] if connected else {}
    rtts = [r["rtt"] for r in connected if r["rtt"] > 0]
    return {
        "latency": int(last["latency"]) if last else None,
        "rtt_mean": statistics.mean(rtts) if rtts else None,
        "rtt_worst_second": max(r["rtt_max"] for r in connected) if connected else None,
        "underruns": int(last.get("underruns", 0)),
        "concealed": int(last.get("concealed", 0)),
        "late": int(last.get("late", 0)),
        "dropped": int(last.get("dropped", 0)),
        "overruns": int(last.get("overruns", 0)),
        "blocks": int(last.get("blocks", 0)),
        "iterations_run": (statistics.mean(r["iterations_run"] for r in connected)
                           if connected else None),
        "reconnections": sum(1 for a, b in zip(reports, reports[1:], strict=False)
                             if a["state"] == 2 and b["state"] != 2),
        "errors": [line for line in output if "ERROR" in line],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 1024],
                        help="hardware block sizes (JACK periods)")
    parser.add_argument("--model", default="model2", help="'' for the server's default")
    parser.add_argument("--iterations", type=float, default=-1,
                        help="per block; negative: the server's default")
    parser.add_argument("--preroll", type=int, default=2048, help="frames, 0..32768")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        compile_def(Path(tmp))
        print("hw block  latency(samples)  latency(ms)  rtt mean(ms)  rtt worst(ms)  "
              "underruns  concealed  late  dropped  overruns  blocks  iterations run  "
              "reconnections  load")
        for size in args.sizes:
            r = run(args.server, size, args.seconds, args.model, args.iterations,
                    args.preroll, Path(tmp))
            ms = r["latency"] / RATE * 1000 if r["latency"] else float("nan")
            print(f"{size:8d}  {r['latency']!s:>16}  {ms:11.1f}  {r['rtt_mean'] or 0:12.2f}  "
                  f"{r['rtt_worst_second'] or 0:13.2f}  {r['underruns']:9d}  {r['concealed']:9d}  "
                  f"{r['late']:4d}  "
                  f"{r['dropped']:7d}  {r['overruns']:8d}  {r['blocks']:6d}  "
                  f"{r['iterations_run'] or 0:14.2f}  {r['reconnections']:13d}  "
                  f"{os.getloadavg()[0]:4.1f}", flush=True)
            for line in r["errors"]:
                print("   ", line)


if __name__ == "__main__":
    main()
