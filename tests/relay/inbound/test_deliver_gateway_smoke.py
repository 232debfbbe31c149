"""Gateway webhooks: authentication and one message end to end (kinds are covered elsewhere)."""

from __future__ import annotations

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.relay.bridge import GatewayBridge, make_gateway_bridge


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> GatewayBridge:
    return make_gateway_bridge(client, account_token, chatwoot)


def test_gateway_text_reaches_chatwoot_as_the_canonical_contact(bridge: GatewayBridge) -> None:
    data = samples.text_data(text="Olá")

    response = bridge.post_event("message.exchange", data, path_event="message.exchange")

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}
    [message] = bridge.wait_for_messages(1)
    assert message["content"] == "Olá"
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] == f"+{samples.CUSTOMER}"


def test_wrong_gateway_token_is_401_and_stores_nothing(bridge: GatewayBridge) -> None:
    bridge.gateway_token = "not-the-token"

    response = bridge.post_event("message.exchange", samples.text_data())

    assert response.status_code == 401
    assert bridge.events() == []


def test_path_event_disagreeing_with_the_body_is_400(bridge: GatewayBridge) -> None:
    response = bridge.post_event("message.exchange", samples.text_data(), path_event="call.update")

    assert response.status_code == 400
    assert bridge.events() == []


def test_lid_and_phone_of_one_person_share_one_contact(bridge: GatewayBridge) -> None:
    bridge.post_event("message.exchange", samples.text_data(text="first", message_id="A1"))
    bridge.post_event("message.exchange", samples.lid_chat_data(text="second", message_id="A2"))

    messages = bridge.wait_for_messages(2)

    assert [m["content"] for m in messages] == ["first", "second"]
    assert len(bridge.chatwoot.contacts) == 1
    assert len(bridge.chatwoot.conversations) == 1
