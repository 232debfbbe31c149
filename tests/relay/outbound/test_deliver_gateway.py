"""Agent replies relayed through a RyzeAPI-compatible gateway (fake), echoes never duplicated."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway
from tests.relay.bridge import GatewayBridge, make_gateway_bridge, wait_until
from tests.relay.outbound_bridge import AgentSide

CUSTOMER = samples.CUSTOMER
TOKEN = "gw-token-outbound"


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


@pytest.fixture
def agent(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    gateway: FakeGateway,
) -> AgentSide:
    gateway.reset()
    gateway.add_instance("vendas", TOKEN)
    bridge = make_gateway_bridge(
        client, account_token, chatwoot, gateway_url=gateway.base_url, gateway_token=TOKEN
    )
    bridge.post_event("message.exchange", samples.text_data(text="Oi", message_id="IN1"))
    [first] = bridge.wait_for_messages(1)
    conversation = chatwoot.conversations[first["conversation_id"]]
    account_id = int(conversation["account_id"])
    token = chatwoot.add_user("Jane Agent", {account_id: "agent"})
    return AgentSide(bridge, account_id, token, int(conversation["display_id"]))


def gateway_bridge(agent: AgentSide) -> GatewayBridge:
    assert isinstance(agent.bridge, GatewayBridge)
    return agent.bridge


def wait_sent(gateway: FakeGateway, count: int) -> None:
    wait_until(lambda: len(gateway.sent) >= count, 15, f"{count} gateway sends")


def chatwoot_outgoing(agent: AgentSide) -> list[dict[str, Any]]:
    return [m for m in agent.chatwoot.messages.values() if m["message_type"] == "outgoing"]


def test_agent_text_goes_through_the_gateway_and_is_ticked(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    message_id = agent.reply("Olá! Em que posso *ajudar*?")

    assert agent.deliver_webhook(message_id).json() == {"stored": 1}

    wait_sent(gateway, 1)
    [sent] = gateway.sent
    assert (sent.kind, sent.number) == ("text", CUSTOMER)
    assert sent.body["message"] == "Olá! Em que posso _ajudar_?"
    agent.wait_status(message_id, "sent")


def test_the_gateway_echo_of_our_reply_is_not_posted_to_chatwoot_again(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    message_id = agent.reply("Pedido enviado")
    agent.deliver_webhook(message_id)
    wait_sent(gateway, 1)
    agent.wait_status(message_id, "sent")
    echo = samples.outgoing_text_data(text="Pedido enviado", message_id=gateway.sent[0].message_id)

    response = gateway_bridge(agent).post_event("message.exchange", echo)

    assert response.json()["stored"] == 1
    agent.bridge.wait_for_events("delivered", 3)  # hello, the reply's echo... and the reply
    assert [m["id"] for m in chatwoot_outgoing(agent)] == [message_id]


def test_gateway_receipts_tick_the_chatwoot_message(agent: AgentSide, gateway: FakeGateway) -> None:
    message_id = agent.reply("Chegou?")
    agent.deliver_webhook(message_id)
    wait_sent(gateway, 1)
    agent.wait_status(message_id, "sent")
    sent_id = gateway.sent[0].message_id

    gateway_bridge(agent).post_event("message.status", samples.status_data(sent_id, "read"))

    assert agent.wait_status(message_id, "read")["status"] == "read"


def test_timed_out_send_is_confirmed_by_the_echo_not_resent(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    gateway.set_delay("POST", r"/api/message/text/", 3.0, times=1)
    message_id = agent.reply("Está aí?")
    agent.deliver_webhook(message_id)
    wait_sent(gateway, 1)
    wait_until(
        lambda: any(e.unconfirmed for e in agent.bridge.events() if e.direction == "outbound"),
        10,
        "the reply to wait for confirmation",
    )
    echo = samples.outgoing_text_data(text="Está aí?", message_id=gateway.sent[0].message_id)

    gateway_bridge(agent).post_event("message.exchange", echo)

    agent.wait_status(message_id, "sent")
    time.sleep(4)  # past the confirmation window
    assert len(gateway.sent) == 1
    assert [m["id"] for m in chatwoot_outgoing(agent)] == [message_id]


def test_message_typed_on_the_business_phone_still_reaches_chatwoot(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    typed = samples.outgoing_text_data(text="Respondi pelo celular", message_id="PHONE1")

    gateway_bridge(agent).post_event("message.exchange", typed)

    wait_until(lambda: len(chatwoot_outgoing(agent)) == 1, 10, "the phone message in Chatwoot")
    [posted] = chatwoot_outgoing(agent)
    assert posted["content"] == "Respondi pelo celular"
    assert posted["source_id"] == "PHONE1"
    time.sleep(0.3)
    assert gateway.sent == []  # and it is never echoed back to WhatsApp
    assert agent.deliver_webhook(int(posted["id"])).json()["stored"] == 0


def test_attachment_is_passed_as_a_link_with_the_caption(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    data = b"%PDF-1.4 invoice"
    message_id = agent.reply("Segue a nota", attachments=[("nota.pdf", data, "application/pdf")])

    agent.deliver_webhook(message_id)

    wait_sent(gateway, 1)
    [sent] = gateway.sent
    assert sent.kind == "media"
    assert sent.body["mediaType"] == "document"
    assert sent.body["message"] == "Segue a nota"
    assert sent.media_bytes == data
    agent.wait_status(message_id, "sent")


def test_quote_becomes_reply_to(agent: AgentSide, gateway: FakeGateway) -> None:
    [incoming] = [m for m in agent.chatwoot.messages.values() if m["message_type"] == "incoming"]
    message_id = agent.reply("Sobre isso:", in_reply_to=int(incoming["id"]))

    agent.deliver_webhook(message_id)

    wait_sent(gateway, 1)
    assert gateway.sent[0].body["replyTo"] == "IN1"
