"""Replaying failed events for real: webhooks through the TestClient, a Dramatiq worker on real
Redis, the fake Chatwoot and the fake Graph API as HTTP servers with injected faults.

A replayed event keeps its chat's order and is never relayed twice: an incoming message that
an earlier attempt got into Chatwoot is found there, not posted again; the parts of a reply
already sent to WhatsApp are not sent again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.api.helpers import auth
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import (
    CLOUD_ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    CloudBridge,
    make_cloud_bridge,
    text_body,
    wait_until,
)
from tests.relay.outbound_bridge import AgentSide, open_chat

CUSTOMER = "16505551234"
MESSAGES_PATH = r"/conversations/\d+/messages$"
PHOTO_1 = b"\x89PNG\r\n\x1a\n" + b"first-photo" * 40
PHOTO_2 = b"\x89PNG\r\n\x1a\n" + b"second-photo" * 40


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, CLOUD_ACCESS_TOKEN)
    yield graph_server
    assert graph_server.schema_errors == []


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, worker: Worker
) -> CloudBridge:
    return make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=False
    )


def call(bridge: CloudBridge, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
    response = bridge.client.request(
        method,
        f"/api/chatwoot/{route}/{bridge.instance}",
        headers=auth(bridge.account_token),
        **kwargs,
    )
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


def post_text(bridge: CloudBridge, message_id: str, text: str) -> None:
    response = bridge.post(text_body(CUSTOMER, message_id, text))
    assert response.status_code == 200, response.text


def message_calls(chatwoot: FakeChatwoot, method: str) -> list[int]:
    """Statuses of the fake's answers to ``method .../messages``, in order."""
    return [
        c.status for c in chatwoot.calls if c.method == method and re.search(MESSAGES_PATH, c.path)
    ]


def by_source(bridge: CloudBridge, source_id: str) -> list[dict[str, Any]]:
    return [m for m in bridge.messages() if m["source_id"] == source_id]


def test_replayed_inbound_event_is_delivered_once_in_its_chats_order(
    bridge: CloudBridge,
) -> None:
    bridge.chatwoot.fail_next("POST", MESSAGES_PATH, 422, body={"error": "Content is too long"})
    post_text(bridge, "wamid.refused", "refused once")
    bridge.wait_for_events("failed", 1)
    [failed] = call(bridge, "GET", "failed")["failed"]
    assert failed["chat"] == f"+{CUSTOMER}"
    assert "422" in failed["reason"] and "Content is too long" in failed["reason"]
    assert call(bridge, "POST", "pause")["status"] == "paused"
    post_text(bridge, "wamid.next1", "after it, 1")
    post_text(bridge, "wamid.next2", "after it, 2")

    answer = call(bridge, "POST", "retry", json={"ids": [failed["id"]]})
    assert answer == {"instance": bridge.instance, "retrying": 1, "skipped": []}
    listed = call(bridge, "GET", "list")["relay"]
    assert (listed["pending"], listed["failed"]) == (3, 0)
    assert listed["oldest_pending_at"] is not None
    assert bridge.messages() == []  # paused: nothing is delivered yet
    call(bridge, "POST", "resume")

    bridge.wait_for_events("delivered", 3)
    assert [m["content"] for m in bridge.messages()] == [
        "refused once",
        "after it, 1",
        "after it, 2",
    ]
    # the refused post, the failure note, the two later messages, the replay, its recovery note
    assert message_calls(bridge.chatwoot, "POST") == [422, 200, 200, 200, 200, 200]
    assert message_calls(bridge.chatwoot, "GET") == [200]  # the replay looked first
    failure_note, recovery_note = bridge.notes()
    assert "Content is too long" in failure_note["content"]
    assert recovery_note["content"].startswith("✅ Recovered")
    assert call(bridge, "GET", "failed")["failed"] == []
    assert call(bridge, "GET", "list")["relay"]["oldest_pending_at"] is None
    replayed = bridge.events()[0]
    assert (replayed.status, replayed.last_error, replayed.attempts) == ("delivered", "", 2)


def test_replayed_event_an_earlier_attempt_got_into_chatwoot_is_not_posted_again(
    bridge: CloudBridge,
) -> None:
    # attempt 1: Chatwoot creates the message but answers after the client timed out (2 s);
    # attempt 2 looks for it first, and that lookup is refused for good: the event fails
    bridge.chatwoot.set_delay("POST", MESSAGES_PATH, 3.0, times=1)
    bridge.chatwoot.fail_next("GET", MESSAGES_PATH, 422, body={"error": "Unprocessable"})
    post_text(bridge, "wamid.arrived", "got there the first time")
    bridge.wait_for_events("failed", 1, timeout=20)
    assert len(by_source(bridge, "wamid.arrived")) == 1

    assert call(bridge, "POST", "retry", json={}) == {
        "instance": bridge.instance,
        "retrying": 1,
        "skipped": [],
    }

    bridge.wait_for_events("delivered", 1)
    assert len(by_source(bridge, "wamid.arrived")) == 1
    # the message once; then the failure note and, after the replay found it, the recovery note
    assert message_calls(bridge.chatwoot, "POST") == [200, 200, 200]
    assert len(bridge.notes()) == 2
    assert message_calls(bridge.chatwoot, "GET") == [422, 200]


def forget_blobs(chatwoot: FakeChatwoot, message_id: int, index: int) -> dict[str, Any]:
    """The file of one attachment is gone from Chatwoot's storage; returns what to restore."""
    attachment = chatwoot.messages[message_id]["attachments"][index]
    keys = [attachment["signed_id"], attachment["key"]]
    return {key: chatwoot.blobs.pop(key) for key in keys}


def sent_photos(graph: FakeGraph) -> list[bytes]:
    return [graph.media[s.body["image"]["id"]].data for s in list(graph.sent)]


@pytest.fixture
def agent(bridge: CloudBridge) -> AgentSide:
    return open_chat(bridge)


def test_replayed_reply_sends_only_the_parts_not_sent_yet(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply(
        "Front and back",
        attachments=[("front.png", PHOTO_1, "image/png"), ("back.png", PHOTO_2, "image/png")],
    )
    kept = forget_blobs(agent.chatwoot, message_id, 1)
    agent.deliver_webhook(message_id)
    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"].startswith("attachment unavailable")
    assert sent_photos(graph) == [PHOTO_1]
    [event] = call(agent.bridge, "GET", "failed", params={"direction": "outbound"})["failed"]
    assert (event["kind"], event["chat"]) == ("reply", f"+{CUSTOMER}")
    agent.chatwoot.blobs.update(kept)  # the file is back

    answer = call(agent.bridge, "POST", "retry", json={"ids": [event["id"]]})

    assert answer["retrying"] == 1
    agent.wait_status(message_id, "sent")
    assert sent_photos(graph) == [PHOTO_1, PHOTO_2]
    wait_until(
        lambda: (
            [(e.status, e.progress) for e in agent.bridge.events() if e.direction == "outbound"]
            == [("delivered", 2)]
        ),
        5,
        "the reply delivered with both parts",
    )
