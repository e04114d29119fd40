"""A real `audiodream serve` process for the reliability tests, and what they measure on it.

`LONG` (environment AUDIODREAM_RELIABILITY=long) switches every reliability
test from its short CI size to the long run done by hand.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audiodream_proto.v1 import audiodream_pb2_grpc as pb_grpc
from watch import Output

LONG = os.environ.get("AUDIODREAM_RELIABILITY", "") == "long"
CLI = [sys.executable, "-m", "audiodream.cli"]
MESSAGE_OPTIONS = [("grpc.max_receive_message_length", 128 * 1024 * 1024),
                   ("grpc.max_send_message_length", 128 * 1024 * 1024)]
BAD_CODES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


class ServerProcess:
    """`audiodream serve --port 0 ARGS` in a child process, its output in `log_path`."""

    def __init__(self, log_path: Path, *args: str, env: dict | None = None,
                 startup_seconds: float = 180.0):
        self.log_path = log_path
        environment = {**os.environ, "AUDIODREAM_THREADS": "1", **(env or {})}
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen([*CLI, "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=environment)
        self.output = Output(self.proc.stdout, copy_to=self._log)
        found = self.output.wait_for(r"listening on (\S+:\d+)", timeout=startup_seconds)
        if found is None:
            self.stop()
            raise RuntimeError("server did not start:\n" + self.log())
        self.address = found.group(1)

    def log(self) -> str:
        return self.output.text()

    def rss_mb(self) -> float:
        """Resident memory of the server process, MiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address, options=MESSAGE_OPTIONS)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.output.wait_closed()
        self._log.close()
        return self.proc.returncode

    def error_lines(self) -> list[str]:
        """Log lines at ERROR level or tracebacks: a client's behaviour should cause none."""
        return [line for line in self.log().splitlines()
                if " ERROR " in line or line.startswith("Traceback")]


def health_status(channel: grpc.Channel, timeout: float = 5.0) -> str:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                      timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def stub(channel: grpc.Channel) -> pb_grpc.DreamServiceStub:
    return pb_grpc.DreamServiceStub(channel)


def code_of(call) -> grpc.StatusCode:
    """Runs `call()`; returns OK or the status code it failed with."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
