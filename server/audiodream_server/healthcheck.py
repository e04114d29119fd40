"""Exit 0 if the local server answers its gRPC health check as SERVING, else 1.

Used by container health checks: `python -m audiodream_server.healthcheck [HOST:PORT]`.
It reads the server's own settings from the environment, so the same command
works whether the server speaks plaintext or TLS:

- AUDIODREAM_PORT: the port to ask on 127.0.0.1 [50051];
- AUDIODREAM_TLS_CERT: when set, the server speaks TLS only, so the check does
  too, trusting AUDIODREAM_HEALTHCHECK_CA if set, else the server's certificate
  itself (right for a self-signed one; give the CA for a certificate a CA signed);
- AUDIODREAM_HEALTHCHECK_NAME: the name the certificate is checked against
  [localhost] (the check dials 127.0.0.1, which a certificate rarely names).

The health service needs no token, so none is sent.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def channel(address: str, environ=os.environ) -> grpc.Channel:
    """A channel to `address`, with TLS when the server's environment says it serves TLS."""
    cert = environ.get("AUDIODREAM_TLS_CERT", "")
    if not cert:
        return grpc.insecure_channel(address)
    with open(environ.get("AUDIODREAM_HEALTHCHECK_CA") or cert, "rb") as f:
        roots = f.read()
    name = environ.get("AUDIODREAM_HEALTHCHECK_NAME", "localhost")
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=roots),
                               options=[("grpc.ssl_target_name_override", name)])


def main(argv: list[str]) -> int:
    address = argv[0] if argv else f"127.0.0.1:{os.environ.get('AUDIODREAM_PORT', '50051')}"
    try:
        with channel(address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service="audiodream.v1.DreamService"), timeout=5)
    except OSError as exc:
        print(f"unhealthy: cannot read the certificate: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    print("serving" if serving else "not serving")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
