"""Fixtures: one server for the whole run, a fresh client per test, unique key names."""

from __future__ import annotations

import itertools
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import brisk  # noqa: E402
from servers import Cluster, Server  # noqa: E402


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def cluster():
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture
def client(server):
    with brisk.Client("127.0.0.1", server.port) as c:
        yield c


_counter = itertools.count()


@pytest.fixture
def key(request):
    """key("name") -> a key unique to this test ("py:<test>:<n>:name")."""
    test = request.node.name

    def make(name: str = "k") -> str:
        return f"py:{test}:{next(_counter)}:{name}"

    return make
