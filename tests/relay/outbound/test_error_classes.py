"""Issue 11, part 4: what each WhatsApp Cloud error does to an agent's reply, end to end, and
the pacing of a number in the relay.

- back off (130429, 131056, 131057, 131000): retried later, delivered once; 131056 waits at
  least 6 s before the next send to that customer while other chats go on;
- failed (131026, 131051, 131053, 131062, 132000, 132001, 132015, 132016): the Chatwoot message
  is ``failed`` with ``"<code>: <title>"`` and the chat goes on;
- 131049 (per-user marketing limit): the next attempt is a day away, not seconds; given up
  (``failed``) after three tries;
- 190, 131031, 131042, 368: the integration turns ``error`` with the reason, replies are held
  (none marked failed), and ``resume`` delivers them in order.

Everything is real: webhooks through the TestClient, a Dramatiq worker on the real Redis, the
fake Chatwoot and the fake Graph API (enforcing a throughput where a test says so).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from functools import partial
from itertools import pairwise
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

import workers.relay
from app.integrations.whatsapp.pacing import RedisPacer
from app.store.db import database
from app.store.models import RelayEvent, utcnow
from tests.api.helpers import auth, set_body
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph, graph_error
from tests.relay.bridge import (
    APP_SECRET,
    CLOUD_ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    CloudBridge,
    create_with_chatwoot,
    text_body,
    wait_until,
)
from tests.relay.outbound_bridge import AgentSide

CUSTOMER = "16505551234"
OTHER = "16505559876"
DAY = 24 * 3600.0

BACK_OFF = [
    (130429, "(#130429) Rate limit hit"),
    (131057, "(#131057) Account in maintenance mode"),
    (131000, "(#131000) Something went wrong"),
]
FAILED = [
    (131026, "Message undeliverable"),
    (131051, "Unsupported message type"),
    (131053, "Media upload error"),
    (131062, "Business-scoped user ID not supported"),
    (132000, "Number of parameters does not match the expected number of params"),
    (132001, "Template name does not exist in the translation"),
    (132015, "Template is paused due to low quality"),
    (132016, "Template is disabled"),
]
HELD = [
    (401, 190, "Invalid OAuth access token - Cannot parse access token"),
    (400, 131031, "Business Account locked"),
    (400, 131042, "Business eligibility payment issue"),
    (400, 368, "Temporarily blocked for policies violations"),
]
MARKETING_LIMIT = graph_error(
    131049,
    "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
)


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, CLOUD_ACCESS_TOKEN)
    yield graph_server
    graph_server.clear_faults()
    assert graph_server.schema_errors == []


def make_bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, **extra: Any
) -> CloudBridge:
    fields: dict[str, Any] = {
        "name": "suporte",
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": CLOUD_ACCESS_TOKEN,
        "cloudAppSecret": APP_SECRET,
        "cloudApiBaseUrl": graph.base_url,
        "chatwootSignMessages": False,
        "chatwootMarkRead": False,  # read receipts are part 2's; these tests count sends
        **extra,
    }
    activation = create_with_chatwoot(client, account_token, chatwoot, fields, "WhatsApp")
    return CloudBridge(
        client=client,
        chatwoot=chatwoot,
        account_token=account_token,
        instance="suporte",
        integration_id=activation["bridge_integration_id"],
        inbox_id=activation["chatwoot_inbox_id"],
    )


def open_chats(bridge: CloudBridge, customers: list[str]) -> dict[str, AgentSide]:
    """Each customer writes first; one agent answers in each conversation."""
    for customer in customers:
        hello = text_body(customer, f"wamid.{customer}.hello", f"Hello from {customer}")
        assert bridge.post(hello).status_code == 200
    bridge.wait_for_messages(len(customers))
    agent_token = ""
    chats = {}
    for message in bridge.messages():
        conversation = bridge.chatwoot.conversations[message["conversation_id"]]
        account_id = int(conversation["account_id"])
        agent_token = agent_token or bridge.chatwoot.add_user("Jane Agent", {account_id: "agent"})
        customer = str(message["content"]).removeprefix("Hello from ")
        chats[customer] = AgentSide(
            bridge, account_id, agent_token, int(conversation["display_id"])
        )
    assert sorted(chats) == sorted(customers)
    return chats


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker, graph: FakeGraph
) -> CloudBridge:
    return make_bridge(client, account_token, chatwoot, graph)


@pytest.fixture
def agent(bridge: CloudBridge) -> AgentSide:
    return open_chats(bridge, [CUSTOMER])[CUSTOMER]


def send(agent: AgentSide, text: str) -> int:
    message_id = agent.reply(text)
    assert agent.deliver_webhook(message_id).status_code == 200
    return message_id


def message_calls(graph: FakeGraph, to: str | None = None) -> list[Any]:
    """Every answered send (``POST /{phone-number-id}/messages`` with a recipient; not a read
    receipt), to ``to`` when given."""
    return [
        c
        for c in list(graph.calls)
        if c.method == "POST"
        and c.path.endswith("/messages")
        and c.status
        and isinstance(c.json, dict)
        and "to" in c.json
        and (to is None or c.json["to"] == to)
    ]


def texts_to(graph: FakeGraph, customer: str) -> list[str]:
    return [str(s.body["text"]["body"]) for s in list(graph.sent) if s.to == customer]


def has_attempts(agent: AgentSide, message_id: int, attempts: int) -> bool:
    return agent.reply_event(message_id).attempts == attempts


def listing(bridge: CloudBridge) -> dict[str, Any]:
    response = bridge.client.get(
        f"/api/chatwoot/list/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert response.status_code == 200, response.text
    listed: dict[str, Any] = response.json()
    return listed


def a_day_passes(bridge: CloudBridge, chat_key: str) -> None:
    """The reply's next attempt is due now (as a day later), and its lane runs."""
    with database.connection_context():
        RelayEvent.update(next_attempt_at=utcnow()).where(
            (RelayEvent.integration == bridge.integration_id)
            & (RelayEvent.direction == "outbound")
            & (RelayEvent.status == "pending")
        ).execute()
    workers.relay.deliver_outbound.send(bridge.integration_id, chat_key)


