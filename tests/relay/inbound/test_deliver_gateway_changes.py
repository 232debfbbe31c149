"""Gateway edits, revocations, removed reactions and chat-status ticks, end to end.

Each used to be acknowledged and dropped (or, for the chat-status spelling, answered 400); now
each reaches Chatwoot, quoting the message it changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway
from tests.relay.bridge import GatewayBridge, make_gateway_bridge, wait_until


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def bridge(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    gateway_server: FakeGateway,
    worker: Worker,
) -> GatewayBridge:
    gateway_server.reset()
    gateway_server.add_instance("vendas", "gw-token")
    return make_gateway_bridge(client, account_token, chatwoot, gateway_url=gateway_server.base_url)


def exchange(bridge: GatewayBridge, data: dict[str, Any]) -> None:
    response = bridge.post_event("message.exchange", data, path_event="message.exchange")
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}


def test_edit_revoke_and_removed_reaction_quote_the_original(bridge: GatewayBridge) -> None:
    exchange(bridge, samples.text_data(text="texto errado", message_id="3EB0ORIG"))
    exchange(bridge, samples.edit_data(text="texto certo", message_id="3EB0ORIG"))
    exchange(bridge, samples.revoke_data(deleted="3EB0ORIG", message_id="3EB0DEL"))
    exchange(bridge, samples.reaction_removed_data(target="3EB0ORIG", message_id="3EB0REACT"))

    messages = bridge.wait_for_messages(4)
    bridge.wait_for_events("delivered", 4)

    original, edit, revoke, reaction = messages
    assert original["content"] == "texto errado"
    assert "texto certo" in edit["content"]
    assert revoke["content"] and reaction["content"]
    for change in (edit, revoke, reaction):
        assert change["content_attributes"]["in_reply_to_external_id"] == "3EB0ORIG"
        assert change["conversation_id"] == original["conversation_id"]
    assert edit["source_id"].startswith("3EB0ORIG-edit-")
    assert (revoke["source_id"], reaction["source_id"]) == ("3EB0DEL", "3EB0REACT")


def test_a_retried_edit_is_relayed_once(bridge: GatewayBridge) -> None:
    exchange(bridge, samples.text_data(text="a", message_id="3EB0ORIG2"))
    exchange(bridge, samples.edit_data(text="b", message_id="3EB0ORIG2"))
    retry = bridge.post_event(
        "message.exchange", samples.edit_data(text="b", message_id="3EB0ORIG2")
    )
    assert retry.status_code == 200 and retry.json()["stored"] == 0

    bridge.wait_for_events("delivered", 2)
    assert len(bridge.messages()) == 2


def test_chat_status_records_tick_the_message(bridge: GatewayBridge) -> None:
    """RyzeAPI's chat-status spelling (``message_id``/``status``/``status_code``/``chat_jid``),
    several records in one body: each message gets its tick."""
    exchange(bridge, samples.outgoing_text_data(text="um", message_id="3EB0OUTA"))
    exchange(bridge, samples.outgoing_text_data(text="dois", message_id="3EB0OUTB"))
    first, second = bridge.wait_for_messages(2)

    records = [
        samples.chat_status_record("3EB0OUTA", "READ", 4),
        samples.chat_status_record("3EB0OUTB", "DELIVERED", 2),
    ]
    body = {"statuses": records}
    response = bridge.post_event("message.status", body, path_event="message.status")

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "stored": 2}
    wait_until(lambda: bridge.chatwoot.messages[first["id"]]["status"] == "read")
    wait_until(lambda: bridge.chatwoot.messages[second["id"]]["status"] == "delivered")
