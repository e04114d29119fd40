"""Shared fixtures: resident models, a real server on a free port, sounds."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch

from audiodream import Client
from sounds import tone
from audiodream_server.models.registry import default_registry
from audiodream_server.service.config import ServerConfig
from audiodream_server.service.server import create_server

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def models():
    """The default registry's models, loaded once on the CPU."""
    return default_registry().load(torch.device("cpu"))


@pytest.fixture(scope="session")
def default_model(models):
    return models.get()


def start_server(models, **overrides):
    """Starts a real server on 127.0.0.1:<free port>; returns (server, address).

    `server.services` gives the tests the servicers behind it.
    """
    # Admission by measured real-time capacity is off unless a test is about it:
    # on a shared machine the load, not the test, would decide who gets in.
    overrides.setdefault("stream_capacity", 0.0)
    config = ServerConfig(port=0, **overrides)
    server, port, services = create_server(config, models)
    server.services = services
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def server_address(models):
    """Address of a real gRPC server shared by the session (max audio 40 s)."""
    server, address = start_server(models, max_seconds=40.0, max_active=2)
    yield address
    server.stop(None)


@pytest.fixture()
def client(server_address):
    with Client(server_address) as c:
        yield c


@pytest.fixture()
def make_tone():
    return tone


def serve_shipped(*names: str):
    """A real server holding these shipped, trained models; yields its address."""
    from audiodream_server.models.catalog import build_registry

    models = build_registry(pretrained=False, untrained_models=False).load(
        torch.device("cpu"), list(names))
    server, address = start_server(models, max_active=1)
    yield address
    server.stop(None)


@pytest.fixture(scope="module")
def shipped_address():
    """A real server holding the shipped, trained instruments-m2 (plots and the atlas)."""
    yield from serve_shipped("instruments-m2")
