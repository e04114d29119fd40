"""Client side of StreamDream: blocks in, dreamed blocks out, live parameter changes.

Example (needs a running server)::

    with Client(address) as c, c.stream(48000, block_size=2048, iterations=4) as s:
        for out in s.process(blocks, realtime=True):
            play(out)
        s.control(step_size=0.05, layers=["conv5"])
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Iterable, Iterator

import grpc
import numpy as np

from .v1 import audiodream_pb2 as pb


class DreamStream:
    """A live StreamDream call. Not thread-safe except `control`, which may come from any thread.

    Attributes:
        ready: the server's StreamReady (settings in force).
        latency: output delay in frames; output block n holds input from
            `latency` frames earlier.
        stats, warnings: StreamStats and StreamWarning messages received so far.
    """

    def __init__(self, stub, config: pb.StreamConfig, timeout: float | None = None):
        from .client import ServerError

        self._error = ServerError
        self._requests: queue.Queue = queue.Queue()
        self._requests.put(pb.StreamRequest(config=config))
        self._channels = config.channels
        self._block = config.block_size or 2048
        self._seq = 0
        self._call = stub.StreamDream(self._outgoing(), timeout=timeout)
        self.stats: list[pb.StreamStats] = []
        self.warnings: list[pb.StreamWarning] = []
        first = self._next()
        if first.WhichOneof("msg") != "ready":
            raise self._error("UNKNOWN", "the server did not answer StreamReady first")
        self.ready = first.ready
        self.latency = first.ready.latency_samples

    def _outgoing(self):
        while True:
            item = self._requests.get()
            if item is None:
                return
            yield item

    def _next(self) -> pb.StreamResponse:
        try:
            return next(self._call)
        except StopIteration:
            raise self._error("UNAVAILABLE", "the stream ended") from None
        except grpc.RpcError as exc:
            raise self._error(exc.code().name, exc.details()) from None

    def send(self, block: np.ndarray) -> int:
        """Queues one block (`[B]` or `[B, C]`, float32); returns its seq."""
        samples = np.asarray(block, dtype="<f4").reshape(self._block, self._channels)
        seq = self._seq
        self._seq += 1
        self._requests.put(pb.StreamRequest(audio=pb.AudioChunk(seq=seq, pcm=samples.tobytes())))
        return seq

    def receive(self) -> tuple[int, np.ndarray]:
        """Waits for the next dreamed block; returns (seq, `[B]` or `[B, C]`)."""
        while True:
            response = self._next()
            kind = response.WhichOneof("msg")
            if kind == "audio":
                out = np.frombuffer(response.audio.pcm, dtype="<f4").reshape(-1, self._channels)
                return response.audio.seq, (out[:, 0] if self._channels == 1 else out).copy()
            if kind == "stats":
                self.stats.append(response.stats)
            elif kind == "warning":
                self.warnings.append(response.warning)
            elif kind == "ready":  # after a model change
                self.ready = response.ready
                self.latency = response.ready.latency_samples

    def control(self, *, model: str = "", layers: Iterable = (), mode: str = "",
                reset: bool = False, target=None, **params) -> None:
        """Changes parameters from the next block on (any DreamParams field, a target)."""
        from .client import dream_params, target_message

        msg = pb.Control(params=dream_params(model, layers, params), mode=mode, reset=reset)
        if target is not None:
            msg.target.CopyFrom(target_message(target))
        self._requests.put(pb.StreamRequest(control=msg))

    def reset(self) -> None:
        """Clears the server's state for this stream (context, dreamed loop)."""
        self._requests.put(pb.StreamRequest(control=pb.Control(reset=True)))

    def process(self, blocks: Iterable[np.ndarray], realtime: bool = False,
                ahead: int = 8) -> Iterator[np.ndarray]:
        """Streams `blocks` and yields the dreamed blocks in order.

        Args:
            realtime: send one block per block duration, as a live input would.
            ahead: most blocks sent but not yet received (when not real time).
        """
        rate = self.ready.config.sample_rate
        room = threading.Semaphore(ahead)
        sent = [0]
        finished = threading.Event()

        def sender():
            start = time.perf_counter()
            for i, block in enumerate(blocks):
                if realtime:
                    delay = start + i * self._block / rate - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                else:
                    room.acquire()
                self.send(block)
                sent[0] += 1
            finished.set()

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        received = 0
        while not (finished.is_set() and received >= sent[0]):
            if received >= sent[0]:
                time.sleep(0.001)
                continue
            yield self.receive()[1]
            received += 1
            room.release()
        thread.join()

    def close(self) -> None:
        """Ends the stream; blocks not yet received are dropped."""
        self._requests.put(None)
        self._call.cancel()

    def __enter__(self) -> "DreamStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
