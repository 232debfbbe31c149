"""Chatwoot's Retry button, for real: the webhooks Chatwoot posts when an agent presses it (built
by the fake Chatwoot, which changes its message as Chatwoot does), through the TestClient, a
Dramatiq worker on real Redis and the fake Graph API.

A failed reply is sent again exactly once, however often (or concurrently) the Retry webhooks
arrive; a reply that reached the customer is never sent twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.store.models import EVENT_DELIVERED, EVENT_FAILED
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph, status_webhook
from tests.relay.bridge import (
    CLOUD_ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    make_cloud_bridge,
    wait_until,
)
from tests.relay.outbound_bridge import CUSTOMER, AgentSide, open_chat

QUIET_SECONDS = 1.5  # how long nothing more may happen after the last expected send


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


def texts_sent(graph: FakeGraph) -> list[str]:
    """The texts WhatsApp accepted, in order."""
    return [str(s.body["text"]["body"]) for s in list(graph.sent) if s.body["type"] == "text"]


def failed_reply(agent: AgentSide, graph: FakeGraph, text: str) -> int:
    """An agent's reply that WhatsApp refused for good (131026), marked failed in Chatwoot."""
    graph.fail_recipient(CUSTOMER, 400, 131026)  # the reply, not a read receipt
    message_id = agent.reply(text)
    assert agent.deliver_webhook(message_id).json() == {"stored": 1}
    agent.wait_event(message_id, EVENT_FAILED)
    assert agent.wait_status(message_id, "failed")["external_error"].startswith("131026")
    assert texts_sent(graph) == []
    return message_id


def press_retry(agent: AgentSide, message_id: int) -> list[dict[str, Any]]:
    """The agent presses Retry: Chatwoot changes the message; the bodies it posts (not yet)."""
    bodies = hooks.retry_message(agent.chatwoot, message_id)
    assert len(bodies) == 2
    return bodies


