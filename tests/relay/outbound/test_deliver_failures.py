"""Outbound relay (Chatwoot → WhatsApp) under failure, and the conversation lifecycle it keeps.

DESIGN invariants 2 (never a second WhatsApp send), 3 (order per chat, a failed reply does not
block the chat) and 4 (failures classified: permanent for the reply → Chatwoot message
``failed``; transient → backoff; permanent for the integration → ``error``, replies held and
replayed). Everything is real: webhooks through the TestClient, a Dramatiq worker on real
Redis, the fake Chatwoot and the fake Graph API as HTTP servers with injected faults.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

import workers.relay
from app.store.models import RelayEvent
from tests.api.helpers import auth, set_body
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot, RecordedCall
from tests.fakes.graph import FakeGraph, status_webhook
from tests.relay.bridge import (
    PHONE_NUMBER_ID,
    CloudBridge,
    make_cloud_bridge,
    text_body,
    wait_until,
)
from tests.relay.outbound_bridge import CUSTOMER, AgentSide, open_chat

ACCESS_TOKEN = "EAAG-test-access-token"
SEND_PATH = r"/messages$"
TOKEN_REJECTED = (
    "Chatwoot rejected the API token — verify chatwootApiToken. Detail: Invalid Access Token"
)
GRAPH_CREDENTIALS_REJECTED = (
    "WhatsApp rejected the instance's credentials: "
    "190: Invalid OAuth access token - Cannot parse access token"
)
PHOTO_1 = b"\x89PNG\r\n\x1a\n" + b"first-photo" * 40
PHOTO_2 = b"\x89PNG\r\n\x1a\n" + b"second-photo" * 40


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    """The fake Graph API, emptied for each test, knowing the bridge's phone number."""
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    yield graph_server
    assert graph_server.schema_errors == []


def make_agent(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, **flags: bool
) -> AgentSide:
    bridge = make_cloud_bridge(
        client,
        account_token,
        chatwoot,
        graph_url=graph.base_url,
        name="suporte",
        chatwootSignMessages=False,
        **flags,
    )
    return open_chat(bridge)


