"""The one place where exceptions become gRPC status codes (SPEC §4.3).

Deliberate errors carry their status in their type; allocation failures are
RESOURCE_EXHAUSTED. Anything else is a bug: it is logged with its traceback and
answered INTERNAL, and the server goes on. Messages that leave are cleaned:
no absolute paths, heap addresses or tracebacks, long words cut, length capped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re

import grpc
import torch

from .. import errors

log = logging.getLogger(__name__)

CODES = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}

MAX_MESSAGE = 1000  # characters; status details travel in a size-limited trailer
MAX_WORD = 80  # a longer run without spaces is a name or payload echoed back: cut it
_PATH = re.compile(r"(?<![\w.])(?:/[\w.+-]+){2,}/?")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_WORD = re.compile(r"\S{%d,}" % (MAX_WORD + 1))


class Malformed:
    """Stands in for a request whose bytes are not a valid protobuf message."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def error(self) -> errors.InvalidArgument:
        return errors.InvalidArgument(f"the request is not a valid {self.type_name} message "
                                      "(malformed protobuf bytes)")


def lenient(message_class):
    """A request deserializer that yields `Malformed` instead of raising (grpc says INTERNAL)."""

    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except Exception:  # noqa: BLE001 - any decode failure is the sender's
            return Malformed(message_class.DESCRIPTOR.name)

    return parse


def clean(message: str) -> str:
    """A message fit for a client: no paths, addresses or tracebacks; bounded length."""
    message = message.split("\nTraceback", 1)[0]
    message = _PATH.sub(lambda m: ".../" + m.group(0).rstrip("/").rsplit("/", 1)[-1], message)
    message = _ADDRESS.sub("0x...", message)
    message = _WORD.sub(lambda m: errors.shorten(m.group(0), MAX_WORD - 20), message)
    message = " ".join(message.split())
    return errors.shorten(message, MAX_MESSAGE)


def is_allocation_failure(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    # CPU allocation failures surface as RuntimeError from torch's allocator.
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "DefaultCPUAllocator" in text or "not enough memory" in text
        or "out of memory" in text)


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for kind, code in CODES.items():
        if isinstance(exc, kind):
            return code, clean(str(exc))
    if is_allocation_failure(exc):
        return (grpc.StatusCode.RESOURCE_EXHAUSTED,
                "out of memory for this request; send shorter audio, fewer channels, "
                "fewer octaves or a larger hop")
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log"


async def abort(context: grpc.aio.ServicerContext, exc: Exception, method: str,
                metrics=None):
    code, message = status_of(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.error("%s failed", method, exc_info=exc)
    else:
        log.info("%s: %s: %s", method, code.name, message)
        if metrics is not None and code is not grpc.StatusCode.CANCELLED:
            metrics.rejected(getattr(exc, "reason", code.name.lower()))
    await context.abort(code, message)


def _gone(method: str) -> None:
    log.info("%s: the caller left", method)


def unary(method):
    """Wraps an async unary-response handler so every exception leaves as a proper status."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            if isinstance(request, Malformed):
                raise request.error()
            return await method(self, request, context)
        except asyncio.CancelledError:
            _gone(method.__name__)
            raise
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as UNKNOWN
            await abort(context, exc, method.__name__, getattr(self, "metrics", None))

    return wrapper


def streaming(method):
    """Like `unary`, for handlers that are async generators."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            if isinstance(request, Malformed):
                raise request.error()
            async for item in method(self, request, context):
                yield item
        except asyncio.CancelledError:
            _gone(method.__name__)
            raise
        except Exception as exc:  # noqa: BLE001 - see `unary`
            await abort(context, exc, method.__name__, getattr(self, "metrics", None))

    return wrapper
