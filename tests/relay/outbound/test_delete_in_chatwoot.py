"""An agent deletes a message in Chatwoot, for real: the ``message_updated`` body the fake Chatwoot
posts for it, through the TestClient, a Dramatiq worker on real Redis, and the fake Graph API or
the fake gateway.

Cloud: WhatsApp cannot delete a business's message, so a sent one gets one private note. Gateway:
the message is revoked for everyone; a refused revoke gets the note. A message not sent yet is
never sent; a failed one is never sent by a retry either."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.relay.outbound.deletion import NOTE_CLOUD, WITHHELD, note_source_id
from app.store.models import EVENT_DELIVERED, EVENT_FAILED
from tests.api.helpers import auth
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import (
    CLOUD_ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    CloudBridge,
    GatewayBridge,
    make_cloud_bridge,
    make_gateway_bridge,
    wait_until,
)
from tests.relay.outbound_bridge import CUSTOMER, AgentSide, open_chat

GATEWAY_TOKEN = "gw-token-delete"
QUIET_SECONDS = 1.5


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
def agent(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker, graph: FakeGraph
) -> AgentSide:
    bridge = make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=False
    )
    return open_chat(bridge)


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


@pytest.fixture
def gateway_agent(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    gateway_server: FakeGateway,
) -> AgentSide:
    gateway_server.reset()
    gateway_server.add_instance("vendas", GATEWAY_TOKEN)
    bridge = make_gateway_bridge(
        client,
        account_token,
        chatwoot,
        gateway_url=gateway_server.base_url,
        gateway_token=GATEWAY_TOKEN,
        chatwootSignMessages=False,
    )
    bridge.post_event("message.exchange", samples.text_data(text="Oi", message_id="IN1"))
    [first] = bridge.wait_for_messages(1)
    conversation = chatwoot.conversations[first["conversation_id"]]
    account_id = int(conversation["account_id"])
    token = chatwoot.add_user("Jane Agent", {account_id: "agent"})
    return AgentSide(bridge, account_id, token, int(conversation["display_id"]))


def texts_sent(graph: FakeGraph) -> list[str]:
    return [str(s.body["text"]["body"]) for s in list(graph.sent) if s.body["type"] == "text"]


def delete_in_chatwoot(agent: AgentSide, message_id: int, times: int = 1) -> list[Any]:
    """The agent deletes the message; Chatwoot's webhook for it, delivered ``times`` times."""
    body = hooks.delete_message(agent.chatwoot, message_id)
    answers = []
    for _ in range(times):
        response = agent.post(body)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def delete_event_done(agent: AgentSide, message_id: int) -> bool:
    key = f"cw:{message_id}:deleted"
    return any(e.natural_key == key and e.status == EVENT_DELIVERED for e in agent.bridge.events())


def stays(predicate: Any, seconds: float = QUIET_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.05)
    return True


def post_action(bridge: CloudBridge, action: str) -> dict[str, Any]:
    response = bridge.client.post(
        f"/api/chatwoot/{action}/{bridge.instance}",
        headers=auth(bridge.account_token),
        json={} if action == "retry" else None,
    )
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


