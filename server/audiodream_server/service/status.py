"""The one place where exceptions become gRPC status codes (SPEC §4.3).

Deliberate errors carry their status in their type. Anything else is a bug:
it is logged with its traceback and answered INTERNAL, and the server goes on.
"""

from __future__ import annotations

import functools
import logging

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
}


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for kind, code in CODES.items():
        if isinstance(exc, kind):
            return code, str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "out of GPU memory; send shorter audio"
    if isinstance(exc, MemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory; send shorter audio"
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the server log"


def _abort(context: grpc.ServicerContext, exc: Exception, method: str):
    if not context.is_active():  # the caller left; nobody to tell
        log.info("%s: caller gone (%s)", method, type(exc).__name__)
        return
    code, message = status_of(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("%s failed", method)
    else:
        log.info("%s: %s: %s", method, code.name, message)
    context.abort(code, message)


def unary(method):
    """Wraps a unary handler so every exception leaves as a proper status."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as UNKNOWN
            _abort(context, exc, method.__name__)

    return wrapper


def streaming(method):
    """Like `unary`, for handlers that are generators."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            yield from method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - see `unary`
            _abort(context, exc, method.__name__)

    return wrapper
