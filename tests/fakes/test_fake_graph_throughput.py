"""The fake Graph's throughput limit (Meta's 130429), over real HTTP: per number, sliding one-
second window, read receipts counted, refusals not counted; and any chosen code on a chosen
request, in Meta's envelope."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.graph import FakeGraph, graph_error

PHONE_ID = "106540352242922"
OTHER_PHONE_ID = "106540352242999"
TOKEN = "EAAG-throughput-1"
OTHER_TOKEN = "EAAG-throughput-2"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(server: FakeGraph) -> FakeGraph:
    server.reset()
    server.add_phone_number(PHONE_ID, TOKEN)
    server.add_phone_number(OTHER_PHONE_ID, OTHER_TOKEN)
    return server


def text(to: str = "16505551234") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": "hi"},
    }


_client = httpx.Client(timeout=5)


def post(graph: FakeGraph, body: dict[str, Any], number: str = PHONE_ID) -> httpx.Response:
    token = TOKEN if number == PHONE_ID else OTHER_TOKEN
    return _client.post(
        f"{graph.base_url}/{number}/messages",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_over_the_limit_in_a_sliding_second_is_130429(graph: FakeGraph) -> None:
    graph.limit_throughput(PHONE_ID, 3)
    started = time.monotonic()
    answers = [post(graph, text()) for _ in range(5)]
    assert time.monotonic() - started < 0.9  # all five inside one second
    assert [a.status_code for a in answers] == [200, 200, 200, 400, 400]
    error = answers[3].json()["error"]
    assert error["code"] == 130429 and error["type"] == "OAuthException"
    assert "throughput" in error["error_data"]["details"]
    assert len(graph.sent) == 3 and len(graph.throttled) == 2
    assert post(graph, text(), OTHER_PHONE_ID).status_code == 200  # per number

    time.sleep(max(0.0, graph.message_times[PHONE_ID][0] + 1.0 - time.monotonic()) + 0.02)
    assert post(graph, text()).status_code == 200  # the oldest left the window
    assert len(graph.message_times[PHONE_ID]) == 4  # refusals are not counted


def test_read_receipts_count_as_messages(graph: FakeGraph) -> None:
    graph.limit_throughput(PHONE_ID, 2)
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}
    assert post(graph, read).status_code == 200
    assert post(graph, text()).status_code == 200
    assert post(graph, read).status_code == 400


def test_no_limit_unless_asked(graph: FakeGraph) -> None:
    assert all(post(graph, text()).status_code == 200 for _ in range(20))
    assert graph.throttled == [] and len(graph.message_times[PHONE_ID]) == 20


@pytest.mark.parametrize("code", [131049, 131062, 132001, 131031, 368])
def test_any_code_for_a_chosen_request(graph: FakeGraph, code: int) -> None:
    graph.fail_recipient("16505550000", 400, graph_error(code, f"(#{code}) Title {code}"))
    assert post(graph, text()).status_code == 200
    refused = post(graph, text("16505550000"))
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == code
    assert post(graph, text("16505550000")).status_code == 200  # once
