"""The client's one error: what the server (or the in-process engine) refused or failed."""

from __future__ import annotations


class ServerError(Exception):
    """A call the server refused or failed. `code` is the gRPC status name."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
