"""Measures dream~ in a real-time headless Pd: latency, round trip, gaps.

For each Pd block size, runs a patch for SECONDS of real time with dream~ inside
a [block~ N] subpatch and reads the info outlet. The network block is the Pd
block unless --dream-block sets it. Needs a running server and the built
external (make). Prints one table row per size, with the load average (the
machine may be shared): the first and last latency reported (the pre-roll grows
after late replies), underruns (hard gaps: 0 by design), concealed gaps (late
replies played as the dry input, crossfaded) and the server's late blocks.

    python measure.py --server 127.0.0.1:50051 --seconds 120 --sizes 64 256 1024 2048 \
        --dream-block 2048
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def patch(server: str, size: int, seconds: float, extra: str, dream_block: int) -> str:
    # Object indices: 0 loadbang, 1 dsp, 2 osc~, 3 *~, 4 pd dream, 5 delay, 6 t b b, 7 quit,
    # 8 print message.
    return "\n".join([
        "#N canvas 0 0 600 400 12;",
        "#X obj 10 10 loadbang;",
        "#X msg 10 30 \\; pd dsp 1;",
        "#X obj 10 50 osc~ 220;",
        "#X obj 10 70 *~ 0.3;",
        "#N canvas 0 0 400 300 dream 0;",
        "#X obj 10 10 inlet~;",
        f"#X obj 10 30 block~ {size};",
        f"#X obj 10 50 dream~ -server {server} -block {dream_block or size} {extra};",
        "#X obj 10 70 outlet~;",
        "#X obj 100 70 print info;",
        "#X obj 100 10 inlet;",
        "#X connect 0 0 2 0;",
        "#X connect 2 0 3 0;",
        "#X connect 2 1 4 0;",
        "#X connect 5 0 2 0;",
        "#X restore 10 90 pd dream;",
        f"#X obj 10 110 delay {int(seconds * 1000)};",
        "#X obj 10 130 t b b;",
        "#X msg 10 150 \\; pd quit;",
        "#X msg 10 170 print;",
        "#X connect 0 0 1 0;",
        "#X connect 0 0 5 0;",
        "#X connect 2 0 3 0;",
        "#X connect 3 0 4 0;",
        "#X connect 5 0 6 0;",
        "#X connect 6 0 7 0;",
        "#X connect 6 1 8 0;",
        "#X connect 8 0 4 1;",
    ]) + "\n"


def run(server: str, size: int, seconds: float, extra: str, dream_block: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "measure.pd")
        path.write_text(patch(server, size, seconds, extra, dream_block))
        cmd = ["pd", "-nogui", "-nosound", "-noprefs", "-stderr", "-r", "44100",
               "-path", str(HERE), "-open", str(path)]
        if os.geteuid() != 0:
            cmd.insert(1, "-nrt")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    info: dict[str, list[str]] = {}
    for line in done.stderr.splitlines():
        if line.startswith("info: "):
            key, _, value = line[6:].partition(" ")
            info.setdefault(key, []).append(value)
    rtts = [float(v) for v in info.get("rtt", []) if float(v) > 0]
    return {
        "latency": int(info["latency"][-1]) if "latency" in info else None,
        "first_latency": int(info["latency"][0]) if "latency" in info else None,
        "concealed": int(float(info["concealed"][-1])) if "concealed" in info else None,
        "rtt_mean": statistics.mean(rtts) if rtts else None,
        "rtt_worst_second": max(rtts) if rtts else None,
        "underruns": int(float(info["underruns"][-1])) if "underruns" in info else None,
        "late": int(float(info["late"][-1])) if "late" in info else None,
        "iterations_run": (statistics.mean(float(v) for v in info["iterations_run"])
                           if "iterations_run" in info else None),
        "states": info.get("state", []),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--extra", default="",
                        help="more dream~ creation arguments (default: the object's defaults)")
    parser.add_argument("--dream-block", type=int, default=0,
                        help="network block, frames [0 = the Pd block]")
    args = parser.parse_args()
    print("pd block  dream block  latency first->last (samples)  latency(ms)  rtt mean(ms)  "
          "rtt worst 1 s(ms)  underruns  concealed  late blocks  iterations run  load  states")
    for size in args.sizes:
        r = run(args.server, size, args.seconds, args.extra, args.dream_block)
        ms = r["latency"] / 44.1 if r["latency"] else float("nan")
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print(f"{size:8d}  {args.dream_block or size:11d}  "
              f"{r['first_latency']!s:>14} -> {r['latency']!s:<14}  {ms:11.1f}  "
              f"{r['rtt_mean'] or 0:12.2f}  {r['rtt_worst_second'] or 0:17.2f}  "
              f"{r['underruns']!s:>9}  {r['concealed']!s:>9}  {r['late']!s:>11}  "
              f"{r['iterations_run'] or 0:14.2f}  {load:>4}  "
              f"{' '.join(r['states'])}", flush=True)


if __name__ == "__main__":
    main()
