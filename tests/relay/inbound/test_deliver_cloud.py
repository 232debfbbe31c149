"""WhatsApp Cloud API webhooks relayed into Chatwoot by real workers."""

from __future__ import annotations

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes.chatwoot import FakeChatwoot
from tests.relay.bridge import CloudBridge, make_cloud_bridge, reference_body, sign, text_body

CUSTOMER = "16505551234"


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> CloudBridge:
    return make_cloud_bridge(client, account_token, chatwoot)


def test_text_message_becomes_one_incoming_message_of_a_new_contact(bridge: CloudBridge) -> None:
    response = bridge.post(reference_body("inbound_text.json"))

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}
    [message] = bridge.wait_for_messages(1)
    assert message["content"] == "Does it come in another color?"
    assert message["message_type"] == "incoming"
    assert message["source_id"] == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["name"] == "Sheena Nelson"
    assert contact["phone_number"] == "+16505551234"
    [conversation] = bridge.chatwoot.conversations.values()
    assert conversation["inbox_id"] == bridge.inbox_id
    assert conversation["contact_id"] == contact["id"]
    bridge.wait_for_events("delivered", 1)


def test_redelivered_webhook_is_stored_and_relayed_once(bridge: CloudBridge) -> None:
    body = reference_body("inbound_text.json")
    answers = [bridge.post(body).json() for _ in range(3)]

    assert answers == [
        {"received": 1, "stored": 1},
        {"received": 1, "stored": 0},
        {"received": 1, "stored": 0},
    ]
    bridge.wait_for_events("delivered", 1)
    assert len(bridge.messages()) == 1
    assert len(bridge.events()) == 1


def test_forged_signature_is_401_and_stores_nothing(bridge: CloudBridge) -> None:
    body = reference_body("inbound_text.json")
    raw = b'{"object": "whatsapp_business_account", "entry": []}'

    forged = bridge.post(body, signature=sign(raw))
    unsigned = bridge.client.post(f"/webhooks/whatsapp/cloud/{bridge.instance}", json=body)

    assert forged.status_code == 401
    assert unsigned.status_code == 401
    assert bridge.events() == []


def test_unparseable_body_is_400_and_stores_nothing(bridge: CloudBridge) -> None:
    not_json = bridge.post(b"{not json")
    wrong_shape = bridge.post({"object": "whatsapp_business_account", "entry": "x"})

    assert not_json.status_code == 400
    assert wrong_shape.status_code == 400
    assert bridge.events() == []


def test_another_phone_number_id_is_not_stored(bridge: CloudBridge) -> None:
    body = reference_body("inbound_text.json")
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "999"

    response = bridge.post(body)

    assert response.status_code == 200
    assert response.json() == {"received": 0, "stored": 0}
    assert bridge.events() == []


def test_unknown_instance_is_404(bridge: CloudBridge) -> None:
    raw = b"{}"
    response = bridge.client.post(
        "/webhooks/whatsapp/cloud/nobody", content=raw, headers={"x-hub-signature-256": sign(raw)}
    )
    assert response.status_code == 404


def test_meta_verification_handshake(bridge: CloudBridge, client: TestClient) -> None:
    created = client.get("/api/instance/list", headers={"token": bridge.account_token}).json()
    assert created["instances"][0]["name"] == bridge.instance
    listed = client.get(
        f"/webhooks/whatsapp/cloud/{bridge.instance}",
        params={"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "42"},
    )
    assert listed.status_code == 403


def test_every_message_of_a_body_is_relayed_in_order(bridge: CloudBridge) -> None:
    body = text_body(CUSTOMER, "wamid.0", "message 0")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"] = [
        {**value["messages"][0], "id": f"wamid.{i}", "text": {"body": f"message {i}"}}
        for i in range(10)
    ]
    second_entry = text_body(CUSTOMER, "wamid.10", "message 10")["entry"][0]
    body["entry"].append(second_entry)

    response = bridge.post(body)

    assert response.json() == {"received": 11, "stored": 11}
    messages = bridge.wait_for_messages(11)
    assert [m["content"] for m in messages] == [f"message {i}" for i in range(11)]
    assert len(bridge.chatwoot.contacts) == 1
    assert len(bridge.chatwoot.conversations) == 1


def test_ongoing_chat_costs_one_chatwoot_call_per_message(bridge: CloudBridge) -> None:
    bridge.post(text_body(CUSTOMER, "wamid.first", "hello"))
    bridge.wait_for_messages(1)
    calls_before = len(bridge.chatwoot.calls)

    for i in range(5):
        bridge.post(text_body(CUSTOMER, f"wamid.next{i}", f"again {i}"))
    bridge.wait_for_messages(6)
    bridge.wait_for_events("delivered", 6)

    new_calls = bridge.chatwoot.calls[calls_before:]
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in new_calls] == [("POST", "messages")] * 5