def post_all(agent: AgentSide, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    for body in bodies:
        response = agent.post(body)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def stays(predicate: Any, seconds: float = QUIET_SECONDS) -> bool:
    """``predicate`` holds for ``seconds`` (nothing more happens)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return False
        time.sleep(0.05)
    return True


def test_retry_of_a_failed_reply_sends_it_once_and_ticks_it_sent(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = failed_reply(agent, graph, "Your refund is on its way")

    answers = post_all(agent, press_retry(agent, message_id))

    assert answers == [{"stored": 1}, {"stored": 0}]  # the second finds it pending already
    wait_until(lambda: texts_sent(graph) == ["Your refund is on its way"], 15, "the resend")
    assert agent.wait_status(message_id, "sent")["status"] == "sent"
    event = agent.wait_event(message_id, EVENT_DELIVERED)
    assert event.last_error == ""
    assert stays(lambda: len(graph.sent) == 1)


def test_repeated_retry_webhooks_after_the_resend_send_nothing_more(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = failed_reply(agent, graph, "Sorry for the wait")
    bodies = press_retry(agent, message_id)
    post_all(agent, bodies)
    wait_until(lambda: len(graph.sent) == 1, 15, "the resend")
    agent.wait_event(message_id, EVENT_DELIVERED)

    assert post_all(agent, bodies + bodies) == [{"stored": 0}] * 4

    assert stays(lambda: len(graph.sent) == 1)
    assert texts_sent(graph) == ["Sorry for the wait"]


def test_retry_webhooks_racing_each_other_send_once(agent: AgentSide, graph: FakeGraph) -> None:
    message_id = failed_reply(agent, graph, "One copy only")
    bodies = press_retry(agent, message_id) * 3  # Chatwoot's two updates, each delivered 3 times
    start = threading.Barrier(len(bodies))
    answers: list[dict[str, Any]] = []
    raws = [hooks.signed_request(body, agent.inbox_secret()) for body in bodies]
    url = agent.webhook_path()

    def deliver(raw: bytes, headers: dict[str, str]) -> None:
        start.wait()
        response = agent.bridge.client.post(url, content=raw, headers=headers)
        assert response.status_code == 200, response.text
        answers.append(response.json())

    threads = [threading.Thread(target=deliver, args=raw) for raw in raws]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(a["stored"] for a in answers) == [0, 0, 0, 0, 0, 1]
    wait_until(lambda: len(graph.sent) == 1, 15, "the resend")
    assert stays(lambda: len(graph.sent) == 1)
    assert agent.wait_status(message_id, "sent")["status"] == "sent"


def test_retry_webhook_of_a_delivered_reply_sends_nothing(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply("Already there")
    agent.deliver_webhook(message_id)
    wait_until(lambda: len(graph.sent) == 1, 15, "the send")
    agent.wait_status(message_id, "sent")
    agent.bridge.post(status_webhook(PHONE_NUMBER_ID, graph.sent[0].message_id, CUSTOMER, "read"))
    agent.wait_status(message_id, "read")
    # a Retry-looking body arrives anyway (a late or replayed delivery): the error being cleared
    body = hooks.message_updated_body(agent.chatwoot, message_id)
    body["content_attributes"] = {"external_error": None}
    body["conversation"]["messages"][0]["status"] = "sent"

    assert post_all(agent, [body, body]) == [{"stored": 0}, {"stored": 0}]
    assert stays(lambda: len(graph.sent) == 1)
    assert agent.reply_event(message_id).status == EVENT_DELIVERED


def test_our_own_sent_tick_webhook_sends_nothing(agent: AgentSide, graph: FakeGraph) -> None:
    message_id = agent.reply("Hello")
    agent.deliver_webhook(message_id)
    agent.wait_status(message_id, "sent")

    body = hooks.message_updated_body(agent.chatwoot, message_id)  # what Chatwoot posts for it

    assert post_all(agent, [body]) == [{"stored": 0}]
    assert stays(lambda: len(graph.sent) == 1)


def test_retry_after_whatsapp_reported_the_reply_failed_sends_it_again_once(
    agent: AgentSide, graph: FakeGraph
) -> None:
    """Cloud reports most refusals later, in a status webhook (here 131026): the reply was
    accepted, then failed; it never reached the customer, so Retry sends it again."""
    message_id = agent.reply("Can you confirm the address?")
    agent.deliver_webhook(message_id)
    wait_until(lambda: len(graph.sent) == 1, 15, "the send")
    first_wamid = graph.sent[0].message_id
    agent.wait_status(message_id, "sent")
    agent.bridge.post(
        status_webhook(PHONE_NUMBER_ID, first_wamid, CUSTOMER, "failed", error_code=131026)
    )
    agent.wait_status(message_id, "failed")

    bodies = press_retry(agent, message_id)
    assert post_all(agent, bodies) == [{"stored": 1}, {"stored": 0}]

    wait_until(lambda: len(graph.sent) == 2, 15, "the resend")
    assert texts_sent(graph) == ["Can you confirm the address?"] * 2
    second_wamid = graph.sent[1].message_id
    assert agent.wait_status(message_id, "sent")["status"] == "sent"
    agent.wait_event(message_id, EVENT_DELIVERED)
    # the resend's own ticks reach Chatwoot (the old failure no longer holds them back)
    agent.bridge.post(status_webhook(PHONE_NUMBER_ID, second_wamid, CUSTOMER, "delivered"))
    agent.wait_status(message_id, "delivered")
    # the same Retry webhooks again, and a late one: nothing more
    assert post_all(agent, bodies) == [{"stored": 0}, {"stored": 0}]
    assert stays(lambda: len(graph.sent) == 2)


def test_retry_of_a_message_we_hold_no_reply_for_sends_nothing(
    agent: AgentSide, graph: FakeGraph
) -> None:
    """A Chatwoot message we never stored (its message_created never reached us)."""
    message_id = agent.reply("never relayed")
    agent.chatwoot.messages[message_id]["status"] = "failed"
    agent.chatwoot.messages[message_id]["content_attributes"]["external_error"] = "lost"

    assert post_all(agent, press_retry(agent, message_id)) == [{"stored": 0}, {"stored": 0}]
    assert stays(lambda: len(graph.sent) == 0)
    assert [e for e in agent.bridge.events() if e.direction == "outbound"] == []


def test_retry_webhook_refused_with_a_bad_signature(agent: AgentSide, graph: FakeGraph) -> None:
    message_id = failed_reply(agent, graph, "signed only")
    [first, _] = press_retry(agent, message_id)
    raw, headers = hooks.signed_request(first, "not-the-inbox-secret")

    response = agent.bridge.client.post(agent.webhook_path(), content=raw, headers=headers)

    assert response.status_code == 401
    assert stays(lambda: len(graph.sent) == 0)
    assert agent.reply_event(message_id).status == EVENT_FAILED
