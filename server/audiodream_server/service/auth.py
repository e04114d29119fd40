"""Optional token authentication: a server interceptor.

With a token configured, every DreamService call must carry the metadata
`authorization: Bearer <token>`; others are refused with UNAUTHENTICATED before
any work. Health checks and reflection stay open so load balancers and tools
can probe the server. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac

import grpc

PROTECTED_PREFIX = "/audiodream.v1.DreamService/"


class TokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str):
        if not token:
            raise ValueError("an empty token would let everyone in")
        self._expected = f"Bearer {token}".encode()

        def refuse(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "missing or wrong token: send metadata 'authorization: Bearer <token>'")

        self._refusals = {
            "unary_unary": grpc.unary_unary_rpc_method_handler(refuse),
            "unary_stream": grpc.unary_stream_rpc_method_handler(refuse),
            "stream_stream": grpc.stream_stream_rpc_method_handler(refuse),
        }

    def intercept_service(self, continuation, handler_call_details):
        if not handler_call_details.method.startswith(PROTECTED_PREFIX):
            return continuation(handler_call_details)
        given = dict(handler_call_details.invocation_metadata).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kind = ("stream" if handler.request_streaming else "unary") + "_" + \
            ("stream" if handler.response_streaming else "unary")
        return self._refusals[kind]
