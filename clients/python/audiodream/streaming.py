"""Client side of StreamDream: blocks in, dreamed blocks out, live parameter changes.

A stream lives on one replica. With `reopen`, a stream whose replica shuts
down (it sends a "draining" StreamWarning first) or dies (the call fails
UNAVAILABLE or is cut) is opened again on another replica with the same
settings, controls included, and every block sent but not yet answered is
sent again, so each block still gets exactly one answer, in order. The new
replica starts with an empty context, so the output holds one delay's worth
(one block by default) of the input's silence there; each move is recorded in
`moves` with the time it took.

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
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import grpc
import numpy as np

from audiodream_proto.v1 import audiodream_pb2 as pb

from .errors import ServerError
from .messages import dream_params, target_message

# How a call ends when its replica went away (not by our own cancel).
MOVABLE = ("UNAVAILABLE", "CANCELLED")


@dataclass
class Move:
    """The stream reopened on another replica.

    Attributes:
        reason: "draining" (the replica asked) or the status that ended the call.
        from_replica, to_replica: StreamReady.replica of each ("" from older servers).
        seconds: from noticing to the new replica's StreamReady.
        resent: blocks sent again (sent before, not answered).
    """

    reason: str
    from_replica: str
    to_replica: str
    seconds: float
    resent: int


def _outgoing(requests: queue.Queue):
    while True:
        item = requests.get()
        if item is None:
            return
        yield item


class DreamStream:
    """A live StreamDream call. Not thread-safe except `send` and `control` (any thread).

    Attributes:
        ready: the server's StreamReady (settings in force).
        latency: output delay in frames; output block n holds input from
            `latency` frames earlier.
        stats, warnings: StreamStats and StreamWarning messages received so far.
        moves: each reopening on another replica (`reopen=True`).
    """

    def __init__(self, stub, config: pb.StreamConfig, timeout: float | None = None, *,
                 reopen: bool = False, on_move=None, attempts: int = 1):
        self._error = ServerError
        self._stub = stub
        self._config = pb.StreamConfig()
        self._config.CopyFrom(config)
        self._timeout = timeout
        self._reopen = reopen
        self._on_move = on_move
        self._attempts = max(1, attempts)
        self._channels = config.channels
        self._block = config.block_size or 2048
        self._seq = 0
        self._lock = threading.Lock()  # the current call, its queue, the pending blocks
        self._pending: deque = deque()  # (seq, request) sent and not yet answered
        self._closed = False
        self.stats: list[pb.StreamStats] = []
        self.warnings: list[pb.StreamWarning] = []
        self.moves: list[Move] = []
        self._open()

    def _open(self) -> None:
        """Opens the call (another replica on each UNAVAILABLE, up to `attempts`)."""
        for attempt in range(self._attempts):
            requests: queue.Queue = queue.Queue()
            requests.put(pb.StreamRequest(config=self._config))
            call = self._stub.StreamDream(_outgoing(requests), timeout=self._timeout)
            try:
                first = next(call)
            except StopIteration:
                raise self._error("UNAVAILABLE", "the stream ended before it started") from None
            except grpc.RpcError as exc:
                requests.put(None)
                if exc.code() is grpc.StatusCode.UNAVAILABLE and attempt + 1 < self._attempts:
                    continue
                raise self._error(exc.code().name, exc.details()) from None
            if first.WhichOneof("msg") != "ready":
                call.cancel()
                raise self._error("UNKNOWN", "the server did not answer StreamReady first")
            self._requests, self._call = requests, call
            self.ready = first.ready
            self.latency = first.ready.latency_samples
            return

    def _next(self) -> pb.StreamResponse | None:
        """The next response; None when the stream just moved to another replica."""
        try:
            return next(self._call)
        except StopIteration:
            code, details = "UNAVAILABLE", "the stream ended"
        except grpc.RpcError as exc:
            code, details = exc.code().name, exc.details()
        if self._reopen and not self._closed and code in MOVABLE:
            self._move(code)
            return None
        raise self._error(code, details)

    def _move(self, reason: str) -> None:
        """Reopens on another replica and sends the unanswered blocks again."""
        start = time.perf_counter()
        with self._lock:
            old = self.ready.replica
            self._requests.put(None)
            self._call.cancel()
            self._open()
            for _, request in self._pending:
                self._requests.put(request)
            move = Move(reason, old, self.ready.replica, time.perf_counter() - start,
                        len(self._pending))
            self.moves.append(move)
        if self._on_move is not None:
            self._on_move(move)

    def send(self, block: np.ndarray) -> int:
        """Queues one block (`[B]` or `[B, C]`, float32); returns its seq."""
        samples = np.asarray(block, dtype="<f4").reshape(self._block, self._channels)
        with self._lock:
            seq = self._seq
            self._seq += 1
            request = pb.StreamRequest(audio=pb.AudioChunk(seq=seq, pcm=samples.tobytes()))
            self._pending.append((seq, request))
            self._requests.put(request)
        return seq

    def receive(self) -> tuple[int, np.ndarray]:
        """Waits for the next dreamed block; returns (seq, `[B]` or `[B, C]`)."""
        while True:
            response = self._next()
            if response is None:
                continue  # moved: the unanswered blocks are answered by the new replica
            kind = response.WhichOneof("msg")
            if kind == "audio":
                seq = response.audio.seq
                with self._lock:
                    while self._pending and self._pending[0][0] <= seq:
                        self._pending.popleft()
                out = np.frombuffer(response.audio.pcm, dtype="<f4").reshape(-1, self._channels)
                return seq, (out[:, 0] if self._channels == 1 else out).copy()
            if kind == "stats":
                self.stats.append(response.stats)
            elif kind == "warning":
                self.warnings.append(response.warning)
                if response.warning.code == "draining" and self._reopen and not self._closed:
                    self._move("draining")
            elif kind == "ready":  # after a model change
                self.ready = response.ready
                self.latency = response.ready.latency_samples

    def control(self, *, model: str = "", layers: Iterable = (), mode: str = "",
                reset: bool = False, target=None, **params) -> None:
        """Changes parameters from the next block on (any DreamParams field, a target)."""
        msg = pb.Control(params=dream_params(model, layers, params), mode=mode, reset=reset)
        if target is not None:
            msg.target.CopyFrom(target_message(target))
        with self._lock:
            self._fold(msg)
            self._requests.put(pb.StreamRequest(control=msg))

    def _fold(self, control: pb.Control) -> None:
        """Keeps the config a reopened stream starts with up to date with a control."""
        if control.params.layers:
            del self._config.params.layers[:]
        self._config.params.MergeFrom(control.params)
        if control.mode:
            self._config.mode = control.mode
        if control.HasField("target"):
            self._config.target.CopyFrom(control.target)

    def reset(self) -> None:
        """Clears the server's state for this stream (context, dreamed loop)."""
        with self._lock:
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
        # The sender reports each block sent, then None at the end or the exception
        # that stopped it: the caller waits on that, never on a flag it polls.
        sent: queue.Queue = queue.Queue()

        def sender():
            try:
                start = time.perf_counter()
                for i, block in enumerate(blocks):
                    if realtime:
                        delay = start + i * self._block / rate - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                    else:
                        room.acquire()
                    self.send(block)
                    sent.put(True)
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller
                sent.put(exc)
            else:
                sent.put(None)

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        while (item := sent.get()) is True:
            yield self.receive()[1]
            room.release()
        thread.join()
        if item is not None:
            raise item

    def close(self) -> None:
        """Ends the stream; blocks not yet received are dropped."""
        with self._lock:
            self._closed = True
            self._requests.put(None)
            self._call.cancel()

    def __enter__(self) -> "DreamStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