# ---- Cloud API ----
def test_deleting_a_sent_cloud_reply_leaves_one_private_note(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply("Wrong price, sorry")
    agent.deliver_webhook(message_id)
    agent.wait_status(message_id, "sent")

    answers = delete_in_chatwoot(agent, message_id, times=2)

    assert answers == [{"stored": 1}, {"stored": 0}]  # a repeated webhook stores nothing
    wait_until(lambda: len(agent.bridge.notes()) == 1, 15, "the note")
    [note] = agent.bridge.notes()
    assert note["content"] == NOTE_CLOUD
    assert note["content"].startswith("🗑️ This message was deleted in Chatwoot only")
    assert note["source_id"] == note_source_id(message_id)
    conversation = agent.chatwoot.conversations[note["conversation_id"]]
    assert conversation["display_id"] == agent.conversation_id
    wait_until(lambda: delete_event_done(agent, message_id), 15, "the delete done")
    assert stays(lambda: len(agent.bridge.notes()) == 1)
    assert texts_sent(graph) == ["Wrong price, sorry"]  # Cloud has no delete: nothing else


def test_deleting_a_reply_not_sent_yet_means_it_is_never_sent(
    agent: AgentSide, graph: FakeGraph
) -> None:
    bridge = agent.bridge
    post_action(bridge, "pause")
    kept = agent.reply("This one goes")
    deleted = agent.reply("This one was a mistake")
    agent.deliver_webhook(kept)
    agent.deliver_webhook(deleted)

    assert delete_in_chatwoot(agent, deleted) == [{"stored": 1}]
    post_action(bridge, "resume")

    agent.wait_status(kept, "sent")
    wait_until(lambda: delete_event_done(agent, deleted), 15, "the delete done")
    assert stays(lambda: texts_sent(graph) == ["This one goes"])
    event = agent.reply_event(deleted)
    assert (event.status, event.last_error) == (EVENT_DELIVERED, WITHHELD)
    assert agent.bridge.notes() == []  # nothing reached the customer: nothing to say
    assert agent.ticks(deleted) == []


def test_deleting_a_failed_reply_keeps_retries_from_sending_it(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.fail_recipient(CUSTOMER, 400, 131026)
    message_id = agent.reply("Not deliverable")
    agent.deliver_webhook(message_id)
    agent.wait_status(message_id, "failed")
    agent.wait_event(message_id, EVENT_FAILED)

    delete_in_chatwoot(agent, message_id)
    wait_until(lambda: delete_event_done(agent, message_id), 15, "the delete done")

    event = agent.reply_event(message_id)
    assert (event.status, event.last_error) == (EVENT_DELIVERED, WITHHELD)
    assert post_action(agent.bridge, "retry")["retrying"] == 0
    # Chatwoot's Retry on the deleted message: its body still says deleted
    for body in hooks.retry_message(agent.chatwoot, message_id):
        assert agent.post(body).json() == {"stored": 0}
    assert stays(lambda: texts_sent(graph) == [])
    assert agent.bridge.notes() == []


def test_a_failed_reply_deleted_then_replayed_by_the_retry_api_is_not_sent(
    agent: AgentSide, graph: FakeGraph
) -> None:
    """The retry API runs between the delete's intake and its delivery (the integration
    paused): the lane withholds the reply all the same."""
    graph.fail_recipient(CUSTOMER, 400, 131026)
    message_id = agent.reply("Never mind")
    agent.deliver_webhook(message_id)
    agent.wait_event(message_id, EVENT_FAILED)
    post_action(agent.bridge, "pause")
    delete_in_chatwoot(agent, message_id)

    assert post_action(agent.bridge, "retry")["retrying"] == 1
    post_action(agent.bridge, "resume")

    wait_until(lambda: delete_event_done(agent, message_id), 15, "the delete done")
    assert agent.reply_event(message_id).last_error == WITHHELD
    assert stays(lambda: texts_sent(graph) == [])


# ---- gateway ----
def test_deleting_a_sent_gateway_reply_revokes_it_without_a_note(
    gateway_agent: AgentSide, gateway_server: FakeGateway
) -> None:
    agent = gateway_agent
    message_id = agent.reply("Oops")
    agent.deliver_webhook(message_id)
    agent.wait_status(message_id, "sent")
    [sent] = gateway_server.sent

    delete_in_chatwoot(agent, message_id, times=2)

    wait_until(lambda: delete_event_done(agent, message_id), 15, "the delete done")
    assert gateway_server.revoked == [sent.message_id]
    assert agent.bridge.notes() == []


def test_a_refused_gateway_revoke_leaves_the_note_with_the_reason(
    gateway_agent: AgentSide, gateway_server: FakeGateway
) -> None:
    agent = gateway_agent
    message_id = agent.reply("Too old to revoke")
    agent.deliver_webhook(message_id)
    agent.wait_status(message_id, "sent")
    gateway_server.fail_next(
        "DELETE",
        r"^/api/chat/delete/",
        400,
        {"success": False, "error": {"message": "revoke window expired"}},
    )

    delete_in_chatwoot(agent, message_id)

    wait_until(lambda: len(agent.bridge.notes()) == 1, 15, "the note")
    [note] = agent.bridge.notes()
    assert note["content"].startswith("🗑️ This message was deleted in Chatwoot only")
    assert "revoke window expired" in note["content"]
    assert gateway_server.revoked == []
    wait_until(lambda: delete_event_done(agent, message_id), 15, "the delete done")


def test_deleting_a_message_typed_on_the_business_phone_the_gateway_cannot_find(
    gateway_agent: AgentSide, gateway_server: FakeGateway
) -> None:
    """It reached the customer too; the gateway answers 404 ``message not found`` for an id it
    does not hold, so the agent gets the note with that reason."""
    agent = gateway_agent
    assert isinstance(agent.bridge, GatewayBridge)
    echo = samples.outgoing_text_data(text="Sent from the phone", message_id="3EB0PHONE01")
    agent.bridge.post_event("message.exchange", echo)
    wait_until(
        lambda: any(m["source_id"] == "3EB0PHONE01" for m in agent.bridge.messages()),
        15,
        "the phone's message in Chatwoot",
    )
    [posted] = [m for m in agent.bridge.messages() if m["source_id"] == "3EB0PHONE01"]

    assert delete_in_chatwoot(agent, int(posted["id"])) == [{"stored": 1}]

    wait_until(lambda: len(agent.bridge.notes()) == 1, 15, "the note")
    [note] = agent.bridge.notes()
    assert "message not found" in note["content"]
    assert gateway_server.revoked == []
