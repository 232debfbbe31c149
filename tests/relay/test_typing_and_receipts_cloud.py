"""Issue 11, typing and blue ticks on the Cloud API: an agent typing in Chatwoot shows "typing…"
(and marks the customer's last message read) at most once per 20 s per chat; a reply marks the
last customer message read once; ``markRead: false`` sends none of it. Real web app, real worker,
fake Chatwoot and fake Graph (which validates every body against its description of Meta's API).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.store.db import database
from app.store.models import ChatReadState
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.reference import whatsapp_cloud_dir
from tests.relay.bridge import PHONE_NUMBER_ID, make_cloud_bridge, text_body, wait_until
from tests.relay.outbound_bridge import CUSTOMER, AgentSide, open_chat

ACCESS_TOKEN = "EAAG-test-access-token"
FIRST = "wamid.customer.hello"  # what open_chat's customer writes
OTHER = "16505559876"  # a second customer of the same number
READ_WITH_TYPING = whatsapp_cloud_dir() / "2026" / "requests" / "mark_read_with_typing.json"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


def _agent(
    client: TestClient, token: str, chatwoot: FakeChatwoot, graph: FakeGraph, **flags: Any
) -> AgentSide:
    graph.reset()
    graph.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    bridge = make_cloud_bridge(client, token, chatwoot, graph_url=graph.base_url, **flags)
    side = open_chat(bridge)
    bridge.wait_for_events("delivered", 1)  # the customer's message is the chat's last one
    return side


@pytest.fixture
def agent(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker, graph: FakeGraph
) -> Iterator[AgentSide]:
    yield _agent(client, account_token, chatwoot, graph, chatwootMarkRead=True)
    assert graph.schema_errors == []


def agent_user_id(agent: AgentSide) -> int:
    return next(u for u, user in agent.chatwoot.users.items() if user["name"] == "Jane Agent")


def typing(agent: AgentSide, on: bool = True, private: bool = False) -> httpx.Response:
    """Chatwoot's ``conversation_typing_on``/``_off`` for the agent, signed, to our webhook."""
    body = hooks.typing_body(
        agent.chatwoot,
        agent.conversation_id,
        agent_user_id(agent),
        on=on,
        is_private=private,
        account_id=agent.account_id,
    )
    return agent.post(body)


def expected_read_with_typing(message_id: str) -> dict[str, Any]:
    """The reference request body, for ``message_id``."""
    body: dict[str, Any] = json.loads(READ_WITH_TYPING.read_text())
    return {**copy.deepcopy(body), "message_id": message_id}


def read_only(message_id: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}


def settle(seconds: float = 1.0) -> None:
    """Give the worker time to do what it must not do (a second call)."""
    time.sleep(seconds)


def other_chat(agent: AgentSide) -> AgentSide:
    """The same agent in the conversation of :data:`OTHER`, who has written."""
    [hello] = [m for m in agent.bridge.messages() if m["content"] == "Hi, a question"]
    conversation = agent.chatwoot.conversations[hello["conversation_id"]]
    assert int(conversation["display_id"]) != agent.conversation_id
    return AgentSide(
        agent.bridge, agent.account_id, agent.agent_token, int(conversation["display_id"])
    )


def read_state(agent: AgentSide) -> ChatReadState:
    with database.connection_context():
        found: ChatReadState = ChatReadState.get(
            (ChatReadState.integration == agent.bridge.integration_id)
            & (ChatReadState.chat_key == CUSTOMER)
        )
        return found


# ---- typing ----


def test_typing_shows_read_and_typing_once_per_20_seconds(
    agent: AgentSide, graph: FakeGraph
) -> None:
    started = time.monotonic()
    answer = typing(agent)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"stored": 0, "typing": "on", "queued": True}
    wait_until(lambda: len(graph.read_receipts) == 1, 10, "the read+typing call")
    assert graph.read_receipts == [expected_read_with_typing(FIRST)]

    for _ in range(3):  # the agent keeps typing: Chatwoot repeats typing_on
        assert typing(agent, on=False).status_code == 200
        assert typing(agent).status_code == 200
    settle(2)
    assert len(graph.read_receipts) == 1, "a second call inside the 20 s window"
    assert graph.sent == [], "typing sent a message"

    time.sleep(max(0.0, 20.5 - (time.monotonic() - started)))
    typing(agent)
    wait_until(lambda: len(graph.read_receipts) == 2, 10, "the next window's call")
    assert graph.read_receipts[1] == expected_read_with_typing(FIRST)


def test_the_20_second_limit_is_per_chat(agent: AgentSide, graph: FakeGraph) -> None:
    """Typing in chat A, then in chat B inside A's window: each customer gets its own
    read+typing call on its own last message; typing in A again inside the window sends none."""
    other_first = "wamid.other.hello"
    agent.bridge.post(text_body(OTHER, other_first, "Hi, a question", name="Bo"))
    agent.bridge.wait_for_events("delivered", 2)
    other = other_chat(agent)
    started = time.monotonic()

    assert typing(agent).json()["queued"] is True
    wait_until(lambda: len(graph.read_receipts) == 1, 10, "chat A's read+typing call")
    assert typing(other).json()["queued"] is True
    wait_until(lambda: len(graph.read_receipts) == 2, 10, "chat B's read+typing call")
    assert graph.read_receipts == [
        expected_read_with_typing(FIRST),
        expected_read_with_typing(other_first),
    ]

    assert typing(agent, on=False).status_code == 200
    assert typing(agent).status_code == 200
    settle(2)
    assert len(graph.read_receipts) == 2, "a second call in chat A inside its 20 s window"
    assert time.monotonic() - started < 20, "too slow to prove anything about the window"
    assert graph.sent == [], "typing sent a message"


