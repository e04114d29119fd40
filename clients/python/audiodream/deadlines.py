"""Default deadlines and addresses: what a client assumes when the caller says nothing.

A call without a deadline waits forever on a server that hangs; a deadline too
short cancels honest work. Listing calls are cheap (a lazily loaded model may
take a few seconds the first time), so they get a fixed deadline. A dream's
work grows with what it is asked to do, so its deadline does too:

    deadline = DREAM_BASE_SECONDS
               + DREAM_SECONDS_PER_UNIT * seconds * channels * iterations * octaves

At the rates measured in the README (a few ms of compute per second of audio
per iteration on 2 CPU cores) that leaves a margin of about 10x for a loaded
machine and a queue. Streams are live: they get no deadline.

>>> with_default_port("localhost")
'localhost:50051'
>>> with_default_port("[::1]"), with_default_port("::1"), with_default_port("gpu-box:6000")
('[::1]:50051', '[::1]:50051', 'gpu-box:6000')
"""

from __future__ import annotations

import io

DEFAULT_PORT = 50051
LIST_SECONDS = 30.0
DREAM_BASE_SECONDS = 300.0
DREAM_SECONDS_PER_UNIT = 0.05
DEFAULT_ITERATIONS = 20  # the shipped models' default, when the request leaves it unset


def with_default_port(address: str, port: int = DEFAULT_PORT) -> str:
    """"host" -> "host:PORT" (gRPC would otherwise dial 443); other forms pass unchanged."""
    if "://" in address or address.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return address
    if address.startswith("["):  # [v6] or [v6]:port
        return address if "]:" in address else f"{address}:{port}"
    if address.count(":") > 1:  # a bare IPv6 address
        return f"[{address}]:{port}"
    return address if ":" in address else f"{address}:{port}"


def dream_deadline(request) -> float:
    """Seconds a DreamRequest may take: see the module docstring."""
    seconds, channels = _duration(request.audio)
    params = request.params
    iterations = params.iterations if params.HasField("iterations") else DEFAULT_ITERATIONS
    octaves = params.octaves if params.HasField("octaves") else 1
    work = seconds * channels * max(iterations, 1) * max(octaves, 1)
    return DREAM_BASE_SECONDS + DREAM_SECONDS_PER_UNIT * work


def _duration(audio) -> tuple[float, int]:
    """(seconds, channels) of an Audio message; (0, 1) when its header cannot be read."""
    if audio.WhichOneof("data") == "pcm":
        if not (audio.sample_rate and audio.channels):
            return 0.0, 1
        return len(audio.pcm) / (4 * audio.channels * audio.sample_rate), audio.channels
    try:
        import soundfile as sf

        info = sf.info(io.BytesIO(audio.encoded))
    except Exception:  # noqa: BLE001 - the server will say what is wrong with the file
        return 0.0, 1
    return info.frames / max(info.samplerate, 1), info.channels
