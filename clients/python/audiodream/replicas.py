"""Several replicas, one service: client-side balancing and retries.

An address names one server ("host:port"), several ("host1:port,host2:port",
every one a replica of the same service), or a DNS name that resolves to many
("dns:///audiodream.studio.svc:50051", e.g. a Kubernetes headless Service).
The channel then keeps a connection to every replica and balances calls over
them round-robin; a replica that goes away drops out of the rotation until
it answers again.

What is retried on another replica, and why it is safe (gRPC retry policy, the
service config below): a call that fails UNAVAILABLE (the replica is gone,
unreachable or shutting down) before any reply arrived, for

    ListModels, ListLayers,  read-only
    Classify
    Dream, DreamProgress     every dream is seeded (seed 0 unless given), so the
                             same request gives the same sound on any replica;
                             a dream changes nothing on the server

DreamProgress streams its progress, so gRPC cannot retry it once the first
event arrived; the client retries it itself (`Client._execute`), from the start,
and unary calls too when gRPC's attempts all met replicas going away.
StreamDream is never retried: a stream has state (its context, its loop) on one
replica. The client can reopen it elsewhere with the same settings
(`Client.stream(reopen=True)`, see `streaming.py`).
"""

from __future__ import annotations

import ipaddress
import json
import socket

SERVICE = "audiodream.v1.DreamService"
SAFE_TO_RETRY = ("ListModels", "ListLayers", "Classify", "Dream", "DreamProgress")
MAX_ATTEMPTS = 5  # gRPC caps a retry policy's attempts at 5


def attempts_for(replicas: int) -> int:
    """Attempts per call: one more than the replicas, so each gets a turn, at most 5."""
    return max(2, min(MAX_ATTEMPTS, replicas + 1))


def service_config(replicas: int) -> str:
    """The channel's service config: round-robin, and retries of the safe calls.

    >>> config = json.loads(service_config(3))
    >>> config["loadBalancingConfig"], config["methodConfig"][0]["retryPolicy"]["maxAttempts"]
    ([{'round_robin': {}}], 4)
    """
    return json.dumps({
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{
            "name": [{"service": SERVICE, "method": m} for m in SAFE_TO_RETRY],
            "retryPolicy": {
                "maxAttempts": attempts_for(replicas),
                "initialBackoff": "0.05s", "maxBackoff": "1s", "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
    })


def split(address: str) -> list[str]:
    """The "host:port" targets in a comma-separated address.

    >>> split(" 127.0.0.1:5001, [::1]:5002 ")
    ['127.0.0.1:5001', '[::1]:5002']
    """
    targets = [t.strip() for t in address.split(",") if t.strip()]
    if not targets:
        raise ValueError("no server address given; use HOST:PORT[,HOST:PORT...]")
    return targets


def channel_target(address: str) -> tuple[str, int]:
    """A gRPC channel target for `address`, and how many replicas it names (at least).

    One "host:port" or a "scheme:..." URI (dns:///, ipv4:, unix:) is used as
    given; several targets become one `ipv4:`/`ipv6:` list, host names resolved
    now (each name's first address).

    >>> channel_target("127.0.0.1:5001,127.0.0.1:5002")
    ('ipv4:127.0.0.1:5001,127.0.0.1:5002', 2)
    >>> channel_target("dns:///dream.local:50051")
    ('dns:///dream.local:50051', 1)
    """
    targets = split(address)
    if len(targets) == 1:
        return targets[0], 1
    if any(_has_scheme(t) for t in targets):
        raise ValueError(f"{address!r}: a list of servers is HOST:PORT,HOST:PORT...; "
                         "give a dns:/// name alone")
    resolved = [_resolve(t) for t in targets]
    for family, scheme in ((socket.AF_INET, "ipv4"), (socket.AF_INET6, "ipv6")):
        if all(family in r for r in resolved):
            return scheme + ":" + ",".join(r[family] for r in resolved), len(targets)
    raise ValueError(f"{address!r}: the servers must all have IPv4 or all IPv6 addresses")


def _has_scheme(target: str) -> bool:
    head = target.split(":", 1)[0]
    return target.count(":") >= 1 and head in ("dns", "ipv4", "ipv6", "unix", "unix-abstract",
                                                "vsock")


def _resolve(target: str) -> dict[int, str]:
    """"host:port" -> {family: "ip:port"} for the families the host has."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{target!r} is not HOST:PORT")
    host = host.strip("[]")
    infos: list[tuple[int, str]]
    try:
        literal = ipaddress.ip_address(host)
        infos = [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, str(literal))]
    except ValueError:
        try:
            found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ValueError(f"cannot resolve {host!r}: {exc.strerror}") from None
        infos = [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in found]
    out: dict[int, str] = {}
    for family, ip in infos:
        if family not in out:
            out[family] = f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"
    return out