def test_typing_names_the_customers_latest_message(agent: AgentSide, graph: FakeGraph) -> None:
    agent.bridge.post(text_body(CUSTOMER, "wamid.customer.second", "One more thing"))
    agent.bridge.wait_for_events("delivered", 2)

    typing(agent)

    wait_until(lambda: len(graph.read_receipts) == 1, 10, "the read+typing call")
    assert graph.read_receipts == [expected_read_with_typing("wamid.customer.second")]


def test_typing_of_a_private_note_is_not_shown(agent: AgentSide, graph: FakeGraph) -> None:
    answer = typing(agent, private=True)

    assert answer.json()["stored"] == 0
    assert "private note" in answer.json()["ignored"]
    settle()
    assert graph.read_receipts == []


def test_the_customers_typing_echoed_by_chatwoot_is_not_shown(
    agent: AgentSide, graph: FakeGraph
) -> None:
    """Our own toggle_typing (public API) comes back with the contact as ``user``."""
    body = hooks.typing_body(
        agent.chatwoot, agent.conversation_id, agent_user_id(agent), account_id=agent.account_id
    )
    body["user"] = {"id": 1001, "name": "Customer", "avatar": "", "type": "contact"}

    answer = agent.post(body)

    assert "not an agent" in answer.json()["ignored"]
    settle()
    assert graph.read_receipts == []


# ---- replies ----


def test_a_reply_marks_the_last_customer_message_read_once(
    agent: AgentSide, graph: FakeGraph
) -> None:
    first = agent.reply("Hello! Let me check.")
    agent.deliver_webhook(first)
    agent.wait_status(first, "sent")
    second = agent.reply("Found it.")
    agent.deliver_webhook(second)
    agent.wait_status(second, "sent")

    assert graph.read_receipts == [read_only(FIRST)]
    [hello, found] = graph.sent
    assert (hello.body["text"]["body"], found.body["text"]["body"]) == (
        "Hello! Let me check.",
        "Found it.",
    )
    assert read_state(agent).read_id == FIRST


def test_a_new_customer_message_is_marked_read_by_the_next_reply(
    agent: AgentSide, graph: FakeGraph
) -> None:
    first = agent.reply("Hi")
    agent.deliver_webhook(first)
    agent.wait_status(first, "sent")
    agent.bridge.post(text_body(CUSTOMER, "wamid.customer.again", "Thanks, and?"))
    agent.bridge.wait_for_events("delivered", 2)

    second = agent.reply("And that's all")
    agent.deliver_webhook(second)
    agent.wait_status(second, "sent")

    assert graph.read_receipts == [read_only(FIRST), read_only("wamid.customer.again")]


def test_typing_then_reply_marks_the_message_read_only_once(
    agent: AgentSide, graph: FakeGraph
) -> None:
    typing(agent)
    wait_until(lambda: len(graph.read_receipts) == 1, 10, "the read+typing call")

    reply = agent.reply("Here you are")
    agent.deliver_webhook(reply)
    agent.wait_status(reply, "sent")

    assert graph.read_receipts == [expected_read_with_typing(FIRST)]


def test_a_failing_read_receipt_never_costs_the_reply(agent: AgentSide, graph: FakeGraph) -> None:
    graph.fail_next("POST", r"/messages$", 400, 100)  # Graph refuses the read call

    reply = agent.reply("Still there?")
    agent.deliver_webhook(reply)

    assert agent.wait_status(reply, "sent")["status"] == "sent"
    [sent] = graph.sent
    assert sent.body["text"]["body"] == "Still there?"
    assert graph.read_receipts == []


def test_a_read_receipt_lost_to_an_outage_is_tried_again_by_the_next_reply(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.fail_next("POST", r"/messages$", 503, times=2)  # every in-call try of the read

    first = agent.reply("One")
    agent.deliver_webhook(first)
    agent.wait_status(first, "sent")
    assert graph.read_receipts == []
    second = agent.reply("Two")
    agent.deliver_webhook(second)
    agent.wait_status(second, "sent")

    assert graph.read_receipts == [read_only(FIRST)]


# ---- markRead false ----


def test_mark_read_false_sends_neither_typing_nor_read_receipts(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> None:
    agent = _agent(client, account_token, chatwoot, graph, chatwootMarkRead=False)

    assert typing(agent).json()["typing"] == "on"
    reply = agent.reply("No ticks from us")
    agent.deliver_webhook(reply)
    agent.wait_status(reply, "sent")
    settle()

    assert graph.read_receipts == []
    assert [s.body["text"]["body"] for s in graph.sent] == ["No ticks from us"]
    assert graph.schema_errors == []
