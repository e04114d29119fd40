"""Errors the library raises on purpose.

Each class names the gRPC status it becomes; the mapping itself lives in one
place, `audiodream_server.service.status`. Messages say what was wrong and what
is allowed, because they reach the musician unchanged.
"""


class DreamError(Exception):
    """Base of every deliberate error."""


class InvalidArgument(DreamError):
    """Malformed input: undecodable audio, NaN, unknown option names."""


class OutOfRange(DreamError):
    """A well-formed value outside its allowed range."""


class NotFound(DreamError):
    """Unknown model, layer or class."""


class ResourceExhausted(DreamError):
    """Too long, too many requests at once, or out of memory."""


class Busy(ResourceExhausted):
    """Every slot of a kind is taken (`reason`: "queue_full", "streams_full"); try later."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Unavailable(DreamError):
    """This server is shutting down; the same call on another replica will be served."""

    reason = "draining"


class FailedPrecondition(DreamError):
    """The server is not in a state to do this (e.g. a model failed to load)."""


class Cancelled(DreamError):
    """The caller went away; the work was stopped."""


class DeadlineExceeded(DreamError):
    """The caller did not send what was due in time (e.g. a stream's config)."""


def shorten(text: object, limit: int = 64) -> str:
    """`text` cut to `limit` characters for echoing back in a message."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} characters)"
