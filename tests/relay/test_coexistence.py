"""Coexistence (the WhatsApp Business app and the Cloud API on one number), end to end: echoes of
what a colleague typed in the app land as outgoing messages and never go back to WhatsApp nor
twice; customers' edits and revokes quote the original; a removed reaction quotes its message."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import (
    CloudBridge,
    make_cloud_bridge,
    text_body,
    wait_until,
)
from tests.relay.cloud_2026 import body_2026, value_of
from tests.relay.outbound_bridge import AgentSide

PABLO = "16505550199"
SHEENA = "16505551234"
ORIGINAL = "wamid.HBgLMTY1MDU1NTAxOTkVAgASGBRPUklHSU5BTAVAgASGBQzRUIwQTc1RjVBNkM4QjQyQzE3NwA="
REACTED = "wamid.HBgLQlVTSU5FU1NNU0cxNTU1MDc4Mzg4MQVAgASGBQzRUIwQTc1RjVBNkM4QjQyQzE3NwA="


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, worker: Worker
) -> CloudBridge:
    return make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=False
    )


def agent_for(bridge: CloudBridge) -> AgentSide:
    [conversation] = bridge.chatwoot.conversations.values()
    account_id = int(conversation["account_id"])
    agent_token = bridge.chatwoot.add_user("Jane Agent", {account_id: "agent"})
    return AgentSide(bridge, account_id, agent_token, int(conversation["display_id"]))


def echo(message_id: str, text: str, to: str = PABLO) -> dict[str, Any]:
    body = copy.deepcopy(body_2026("smb_message_echoes_text.json"))
    entry = value_of(body)["message_echoes"][0]
    entry.update({"id": message_id, "to": to, "text": {"body": text}})
    return body


def message_sends(graph: FakeGraph) -> list[Any]:
    return [c for c in graph.calls if c.method == "POST" and c.path.endswith("/messages")]


def test_echo_lands_as_outgoing_and_is_never_sent_back(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    bridge.post(text_body(PABLO, "wamid.pablo.1", "Is my order ready?", name="Pablo Morales"))
    bridge.wait_for_events("delivered", 1)
    agent = agent_for(bridge)

    assert bridge.post(body_2026("smb_message_echoes_text.json")).json()["stored"] == 1

    first, posted = bridge.wait_for_messages(2)
    bridge.wait_for_events("delivered", 2)
    assert (posted["content"], posted["message_type"]) == (
        "Your order is ready for pickup after 3pm.",
        "outgoing",
    )
    assert posted["conversation_id"] == first["conversation_id"]
    assert posted["source_id"].startswith("wamid.")
    # Chatwoot tells the inbox webhook about the message we posted: it is not an agent reply
    answer = agent.post(hooks.message_created_body(bridge.chatwoot, int(posted["id"])))
    assert answer.status_code == 200
    assert answer.json()["stored"] == 0
    assert "has a source_id" in answer.json()["ignored"]
    time.sleep(0.3)
    assert message_sends(graph) == []
    assert len(bridge.chatwoot.contacts) == 1


def test_echo_of_an_agent_reply_is_not_posted_twice(bridge: CloudBridge, graph: FakeGraph) -> None:
    bridge.post(text_body(PABLO, "wamid.pablo.1", "Hello", name="Pablo Morales"))
    bridge.wait_for_events("delivered", 1)
    agent = agent_for(bridge)
    reply_id = agent.reply("Hi Pablo, how can I help?")
    agent.deliver_webhook(reply_id)
    agent.wait_status(reply_id, "sent")
    [sent] = graph.sent

    assert bridge.post(echo(sent.message_id, "Hi Pablo, how can I help?")).json()["stored"] == 1

    bridge.wait_for_events("delivered", 2)
    time.sleep(0.2)
    contents = [m["content"] for m in bridge.messages()]
    assert contents == ["Hello", "Hi Pablo, how can I help?"]
    assert len(message_sends(graph)) == 1


def test_edit_and_revoke_quote_the_original_message(bridge: CloudBridge) -> None:
    bridge.post(text_body(PABLO, ORIGINAL, "Can I pick it up at 3pm?", name="Pablo Morales"))
    bridge.wait_for_events("delivered", 1)

    bridge.post(body_2026("coexistence_edit.json"))
    bridge.post(body_2026("coexistence_revoke.json"))

    original, edited, revoked = bridge.wait_for_messages(3)
    bridge.wait_for_events("delivered", 3)
    assert edited["content"] == "✏️ Edited: Can I pick it up at 4pm instead?"
    assert revoked["content"] == "🗑️ Deleted this message"
    for message in (edited, revoked):
        assert message["content_attributes"]["in_reply_to_external_id"] == ORIGINAL
        assert message["conversation_id"] == original["conversation_id"]
    assert original["source_id"] == ORIGINAL
    assert original["content"] == "Can I pick it up at 3pm?"  # the original stays as it was


@pytest.mark.parametrize("name", ["reaction_removed.json", "reaction_removed_no_emoji.json"])
def test_reaction_removal_quotes_the_reacted_message(bridge: CloudBridge, name: str) -> None:
    bridge.post(text_body(SHEENA, REACTED, "Your order shipped", name="Sheena Nelson"))
    bridge.wait_for_events("delivered", 1)

    bridge.post(body_2026(name))

    reacted, removal = bridge.wait_for_messages(2)
    assert removal["content"] == "Removed a reaction"
    assert removal["content_attributes"]["in_reply_to_external_id"] == REACTED
    assert reacted["source_id"] == REACTED
    wait_until(lambda: len(bridge.chatwoot.conversations) == 1, what="one conversation")
