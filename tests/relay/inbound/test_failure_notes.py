"""Failures visible where agents work: a private note in the conversation when a customer's
message cannot be relayed for good (once, not per attempt), and one when a retry brings it in."""

from __future__ import annotations

from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.api.helpers import auth
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import CloudBridge, make_cloud_bridge, text_body, wait_until

CUSTOMER = "16505551234"
MESSAGES_PATH = r"/conversations/\d+/messages$"


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, worker: Worker
) -> CloudBridge:
    return make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=False
    )


def _call(bridge: CloudBridge, method: str, route: str, **kwargs: Any) -> dict[str, Any]:
    client: TestClient = bridge.client
    path = f"/api/chatwoot/{route}/{bridge.instance}"
    response = client.request(method, path, headers=auth(bridge.account_token), **kwargs)
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_refused_message_leaves_one_note_and_its_replay_another(bridge: CloudBridge) -> None:
    post = bridge.post(text_body(CUSTOMER, "wamid.first", "hello"))
    assert post.status_code == 200, post.text
    bridge.wait_for_events("delivered", 1)
    bridge.chatwoot.fail_next("POST", MESSAGES_PATH, 422, body={"error": "Content is too long"})
    post = bridge.post(text_body(CUSTOMER, "wamid.refused", "a very long text"))
    assert post.status_code == 200, post.text
    bridge.wait_for_events("failed", 1)
    # the failure is recorded first, then the note is posted: wait for it
    wait_until(lambda: len(bridge.notes()) == 1, what="the failure note")
    [note] = bridge.notes()
    assert note["private"] is True
    assert note["conversation_id"] == bridge.messages()[0]["conversation_id"]
    assert "a text message" in note["content"]
    assert "Content is too long" in note["content"]
    assert "a very long text" not in note["content"]  # what arrived, never its content

    [failed] = _call(bridge, "GET", "failed")["failed"]
    _call(bridge, "POST", "retry", json={"ids": [failed["id"]]})
    bridge.wait_for_events("delivered", 2)
    wait_until(lambda: len(bridge.notes()) == 2, what="the recovery note")
    first, recovered = bridge.notes()
    assert first == note  # the failure note is not repeated
    assert recovered["content"].startswith("✅ Recovered: a text message")
    assert [m["content"] for m in bridge.messages()] == ["hello", "a very long text"]


def test_no_note_without_a_conversation(bridge: CloudBridge) -> None:
    # the contact itself is refused: there is no conversation to write in
    bridge.chatwoot.fail_next("POST", r"/contacts$", 422, body={"message": "Invalid"}, times=1)
    bridge.chatwoot.fail_next("POST", r"/contact_inboxes/filter$", 422, body={"error": "x"})
    post = bridge.post(text_body(CUSTOMER, "wamid.nocontact", "hi"))
    assert post.status_code == 200, post.text
    bridge.wait_for_events("failed", 1)
    assert bridge.notes() == []
