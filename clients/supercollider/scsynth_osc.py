"""A small OSC client for scsynth, and headless scsynth/JACK runners.

Enough Open Sound Control (1.0: int32, float32, string, blob; messages and
bundles) to drive a real scsynth over UDP from Python without the language:
load SynthDefs, start synths, send unit commands, read node replies, and
write NRT scores (`scsynth -N` reads a file of length-prefixed bundles).
Used by the Dream tests and by measure.py.

    with Jack(48000, 1024) as jack, Scsynth(plugins=[...]) as s:
        s.call("/d_load", "/path/to/def.scsyndef", reply="/done")
        s.send("/s_new", "mydef", 1000, 0, 0)
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

SYSTEM_PLUGINS = "/usr/lib/SuperCollider/plugins"


# ---- encoding -----------------------------------------------------------------------


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (4 - len(b) % 4)


def _string(s: str) -> bytes:
    return _pad(s.encode())


def _blob(b: bytes) -> bytes:
    return struct.pack(">i", len(b)) + b + b"\0" * (-len(b) % 4)


def message(address: str, *args) -> bytes:
    """One OSC message; ints, floats, strings and bytes (blobs)."""
    tags, data = ",", b""
    for a in args:
        if isinstance(a, bool) or isinstance(a, int):
            tags, data = tags + "i", data + struct.pack(">i", int(a))
        elif isinstance(a, float):
            tags, data = tags + "f", data + struct.pack(">f", a)
        elif isinstance(a, str):
            tags, data = tags + "s", data + _string(a)
        elif isinstance(a, (bytes, bytearray)):
            tags, data = tags + "b", data + _blob(bytes(a))
        else:
            raise TypeError(f"cannot send {a!r} over OSC")
    return _string(address) + _string(tags) + data


def bundle(seconds: float, *messages: bytes) -> bytes:
    """A bundle at `seconds` (NRT score time: seconds since the start)."""
    whole = int(seconds)
    frac = int((seconds - whole) * (1 << 32))
    body = b"".join(struct.pack(">i", len(m)) + m for m in messages)
    return _string("#bundle") + struct.pack(">II", whole, frac) + body


def score(entries: list[tuple[float, list[bytes]]]) -> bytes:
    """An NRT score file: each bundle prefixed by its length."""
    out = b""
    for seconds, msgs in entries:
        b = bundle(seconds, *msgs)
        out += struct.pack(">i", len(b)) + b
    return out


def parse(packet: bytes) -> list[tuple]:
    """Messages in a packet as (address, *args); bundles are flattened."""
    def read_string(at: int) -> tuple[str, int]:
        end = packet.index(b"\0", at)
        return packet[at:end].decode(errors="replace"), (end + 4) & ~3

    if packet.startswith(b"#bundle\0"):
        out, at = [], 16
        while at < len(packet):
            (size,) = struct.unpack_from(">i", packet, at)
            out += parse(packet[at + 4: at + 4 + size])
            at += 4 + size
        return out
    address, at = read_string(0)
    tags, at = read_string(at) if at < len(packet) else (",", at)
    args: list = []
    for t in tags[1:]:
        if t == "i":
            args.append(struct.unpack_from(">i", packet, at)[0])
            at += 4
        elif t == "f":
            args.append(struct.unpack_from(">f", packet, at)[0])
            at += 4
        elif t == "s":
            s, at = read_string(at)
            args.append(s)
        elif t == "b":
            (size,) = struct.unpack_from(">i", packet, at)
            args.append(packet[at + 4: at + 4 + size])
            at += 4 + size + (-size % 4)
        else:
            break
    return [(address, *args)]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- processes ----------------------------------------------------------------------


class Jack:
    """JACK's dummy backend: a sound card's clock without a sound card."""

    def __init__(self, rate: int = 48000, period: int = 1024, name: str | None = None):
        self.name = name or f"dream{os.getpid()}_{period}"
        self.env = {**os.environ, "JACK_NO_AUDIO_RESERVATION": "1",
                    "JACK_DEFAULT_SERVER": self.name}
        self.cmd = ["jackd", "-n", self.name, "-d", "dummy", "-r", str(rate), "-p", str(period)]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Jack":
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        # jackd prints nothing reliable when ready; jack_wait would need another
        # package, so give it the time it needs and check it is alive.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if Path(f"/dev/shm/jack_{self.name}_0_0").exists() or any(
                    p.name.startswith(f"jack_{self.name}") for p in Path("/dev/shm").iterdir()):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"jackd exited: {self.proc.stdout.read()}")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Scsynth:
    """A real-time scsynth on JACK, with an OSC client that collects replies.

    `plugins`: folders to search besides the system's (scsynth's -U replaces
    the path, so the system folder is always listed first).
    """

    def __init__(self, plugins: list[Path], jack: Jack, channels: int = 2,
                 env: dict | None = None, args: list[str] | None = None):
        self.port = free_udp_port()
        path = ":".join([SYSTEM_PLUGINS, *map(str, plugins)])
        self.cmd = ["scsynth", "-u", str(self.port), "-i", str(channels), "-o", str(channels),
                    "-U", path, "-R", "0", *(args or [])]
        self.env = {**jack.env, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []
        self.replies: list[tuple] = []
        self._arrived = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self._ready = threading.Event()

    def __enter__(self) -> "Scsynth":
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read_output, daemon=True).start()
        threading.Thread(target=self._read_replies, daemon=True).start()
        if not self._ready.wait(30):
            self.stop()
            raise RuntimeError("scsynth did not start:\n" + "\n".join(self.output))
        self.call("/notify", 1, reply="/done")
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.send("/quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.sock.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _read_output(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))
            if "server ready" in line:
                self._ready.set()

    def _read_replies(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            with self._arrived:
                self.replies.extend(parse(data))
                self._arrived.notify_all()

    def send(self, address: str, *args) -> None:
        self.sock.sendto(message(address, *args), ("127.0.0.1", self.port))

    def wait(self, address: str, match=lambda m: True, timeout: float = 30.0) -> tuple:
        """Takes the oldest reply at `address` that `match` accepts; others stay."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for i, m in enumerate(self.replies):
                    if m[0] == address and match(m):
                        return self.replies.pop(i)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {address} reply within {timeout} s; output:\n"
                                       + "\n".join(self.output[-30:]))
                self._arrived.wait(left)

    def take(self, address: str, match=lambda m: True) -> list[tuple]:
        """Every reply at `address` that `match` accepts so far, oldest first."""
        with self._arrived:
            out = [m for m in self.replies if m[0] == address and match(m)]
            self.replies = [m for m in self.replies if not (m[0] == address and match(m))]
            return out

    def call(self, address: str, *args, reply: str = "/done", timeout: float = 30.0) -> tuple:
        """Sends and waits for the reply (e.g. /done, /synced)."""
        self.send(address, *args)
        return self.wait(reply, timeout=timeout)

    def sync(self, timeout: float = 30.0) -> None:
        token = int(time.monotonic() * 1000) % 100000
        self.send("/sync", token)
        self.wait("/synced", lambda m: m[1] == token, timeout)


def tools_missing() -> list[str]:
    return [t for t in ("scsynth", "sclang", "jackd") if shutil.which(t) is None]
