"""One person, many identifiers, end to end (real web app, real workers, fake Chatwoot and Graph):
a customer known first by BSUID and username only, then with a phone number, then by BSUID
again, is one contact and one conversation; agent replies go to the identifier they last wrote
from (a BSUID in ``recipient``, a phone in ``to``), and BSUID-only statuses tick them."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import CloudBridge, make_cloud_bridge, wait_until
from tests.relay.cloud_2026 import body_2026, value_of
from tests.relay.outbound_bridge import AgentSide

ANA_BSUID = "BR.1349120865530274"
ANA_PHONE = "5511987654321"
ANA_ATTRIBUTES = {
    "social_profiles": {"whatsapp": "ana.souza"},
    "social_whatsapp_user_name": "ana.souza",
    "social_whatsapp_user_id": ANA_BSUID,
}


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, worker: Worker
) -> CloudBridge:
    return make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=False
    )


def ana_says(message_id: str, text: str, phone: str | None = None) -> dict[str, Any]:
    """A text from Ana as Meta sends it: BSUID and username, plus ``wa_id``/``from`` when her
    phone number is shared."""
    body = copy.deepcopy(body_2026("bsuid_only_text_with_username.json"))
    value = value_of(body)
    message = value["messages"][0]
    message.update({"id": message_id, "text": {"body": text}})
    if phone is not None:
        value["contacts"][0]["wa_id"] = phone
        message["from"] = phone
    return body


def agent_for(bridge: CloudBridge) -> AgentSide:
    [conversation] = bridge.chatwoot.conversations.values()
    account_id = int(conversation["account_id"])
    agent_token = bridge.chatwoot.add_user("Jane Agent", {account_id: "agent"})
    return AgentSide(bridge, account_id, agent_token, int(conversation["display_id"]))


def reply_and_wait_sent(agent: AgentSide, graph: FakeGraph, text: str) -> tuple[int, Any]:
    """The agent replies; returns the Chatwoot message id and what Graph received."""
    before = len(graph.sent)
    message_id = agent.reply(text)
    assert agent.deliver_webhook(message_id).json() == {"stored": 1}
    wait_until(lambda: len(graph.sent) > before, what="the reply sent to Graph")
    agent.wait_status(message_id, "sent")
    return message_id, graph.sent[-1]


def status_body(name: str, wamid: str) -> dict[str, Any]:
    body = copy.deepcopy(body_2026(name))
    value_of(body)["statuses"][0]["id"] = wamid
    return body


def contact_updates(chatwoot: FakeChatwoot) -> list[Any]:
    return [c.json for c in chatwoot.calls if c.method == "PUT" and "/contacts/" in c.path]


def test_bsuid_then_phone_then_bsuid_is_one_contact_one_conversation(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    assert bridge.post(ana_says("wamid.ana.1", "Oi!")).json()["stored"] == 1
    bridge.wait_for_events("delivered", 1)
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] is None  # no phone at first
    assert contact["name"] == "Ana Souza"
    assert contact["additional_attributes"] == ANA_ATTRIBUTES

    bridge.post(ana_says("wamid.ana.2", "Meu número é este", phone=ANA_PHONE))
    bridge.post(ana_says("wamid.ana.3", "Obrigada"))

    messages = bridge.wait_for_messages(3)
    bridge.wait_for_events("delivered", 3)
    assert [m["content"] for m in messages] == ["Oi!", "Meu número é este", "Obrigada"]
    assert [m["source_id"] for m in messages] == ["wamid.ana.1", "wamid.ana.2", "wamid.ana.3"]
    [conversation] = bridge.chatwoot.conversations.values()
    assert {m["conversation_id"] for m in messages} == {conversation["id"]}
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] == "+" + ANA_PHONE  # given once the phone appeared
    assert contact["additional_attributes"] == ANA_ATTRIBUTES
    assert [u["phone_number"] for u in contact_updates(bridge.chatwoot)] == ["+" + ANA_PHONE]
    assert [ci["source_id"] for ci in bridge.chatwoot.contact_inboxes] == [ANA_BSUID]
    assert {e.chat_key for e in bridge.events()} == {ANA_BSUID}


def test_reply_goes_to_the_bsuid_in_recipient_and_bsuid_only_statuses_tick_it(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    bridge.post(ana_says("wamid.ana.1", "Oi!"))
    bridge.wait_for_events("delivered", 1)
    agent = agent_for(bridge)

    message_id, sent = reply_and_wait_sent(agent, graph, "Sim, entregamos no sábado.")

    assert "to" not in sent.body
    assert sent.body["recipient"] == ANA_BSUID
    assert sent.body["recipient_type"] == "individual"
    assert sent.dropped is False
    assert graph.schema_errors == []
    for name, status in (
        ("status_delivered_bsuid_only.json", "delivered"),
        ("status_read_bsuid_only.json", "read"),
    ):
        assert bridge.post(status_body(name, sent.message_id)).json()["stored"] == 1
        assert agent.wait_status(message_id, status)["status"] == status


def test_replies_follow_the_identifier_the_customer_last_wrote_from(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    bridge.post(ana_says("wamid.ana.1", "Oi!"))
    bridge.wait_for_events("delivered", 1)
    agent = agent_for(bridge)

    bridge.post(ana_says("wamid.ana.2", "Agora com número", phone=ANA_PHONE))
    bridge.wait_for_events("delivered", 2)
    _, by_phone = reply_and_wait_sent(agent, graph, "Recebido pelo número")
    bridge.post(ana_says("wamid.ana.3", "De novo sem número"))
    wait_until(lambda: len(bridge.messages()) == 4, what="the third customer message")
    bridge.wait_for_events("delivered", 3)
    _, by_bsuid = reply_and_wait_sent(agent, graph, "Recebido pelo usuário")

    assert by_phone.body["to"] == ANA_PHONE
    assert "recipient" not in by_phone.body
    assert by_bsuid.body["recipient"] == ANA_BSUID
    assert "to" not in by_bsuid.body
    assert [s.dropped for s in graph.sent] == [False, False]


def agent_created_contact(bridge: CloudBridge, phone: str) -> None:
    """A contact an agent created in Chatwoot by hand, with ``phone``."""
    account_id = int(bridge.integration().chatwoot_account_id)
    token = bridge.chatwoot.add_user("Admin", {account_id: "administrator"})
    created = httpx.post(
        f"{bridge.chatwoot.base_url}/api/v1/accounts/{account_id}/contacts",
        json={"inbox_id": bridge.inbox_id, "name": "Walk-in", "phone_number": phone},
        headers={"api_access_token": token},
    )
    assert created.status_code == 200, created.text


def test_a_phone_another_contact_has_is_left_alone_and_the_message_relayed(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    agent_created_contact(bridge, "+" + ANA_PHONE)
    bridge.post(ana_says("wamid.ana.1", "Oi!"))
    bridge.wait_for_events("delivered", 1)

    bridge.post(ana_says("wamid.ana.2", "Com um número já usado", phone=ANA_PHONE))
    bridge.post(ana_says("wamid.ana.3", "De novo com ele", phone=ANA_PHONE))

    messages = bridge.wait_for_messages(3)
    bridge.wait_for_events("delivered", 3)
    assert [m["source_id"] for m in messages] == ["wamid.ana.1", "wamid.ana.2", "wamid.ana.3"]
    ana = [c for c in bridge.chatwoot.contacts.values() if c["name"] == "Ana Souza"]
    assert [c["phone_number"] for c in ana] == [None]
    refused = [
        c
        for c in bridge.chatwoot.calls
        if c.method == "PUT" and "/contacts/" in c.path and c.status == 422
    ]
    assert len(refused) == 1  # tried once, not on every message
    assert contact_updates(bridge.chatwoot) == [
        {"phone_number": "+" + ANA_PHONE, "additional_attributes": ANA_ATTRIBUTES}
    ]
