"""Fixtures shared by the relay tests that talk to a fake Graph API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.graph import FakeGraph
from tests.relay.bridge import CLOUD_ACCESS_TOKEN, PHONE_NUMBER_ID


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    """The fake Graph API, emptied for each test, knowing the bridge's phone number; every
    request it received must have matched its description of the API."""
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, CLOUD_ACCESS_TOKEN)
    yield graph_server
    assert graph_server.schema_errors == []
