"""Issue 11, typing and blue ticks through a RyzeAPI-compatible gateway: an agent typing shows as
the gateway's presence (after the read receipt), a reply marks the customer's message read once,
and the customer typing (a presence webhook) shows in Chatwoot through its public API, whose echo
is never sent back. Real web app and worker; fake gateway and Chatwoot validating every body.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway
from tests.relay.bridge import GatewayBridge, make_gateway_bridge, wait_until
from tests.relay.outbound_bridge import AgentSide

CUSTOMER = samples.CUSTOMER
TOKEN = "gw-token-typing"
FIRST = "3EB0TYPING0001"


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


def _agent(
    client: TestClient,
    token: str,
    chatwoot: FakeChatwoot,
    gateway: FakeGateway,
    **flags: Any,
) -> AgentSide:
    gateway.reset()
    gateway.add_instance("vendas", TOKEN)
    bridge = make_gateway_bridge(
        client, token, chatwoot, gateway_url=gateway.base_url, gateway_token=TOKEN, **flags
    )
    bridge.post_event("message.exchange", samples.text_data(text="Oi", message_id=FIRST))
    [first] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    conversation = chatwoot.conversations[first["conversation_id"]]
    account_id = int(conversation["account_id"])
    agent_token = chatwoot.add_user("Jane Agent", {account_id: "agent"})
    return AgentSide(bridge, account_id, agent_token, int(conversation["display_id"]))


@pytest.fixture
def agent(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    gateway: FakeGateway,
) -> AgentSide:
    return _agent(client, account_token, chatwoot, gateway)


def bridge_of(agent: AgentSide) -> GatewayBridge:
    assert isinstance(agent.bridge, GatewayBridge)
    return agent.bridge


def typing(agent: AgentSide, on: bool = True) -> httpx.Response:
    user_id = next(u for u, user in agent.chatwoot.users.items() if user["name"] == "Jane Agent")
    body = hooks.typing_body(
        agent.chatwoot, agent.conversation_id, user_id, on=on, account_id=agent.account_id
    )
    return agent.post(body)


def presence_data(state: str, **fields: Any) -> dict[str, Any]:
    """A whatsmeow-style ``ChatPresence`` as a gateway would forward it [assumed shape]."""
    customer = {"jid": f"{CUSTOMER}@s.whatsapp.net", "lid": samples.CUSTOMER_LID}
    return {"chat": customer, "sender": customer, "state": state, "isFromMe": False, **fields}


def states(gateway: FakeGateway) -> list[str]:
    return [str(p.body["state"]) for p in gateway.presences]


def settle(seconds: float = 1.0) -> None:
    time.sleep(seconds)


# ---- the agent typing ----


def test_agent_typing_marks_read_then_shows_typing_and_ends_it_once(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    assert typing(agent).json() == {"stored": 0, "typing": "on", "queued": True}
    wait_until(lambda: len(gateway.presences) == 1, 10, "the presence call")
    assert [(r.number, r.body) for r in gateway.reads] == [
        (CUSTOMER, {"messageId": FIRST, "number": CUSTOMER})
    ]
    assert gateway.presences[0].body == {"number": CUSTOMER, "state": "typing"}

    typing(agent, on=False)
    wait_until(lambda: len(gateway.presences) == 2, 10, "the pause")
    assert states(gateway) == ["typing", "pause"]

    for on in (True, False, True, False):  # more bursts inside the 20 s window
        typing(agent, on=on)
    settle(2)
    assert states(gateway) == ["typing", "pause"]
    assert len(gateway.reads) == 1
    assert gateway.sent == []


def test_a_reply_marks_the_customers_message_read_once(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    for text in ("Olá!", "Já verifico."):
        reply = agent.reply(text)
        agent.deliver_webhook(reply)
        agent.wait_status(reply, "sent")

    assert [r.body for r in gateway.reads] == [{"messageId": FIRST, "number": CUSTOMER}]
    assert [m.body["message"] for m in gateway.sent] == ["Olá!", "Já verifico."]
    assert gateway.presences == []


def test_a_failing_read_receipt_never_costs_the_reply(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    gateway.fail_next("POST", r"/api/chat/markRead/", 500)

    reply = agent.reply("Ainda aí?")
    agent.deliver_webhook(reply)

    assert agent.wait_status(reply, "sent")["status"] == "sent"
    assert [m.body["message"] for m in gateway.sent] == ["Ainda aí?"]


def test_mark_read_false_sends_no_presence_and_no_read(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    gateway: FakeGateway,
) -> None:
    agent = _agent(client, account_token, chatwoot, gateway, chatwootMarkRead=False)

    typing(agent)
    reply = agent.reply("Sem tiques")
    agent.deliver_webhook(reply)
    agent.wait_status(reply, "sent")
    settle()

    assert gateway.presences == [] and gateway.reads == []


# ---- the customer typing ----


def test_the_customer_typing_shows_in_chatwoot_and_its_echo_is_ignored(
    agent: AgentSide, gateway: FakeGateway
) -> None:
    bridge = bridge_of(agent)

    answer = bridge.post_event("chat.presence", presence_data("composing"))
    assert answer.status_code == 200, answer.text
    wait_until(lambda: len(agent.chatwoot.typing_events) == 1, 10, "toggle_typing on")
    bridge.post_event("chat.presence", presence_data("paused"))
    wait_until(lambda: len(agent.chatwoot.typing_events) == 2, 10, "toggle_typing off")

    events = agent.chatwoot.typing_events
    assert [e["event"] for e in events] == ["conversation_typing_on", "conversation_typing_off"]
    assert {e["conversation_id"] for e in events} == {agent.conversation_id}
    calls = [c for c in agent.chatwoot.calls if c.path.endswith("/toggle_typing")]
    assert [c.json for c in calls] == [{"typing_status": "on"}, {"typing_status": "off"}]
    assert all(c.status == 200 for c in calls)
    assert all("api_access_token" not in c.headers for c in calls)  # the public API

    # Chatwoot tells the inbox webhook about it, with the contact as the typist
    echo = hooks.typing_body(
        agent.chatwoot, agent.conversation_id, next(iter(agent.chatwoot.users)),
        account_id=agent.account_id,
    )  # fmt: skip
    echo["user"] = {"id": events[0]["user"]["id"], "name": "João", "avatar": "", "type": "contact"}
    assert "not an agent" in agent.post(echo).json()["ignored"]
    settle()
    assert gateway.presences == [] and gateway.reads == []


def test_the_customer_typing_is_found_by_any_of_their_identifiers(
    agent: AgentSide,
) -> None:
    """Evolution-style ``presence.update`` naming the customer by their LID only."""
    data = {
        "id": samples.CUSTOMER_LID,
        "presences": {samples.CUSTOMER_LID: {"lastKnownPresence": "composing"}},
    }

    bridge_of(agent).post_event("presence.update", data)

    wait_until(lambda: len(agent.chatwoot.typing_events) == 1, 10, "toggle_typing on")
    assert agent.chatwoot.typing_events[0]["conversation_id"] == agent.conversation_id


def test_our_own_presence_and_unknown_chats_show_nothing(agent: AgentSide) -> None:
    bridge = bridge_of(agent)
    bridge.post_event("chat.presence", presence_data("composing", isFromMe=True))
    stranger = {"jid": "5511912345678@s.whatsapp.net"}
    bridge.post_event("chat.presence", {"chat": stranger, "state": "composing"})
    answer = bridge.post_event("chat.presence", {"state": "composing"})
    assert answer.status_code == 200

    settle()
    assert agent.chatwoot.typing_events == []
