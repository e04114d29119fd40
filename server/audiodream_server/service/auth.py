"""Optional token authentication: a server interceptor.

With a token configured, every DreamService and reflection call must carry the
metadata `authorization: Bearer <token>`; others are refused with
UNAUTHENTICATED before any work. Reflection describes the whole service, so it
is guarded too; health checks stay open so load balancers can probe the server.
Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac

import grpc

PROTECTED_PREFIXES = ("/audiodream.v1.DreamService/", "/grpc.reflection.")
REFUSAL = "missing or wrong token: send metadata 'authorization: Bearer <token>'"


async def _refuse(request, context):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)


async def _refuse_stream(request, context):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
    yield  # pragma: no cover - makes this an async generator


class TokenInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str, on_refusal=None):
        if not token:
            raise ValueError("an empty token would let everyone in")
        self._on_refusal = on_refusal  # called with "unauthenticated" (metrics)
        self._expected = f"Bearer {token}".encode()
        self._refusals = {
            (False, False): grpc.unary_unary_rpc_method_handler(_refuse),
            (False, True): grpc.unary_stream_rpc_method_handler(_refuse_stream),
            (True, False): grpc.stream_unary_rpc_method_handler(_refuse),
            (True, True): grpc.stream_stream_rpc_method_handler(_refuse_stream),
        }

    def allows(self, metadata) -> bool:
        given = ""
        for key, value in metadata or ():
            if key == "authorization":
                given = value if isinstance(value, str) else value.decode("latin-1")
        return hmac.compare_digest(given.encode("utf-8", "replace"), self._expected)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if not handler_call_details.method.startswith(PROTECTED_PREFIXES):
            return handler
        if handler is None or self.allows(handler_call_details.invocation_metadata):
            return handler
        # No request deserializer: the refusal never parses what was sent.
        if self._on_refusal is not None:
            self._on_refusal("unauthenticated")
        return self._refusals[(handler.request_streaming, handler.response_streaming)]