def seconds_until(moment: dt.datetime | None) -> float:
    assert moment is not None
    return (moment - utcnow()).total_seconds()


# ---- back off --------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "message"), BACK_OFF, ids=[str(c) for c, _ in BACK_OFF])
def test_back_off_codes_are_retried_later_and_delivered_once(
    agent: AgentSide, graph: FakeGraph, code: int, message: str
) -> None:
    """Refused in every in-call attempt (HTTP 400: the code decides, not the status), then
    sent by a later attempt of the lane; never marked failed in Chatwoot."""
    graph.fail_recipient(CUSTOMER, 400, graph_error(code, message), times=3)
    message_id = send(agent, "Are you still there?")

    wait_until(lambda: agent.reply_event(message_id).attempts >= 1, 15, "a backoff")
    backing_off = agent.reply_event(message_id)
    assert backing_off.status == "pending"
    assert backing_off.last_error.startswith(f"{code}: ")
    agent.wait_status(message_id, "sent", timeout=30)
    assert texts_to(graph, CUSTOMER) == ["Are you still there?"]
    assert [c.status for c in message_calls(graph)] == [400, 400, 400, 200]
    assert agent.ticks(message_id) == ["sent"]


def test_pair_rate_limit_holds_that_customer_six_seconds_and_others_go_on(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    """Timed by when the fake received each call (a poll of the test thread can come late on
    a loaded machine, and the resend and the next reply may arrive between two polls)."""
    chats = open_chats(bridge, [CUSTOMER, OTHER])
    graph.fail_recipient(CUSTOMER, 400, 131056)
    first = send(chats[CUSTOMER], "first to Ana")
    wait_until(lambda: bool(message_calls(graph, CUSTOMER)), 10, "the refused send")
    second = send(chats[CUSTOMER], "second to Ana")
    other = send(chats[OTHER], "meanwhile to Bo")

    chats[OTHER].wait_status(other, "sent", timeout=10)
    chats[CUSTOMER].wait_status(second, "sent", timeout=30)
    refused, resent, sent_next = message_calls(graph, CUSTOMER)
    [to_other] = message_calls(graph, OTHER)
    assert [refused.status, resent.status, sent_next.status] == [400, 200, 200]
    other_after = to_other.received_at - refused.received_at
    ana_after = resent.received_at - refused.received_at
    assert other_after < 5.0, f"the other chat waited {other_after:.1f}s"
    assert ana_after >= 5.95, f"Ana's resend came {ana_after:.2f}s after the refusal"
    assert texts_to(graph, CUSTOMER) == ["first to Ana", "second to Ana"]  # order kept
    assert texts_to(graph, OTHER) == ["meanwhile to Bo"]
    assert chats[CUSTOMER].ticks(first) == ["sent"]


# ---- failed with the reason ------------------------------------------------------------------


@pytest.mark.parametrize(("code", "title"), FAILED, ids=[str(c) for c, _ in FAILED])
def test_permanent_codes_fail_the_reply_with_the_reason_and_the_chat_goes_on(
    agent: AgentSide, graph: FakeGraph, code: int, title: str
) -> None:
    details = f"what Meta says about {code}"
    graph.fail_recipient(CUSTOMER, 400, graph_error(code, f"(#{code}) {title}", details=details))
    refused = send(agent, "This one is refused")
    failed = agent.wait_status(refused, "failed")
    assert failed["external_error"] == f"{code}: {title}"
    assert agent.wait_event(refused, "failed", 10).last_error == f"{code}: {title}"

    after = send(agent, "This one goes")
    agent.wait_status(after, "sent")
    assert texts_to(graph, CUSTOMER) == ["This one goes"]
    assert [c.status for c in message_calls(graph)] == [400, 200]  # never retried


# ---- 131049: hours, not seconds --------------------------------------------------------------


def test_marketing_limit_waits_a_day_then_delivers(agent: AgentSide, graph: FakeGraph) -> None:
    graph.fail_recipient(CUSTOMER, 400, MARKETING_LIMIT)
    message_id = send(agent, "Our summer offer")

    wait_until(lambda: agent.reply_event(message_id).attempts == 1, 15, "the refusal")
    event = agent.reply_event(message_id)
    assert event.status == "pending"
    assert seconds_until(event.next_attempt_at) >= DAY - 60  # a day away, not seconds
    assert event.last_error.startswith("131049: ")
    time.sleep(1.0)
    assert [c.status for c in message_calls(graph)] == [400]  # not retried in the call
    assert agent.ticks(message_id) == []  # not failed: it will be tried again

    a_day_passes(agent.bridge, CUSTOMER)
    agent.wait_status(message_id, "sent")
    assert texts_to(graph, CUSTOMER) == ["Our summer offer"]


def test_marketing_limit_gives_up_after_three_tries(agent: AgentSide, graph: FakeGraph) -> None:
    graph.fail_recipient(CUSTOMER, 400, MARKETING_LIMIT, times=3)
    message_id = send(agent, "Our summer offer")
    for tries in (1, 2):
        wait_until(partial(has_attempts, agent, message_id, tries), 15, f"try {tries}")
        assert seconds_until(agent.reply_event(message_id).next_attempt_at) >= DAY - 60
        a_day_passes(agent.bridge, CUSTOMER)

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"].startswith("131049: ")
    assert failed["external_error"].endswith("(tried 3 times, a day apart)")
    agent.wait_event(message_id, "failed", 10)
    assert graph.sent == []


# ---- the integration turns error; replies held until resume ----------------------------------


def hold_two_replies(
    agent: AgentSide, graph: FakeGraph, status: int, code: int, title: str
) -> tuple[int, int]:
    """The first reply refused with an account-level ``code`` (the integration turns error),
    a second sent by the agent meanwhile; both message ids, both held."""
    graph.fail_recipient(CUSTOMER, status, graph_error(code, f"(#{code}) {title}"))
    first = send(agent, "First answer")
    wait_until(lambda: agent.bridge.integration().state == "error", 15, "integration error")
    second = send(agent, "Second answer")  # arrives while the integration is in error
    time.sleep(1.0)
    return first, second


@pytest.mark.parametrize(("status", "code", "title"), HELD, ids=[str(c) for _, c, _ in HELD])
def test_account_codes_turn_the_integration_error_and_hold_replies_until_resume(
    agent: AgentSide, graph: FakeGraph, status: int, code: int, title: str
) -> None:
    bridge = agent.bridge
    first, second = hold_two_replies(agent, graph, status, code, title)
    listed = listing(bridge)
    assert listed["status"] == "error"
    assert f"{code}: {title}" in listed["last_error"]
    expected = (
        "WhatsApp rejected the instance's credentials: "
        if code == 190
        else "WhatsApp refuses to send as this number: "
    )
    assert listed["last_error"].startswith(expected)
    assert listed["relay"]["pending"] == 2 and listed["relay"]["failed"] == 0
    assert graph.sent == []
    assert agent.ticks(first) == [] and agent.ticks(second) == []  # held, not failed
    assert [e.status for e in bridge.events() if e.direction == "outbound"] == [
        "pending",
        "pending",
    ]

    resumed = bridge.client.post(
        f"/api/chatwoot/resume/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert resumed.json() == {"instance": bridge.instance, "status": "active"}
    agent.wait_status(second, "sent", timeout=20)
    assert texts_to(graph, CUSTOMER) == ["First answer", "Second answer"]
    assert agent.ticks(first) == ["sent"]
    assert listing(bridge)["last_error"] == ""


@pytest.mark.parametrize(
    ("status", "code", "title"),
    [HELD[0], HELD[3]],
    ids=[str(HELD[0][1]), str(HELD[3][1])],
)
def test_set_releases_the_replies_held_by_an_account_code_in_order_once(
    agent: AgentSide, graph: FakeGraph, status: int, code: int, title: str
) -> None:
    """``set`` with the integration's own settings (not ``resume``) makes it active again, and
    the replies held meanwhile go out at once, in order, each once, none marked failed."""
    bridge = agent.bridge
    first, second = hold_two_replies(agent, graph, status, code, title)
    held = listing(bridge)
    assert held["status"] == "error" and f"{code}: {title}" in held["last_error"]
    assert held["relay"]["pending"] == 2 and graph.sent == []

    response = bridge.client.post(
        f"/api/chatwoot/set/{bridge.instance}",
        json=set_body(
            bridge.chatwoot,
            agent.account_id,
            held["chatwoot_api_token"],
            inboxName="WhatsApp",
            signMessages=False,
            markRead=False,
        ),
        headers=auth(bridge.account_token),
    )

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "active"
    # released by set itself: before the recovery sweep could find them (10 s idle at least)
    released_within = workers.relay.SWEEP_IDLE_SECONDS / 2
    wait_until(lambda: len(graph.sent) == 2, released_within, "the held replies sent")
    agent.wait_status(first, "sent")
    agent.wait_status(second, "sent")
    wait_until(lambda: listing(bridge)["relay"]["pending"] == 0, 10, "nothing pending")
    time.sleep(0.5)  # room for a second send, which must not come
    assert texts_to(graph, CUSTOMER) == ["First answer", "Second answer"]
    assert [c.status for c in message_calls(graph, CUSTOMER)] == [status, 200, 200]
    assert agent.ticks(first) == ["sent"] and agent.ticks(second) == ["sent"]
    listed = listing(bridge)
    assert (listed["status"], listed["last_error"], listed["relay"]["failed"]) == ("active", "", 0)


# ---- pacing in the relay ---------------------------------------------------------------------


def test_a_slow_number_paces_every_chat_without_counting_attempts(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Paced at 1 message a second (the fake enforcing the same), four chats answered at once
    while another process holds the number for 5 s (as after a 130429): no reply waits that long
    in a worker thread; each is given back until its slot, then the sends go out at least
    1.1 s apart, none refused, and no wait is counted as an attempt."""
    caplog.set_level(logging.INFO, logger="app.relay.outbound.deliver")
    bridge = make_bridge(client, account_token, chatwoot, graph, cloudMessagesPerSecond=1)
    graph.limit_throughput(PHONE_NUMBER_ID, 1)
    customers = [f"165055500{i:02d}" for i in range(4)]
    chats = open_chats(bridge, customers)
    token = auth(bridge.account_token)
    bridge.client.post(f"/api/chatwoot/pause/{bridge.instance}", headers=token)
    ids = {customer: send(chats[customer], f"hello {customer}") for customer in customers}
    RedisPacer(PHONE_NUMBER_ID, 1).hold(5.0)
    held_at = time.monotonic()
    bridge.client.post(f"/api/chatwoot/resume/{bridge.instance}", headers=token)

    for customer, message_id in ids.items():
        chats[customer].wait_status(message_id, "sent", timeout=30)
    assert graph.throttled == []
    times = sorted(graph.message_times[PHONE_NUMBER_ID])
    gaps = [b - a for a, b in pairwise(times)]
    assert len(times) == 4 and min(gaps) >= 1.0, gaps
    assert times[0] - held_at >= 4.9  # nothing was sent during the hold

    def outbound() -> list[RelayEvent]:
        return [e for e in bridge.events() if e.direction == "outbound"]

    wait_until(lambda: all(e.status == "delivered" for e in outbound()), 10, "recorded")
    assert [e.attempts for e in outbound()] == [1, 1, 1, 1]  # the waits for a slot not counted
    given_back = [r for r in caplog.records if "given back" in r.getMessage()]
    assert given_back, "a reply found no slot within the bounded wait and was given back"
    assert listing(bridge)["status"] == "active"