@pytest.fixture
def agent(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> AgentSide:
    return make_agent(client, account_token, chatwoot, graph)


def message_sends(graph: FakeGraph) -> list[Any]:
    """Every POST to ``/{phone-number-id}/messages`` (answered or not)."""
    return [c for c in list(graph.calls) if c.method == "POST" and c.path.endswith("/messages")]


def texts(graph: FakeGraph) -> list[str]:
    return [str(s.body["text"]["body"]) for s in list(graph.sent) if s.body["type"] == "text"]


def listing(bridge: CloudBridge) -> dict[str, Any]:
    response = bridge.client.get(
        f"/api/chatwoot/list/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert response.status_code == 200, response.text
    listed: dict[str, Any] = response.json()
    return listed


def outbound_events(bridge: CloudBridge) -> list[RelayEvent]:
    return [e for e in bridge.events() if e.direction == "outbound"]


def post_action(bridge: CloudBridge, action: str) -> dict[str, Any]:
    response = bridge.client.post(
        f"/api/chatwoot/{action}/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def conversation_by_display_id(chatwoot: FakeChatwoot, display_id: int) -> dict[str, Any]:
    [found] = [c for c in chatwoot.conversations.values() if c["display_id"] == display_id]
    return found


def incoming(chatwoot: FakeChatwoot) -> list[dict[str, Any]]:
    found = [m for m in chatwoot.messages.values() if m["message_type"] == "incoming"]
    return sorted(found, key=lambda m: int(m["id"]))


def patches_of(chatwoot: FakeChatwoot, message_id: int) -> list[RecordedCall]:
    return [
        c
        for c in list(chatwoot.calls)
        if c.method == "PATCH" and c.path.endswith(f"/messages/{message_id}")
    ]


# ---- 1. conversation_status_changed: resolved, reopen, pending -----------------------------


def resolve_in_chatwoot(agent: AgentSide) -> None:
    """An agent resolves the conversation: Chatwoot changes it and posts both webhooks."""
    fake = agent.chatwoot
    bodies = [
        hooks.status_changed_body(fake, agent.conversation_id, "resolved", event=event)
        for event in ("conversation_status_changed", "conversation_updated")
    ]
    conversation_by_display_id(fake, agent.conversation_id)["status"] = "resolved"
    for body in bodies:
        response = agent.post(body)
        assert response.status_code == 200, response.text
        assert response.json() == {"stored": 0, "conversation_status": "resolved"}


def customer_writes_again(agent: AgentSide) -> dict[str, Any]:
    agent.bridge.post(text_body(CUSTOMER, "wamid.customer.again", "Me again, one more question"))
    wait_until(lambda: len(incoming(agent.chatwoot)) == 2, 15, "the second customer message")
    second: dict[str, Any] = incoming(agent.chatwoot)[1]
    assert second["content"] == "Me again, one more question"
    return second


def reopen_calls(chatwoot: FakeChatwoot) -> list[RecordedCall]:
    return [
        c
        for c in list(chatwoot.calls)
        if c.method == "POST"
        and c.path.endswith("/toggle_status")
        and isinstance(c.json, dict)
        and c.json.get("status") == "open"
    ]


def test_resolved_conversation_makes_the_next_customer_message_open_a_new_one(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> None:
    agent = make_agent(client, account_token, chatwoot, graph, chatwootReopenResolved=False)
    [first] = incoming(chatwoot)

    resolve_in_chatwoot(agent)
    second = customer_writes_again(agent)

    assert second["conversation_id"] != first["conversation_id"]
    assert len(chatwoot.conversations) == 2
    assert chatwoot.conversations[first["conversation_id"]]["status"] == "resolved"
    assert chatwoot.conversations[second["conversation_id"]]["status"] == "open"
    assert reopen_calls(chatwoot) == []
    assert len(chatwoot.contacts) == 1


def test_reopen_resolved_reopens_the_same_conversation(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> None:
    agent = make_agent(client, account_token, chatwoot, graph, chatwootReopenResolved=True)
    [first] = incoming(chatwoot)

    resolve_in_chatwoot(agent)
    second = customer_writes_again(agent)

    assert second["conversation_id"] == first["conversation_id"]
    assert len(chatwoot.conversations) == 1
    [reopen] = reopen_calls(chatwoot)
    assert reopen.path.endswith(f"/conversations/{agent.conversation_id}/toggle_status")
    assert reopen.status == 200
    assert chatwoot.conversations[first["conversation_id"]]["status"] == "open"


def test_start_as_pending_makes_new_conversations_pending(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> None:
    agent = make_agent(client, account_token, chatwoot, graph, chatwootStartAsPending=True)
    [first] = incoming(chatwoot)
    assert chatwoot.conversations[first["conversation_id"]]["status"] == "pending"

    resolve_in_chatwoot(agent)
    second = customer_writes_again(agent)

    assert second["conversation_id"] != first["conversation_id"]
    assert chatwoot.conversations[second["conversation_id"]]["status"] == "pending"
    creations = [
        c.json.get("status")
        for c in chatwoot.calls
        if c.method == "POST"
        and c.path.endswith("/conversations")
        and c.status == 200
        and isinstance(c.json, dict)
    ]
    assert creations == ["pending", "pending"]


# ---- 2. pause / resume; integration error from the tick and set --------------------------


def test_pause_holds_replies_and_resume_sends_them_in_order(
    agent: AgentSide, graph: FakeGraph
) -> None:
    bridge = agent.bridge
    assert post_action(bridge, "pause") == {"instance": bridge.instance, "status": "paused"}

    ids = [agent.reply(f"held reply {i}") for i in range(3)]
    answers = [agent.deliver_webhook(message_id).json() for message_id in ids]
    # even a lane job that is already queued must not send while paused
    workers.relay.deliver_outbound.send(bridge.integration_id, CUSTOMER)
    time.sleep(1.0)

    assert answers == [{"stored": 1}] * 3
    assert graph.calls == []
    listed = listing(bridge)
    assert listed["status"] == "paused"
    assert listed["relay"]["pending"] == 3
    assert listed["relay"]["delivered"] == 1  # the customer's hello
    assert [e.status for e in outbound_events(bridge)] == ["pending"] * 3

    assert post_action(bridge, "resume") == {"instance": bridge.instance, "status": "active"}

    for message_id in ids:
        agent.wait_status(message_id, "sent")
    assert texts(graph) == ["held reply 0", "held reply 1", "held reply 2"]
    assert len(message_sends(graph)) == 3
    wait_until(lambda: listing(bridge)["relay"]["pending"] == 0, 5, "nothing pending")


def test_tick_refused_401_holds_the_reply_until_set_replays_it_without_resending(
    agent: AgentSide, graph: FakeGraph
) -> None:
    bridge, chatwoot = agent.bridge, agent.chatwoot
    configured = listing(bridge)
    chatwoot.revoke_token(configured["chatwoot_api_token"])

    first = agent.reply("Sent while the token is revoked")
    assert agent.deliver_webhook(first).json() == {"stored": 1}
    wait_until(lambda: bridge.integration().state == "error", 15, "integration error")
    second = agent.reply("Written while the integration is in error")
    assert agent.deliver_webhook(second).json() == {"stored": 1}
    time.sleep(0.5)

    listed = listing(bridge)
    assert listed["status"] == "error"
    assert listed["last_error"] == TOKEN_REJECTED
    assert listed["relay"]["pending"] == 2
    assert listed["relay"]["failed"] == 0
    assert texts(graph) == ["Sent while the token is revoked"]  # sent; only its tick is held
    assert [c.status for c in patches_of(chatwoot, first)] == [401]

    new_token = chatwoot.add_user("Grace Admin", {agent.account_id: "administrator"})
    response = bridge.client.post(
        f"/api/chatwoot/set/{bridge.instance}",
        json=set_body(chatwoot, agent.account_id, new_token),
        headers=auth(bridge.account_token),
    )

    assert response.status_code == 201, response.text
    assert response.json() == {
        "instance": bridge.instance,
        "status": "active",
        "bridge_integration_id": bridge.integration_id,
        "message": "chatwoot integration activated",
    }
    agent.wait_status(first, "sent")
    agent.wait_status(second, "sent")
    time.sleep(0.5)
    assert texts(graph) == [
        "Sent while the token is revoked",
        "Written while the integration is in error",
    ]
    assert len(message_sends(graph)) == 2
    wait_until(lambda: listing(bridge)["relay"]["pending"] == 0, 5, "nothing pending")
    assert listing(bridge)["status"] == "active"


# ---- 3. Graph refuses the instance's credentials -------------------------------------------


def test_graph_401_errors_the_integration_keeps_the_reply_and_resume_sends_it(
    agent: AgentSide, graph: FakeGraph
) -> None:
    bridge = agent.bridge
    graph.fail_next("POST", SEND_PATH, 401)
    message_id = agent.reply("Can you see this?")

    agent.deliver_webhook(message_id)

    wait_until(lambda: bridge.integration().state == "error", 15, "integration error")
    listed = listing(bridge)
    assert listed["status"] == "error"
    assert listed["last_error"] == GRAPH_CREDENTIALS_REJECTED
    assert listed["relay"]["pending"] == 1
    assert listed["relay"]["failed"] == 0
    assert graph.sent == []
    assert agent.ticks(message_id) == []  # nothing lost, nothing marked failed
    [event] = outbound_events(bridge)
    assert (event.status, event.progress) == ("pending", 0)

    assert post_action(bridge, "resume") == {"instance": bridge.instance, "status": "active"}

    agent.wait_status(message_id, "sent")
    assert texts(graph) == ["Can you see this?"]
    assert len(message_sends(graph)) == 2  # the refused one, then the one after resume
    assert listing(bridge)["status"] == "active"


# ---- 4. attachment gone in Chatwoot --------------------------------------------------------


def forget_blobs(chatwoot: FakeChatwoot, message_id: int) -> None:
    """The file was purged from Chatwoot's storage: its data_url now answers 404."""
    for attachment in chatwoot.messages[message_id]["attachments"]:
        del chatwoot.blobs[attachment["signed_id"]]
        del chatwoot.blobs[attachment["key"]]


@pytest.mark.parametrize("how", ["blob deleted", "storage answers 404"])
def test_attachment_gone_marks_the_message_failed_and_the_chat_goes_on(
    agent: AgentSide, graph: FakeGraph, how: str
) -> None:
    message_id = agent.reply("The invoice", attachments=[("invoice.png", PHOTO_1, "image/png")])
    if how == "blob deleted":
        forget_blobs(agent.chatwoot, message_id)
    else:
        agent.chatwoot.fail_next("GET", r"^/rails/active_storage/", 404)

    agent.deliver_webhook(message_id)

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"].startswith("attachment unavailable")
    assert graph.calls == []  # nothing uploaded, nothing sent
    later = agent.reply("Sorry, I will send it again by email")
    agent.deliver_webhook(later)
    agent.wait_status(later, "sent")
    assert texts(graph) == ["Sorry, I will send it again by email"]
    wait_until(
        lambda: [e.status for e in outbound_events(agent.bridge)] == ["failed", "delivered"],
        5,
        "the failed reply and the next one delivered",
    )
    [failed_event, _] = outbound_events(agent.bridge)
    assert failed_event.last_error.startswith("attachment unavailable")
    assert listing(agent.bridge)["relay"]["failed"] == 1


# ---- 5. Chatwoot 5xx on the tick after a successful send -----------------------------------


def test_chatwoot_5xx_on_the_tick_retries_the_tick_only(agent: AgentSide, graph: FakeGraph) -> None:
    # three answers of 500: every in-call attempt of the first tick fails, so the lane retries
    agent.chatwoot.fail_next("PATCH", r"/messages/\d+$", 500, times=3)
    message_id = agent.reply("Tick me later")

    agent.deliver_webhook(message_id)

    wait_until(
        lambda: [c.status for c in patches_of(agent.chatwoot, message_id)] == [500, 500, 500],
        15,
        "the first tick to fail",
    )
    wait_until(  # the lane backs off: the tick is retried later, the send is not repeated
        lambda: any(
            e.status == "pending"
            and e.last_error.startswith("sent; Chatwoot tick pending")
            and e.next_attempt_at is not None
            and e.progress == 1
            for e in outbound_events(agent.bridge)
        ),
        5,
        "the tick to be scheduled for a retry",
    )
    agent.wait_status(message_id, "sent")
    assert [c.status for c in patches_of(agent.chatwoot, message_id)] == [500, 500, 500, 200]
    time.sleep(0.3)
    assert texts(graph) == ["Tick me later"]
    assert len(message_sends(graph)) == 1


# ---- 6. pair rate limit 131056 ---------------------------------------------------------------


def test_pair_rate_limit_131056_is_resent_after_six_seconds_once(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.fail_next("POST", SEND_PATH, 400, 131056)
    message_id = agent.reply("Quick follow-up")

    agent.deliver_webhook(message_id)
    wait_until(
        lambda: [c.status for c in message_sends(graph)] == [400], 10, "the rate-limited send"
    )
    refused_at = time.monotonic()
    wait_until(lambda: len(graph.sent) == 1, 20, "the resend")
    resent_after = time.monotonic() - refused_at

    assert resent_after >= 5.95, f"resent after {resent_after:.2f}s"
    agent.wait_status(message_id, "sent")
    assert texts(graph) == ["Quick follow-up"]
    assert [c.status for c in message_sends(graph)] == [400, 200]


# ---- 7. multi-part replies ------------------------------------------------------------------


def sent_media(graph: FakeGraph) -> list[tuple[str, bytes, str | None]]:
    """(type, uploaded bytes, caption) of each WhatsApp message, in order."""
    out = []
    for sent in list(graph.sent):
        kind = str(sent.body["type"])
        content = sent.body[kind]
        out.append((kind, graph.media[content["id"]].data, content.get("caption")))
    return out


def two_photo_reply(agent: AgentSide) -> int:
    return agent.reply(
        "Front and back of the part",
        attachments=[("front.png", PHOTO_1, "image/png"), ("back.png", PHOTO_2, "image/png")],
    )


def test_text_and_two_attachments_become_two_media_messages_in_order(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = two_photo_reply(agent)

    agent.deliver_webhook(message_id)

    agent.wait_status(message_id, "sent")
    assert sent_media(graph) == [
        ("image", PHOTO_1, "Front and back of the part"),
        ("image", PHOTO_2, None),
    ]
    assert len(message_sends(graph)) == 2


def test_transient_failure_on_the_second_part_resends_only_the_second(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.set_delay("POST", SEND_PATH, 1.0, times=1)  # hold the first part's answer a moment
    message_id = two_photo_reply(agent)

    agent.deliver_webhook(message_id)
    wait_until(lambda: len(graph.sent) == 1, 10, "the first part to reach Graph")
    # the first part is processed; its answer is still held: the next sends are the second part's
    graph.fail_next("POST", SEND_PATH, 400, 130429, times=3)

    agent.wait_status(message_id, "sent", timeout=20)
    assert sent_media(graph) == [
        ("image", PHOTO_1, "Front and back of the part"),
        ("image", PHOTO_2, None),
    ]
    assert [c.status for c in message_sends(graph)] == [200, 400, 400, 400, 200]
    wait_until(
        lambda: (
            [(e.status, e.progress) for e in outbound_events(agent.bridge)] == [("delivered", 2)]
        ),
        5,
        "the reply delivered with both parts",
    )


# ---- evidence that arrives while the send is still in flight -------------------------------


def test_status_arriving_while_the_send_times_out_confirms_it_without_a_resend(
    agent: AgentSide, graph: FakeGraph
) -> None:
    """Meta posts the ``sent`` status of a message independently of the HTTP answer, often
    before a slow answer times out. That status is evidence the reply went out: the reply must
    not be sent a second time after the confirmation window."""
    graph.set_delay("POST", SEND_PATH, 3.0, times=1)  # Graph sends it; we time out at 2 s
    message_id = agent.reply("Did this arrive only once?")

    agent.deliver_webhook(message_id)
    wait_until(lambda: len(graph.sent) == 1, 10, "the send to reach Graph")
    wamid = graph.sent[0].message_id
    agent.bridge.post(status_webhook(PHONE_NUMBER_ID, wamid, CUSTOMER, "sent"))
    agent.bridge.post(status_webhook(PHONE_NUMBER_ID, wamid, CUSTOMER, "delivered"))

    wait_until(
        lambda: outbound_events(agent.bridge)[0].status != "pending", 12, "the reply to settle"
    )
    time.sleep(4.0)  # past the confirmation window
    assert len(graph.sent) == 1, "the reply was sent twice"
    assert agent.message(message_id)["status"] == "delivered"
