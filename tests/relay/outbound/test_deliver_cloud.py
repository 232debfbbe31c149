"""Agent replies in Chatwoot relayed to the WhatsApp Cloud API (fake Graph), with their ticks."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph, status_webhook
from tests.relay.bridge import PHONE_NUMBER_ID, make_cloud_bridge, wait_until
from tests.relay.outbound_bridge import CUSTOMER, AgentSide, open_chat

ACCESS_TOKEN = "EAAG-test-access-token"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def agent(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> AgentSide:
    graph.reset()
    graph.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    bridge = make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=False
    )
    return open_chat(bridge)


def wait_sent(graph: FakeGraph, count: int) -> None:
    wait_until(lambda: len(graph.sent) >= count, 15, f"{count} WhatsApp sends")


def test_agent_text_reaches_the_customer_and_is_ticked_sent(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply("Your order **ships** today, see https://example.com/track")

    response = agent.deliver_webhook(message_id)

    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1}
    wait_sent(graph, 1)
    [sent] = graph.sent
    assert sent.to == CUSTOMER
    assert sent.body["type"] == "text"
    assert sent.body["text"]["body"] == "Your order *ships* today, see https://example.com/track"
    assert agent.wait_status(message_id, "sent")["status"] == "sent"
    assert graph.schema_errors == []


def test_delivered_and_read_statuses_update_the_chatwoot_message(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply("Thanks!")
    agent.deliver_webhook(message_id)
    wait_sent(graph, 1)
    agent.wait_status(message_id, "sent")
    wamid = graph.sent[0].message_id

    agent.bridge.post(status_webhook(PHONE_NUMBER_ID, wamid, CUSTOMER, "delivered"))
    agent.wait_status(message_id, "delivered")
    agent.bridge.post(status_webhook(PHONE_NUMBER_ID, wamid, CUSTOMER, "read"))

    assert agent.wait_status(message_id, "read")["status"] == "read"


def test_closed_window_131047_marks_the_message_failed_without_retrying(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.fail_recipient(CUSTOMER, 400, 131047)
    message_id = agent.reply("Are you still there?")

    agent.deliver_webhook(message_id)

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"] == "24-hour window closed — reply with a template"
    time.sleep(0.5)
    sends = [c for c in graph.calls if c.path.endswith("/messages") and c.method == "POST"]
    assert len(sends) == 1


def test_failed_status_from_whatsapp_reaches_chatwoot_with_the_reason(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply("A template would be needed")
    agent.deliver_webhook(message_id)
    wait_sent(graph, 1)
    agent.wait_status(message_id, "sent")

    body = status_webhook(
        PHONE_NUMBER_ID, graph.sent[0].message_id, CUSTOMER, "failed", error_code=131047
    )
    agent.bridge.post(body)

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"] == "24-hour window closed — reply with a template"


def test_the_same_webhook_three_times_sends_once(agent: AgentSide, graph: FakeGraph) -> None:
    message_id = agent.reply("Only once, please")

    answers = [agent.deliver_webhook(message_id).json() for _ in range(3)]

    assert answers == [{"stored": 1}, {"stored": 0}, {"stored": 0}]
    wait_sent(graph, 1)
    agent.wait_status(message_id, "sent")
    time.sleep(0.3)
    assert len(graph.sent) == 1


def test_private_notes_incoming_and_our_own_updates_are_never_sent(
    agent: AgentSide, graph: FakeGraph
) -> None:
    note = agent.reply("internal: customer is VIP", private=True)
    [incoming] = [m for m in agent.chatwoot.messages.values() if m["message_type"] == "incoming"]

    answers = [
        agent.deliver_webhook(note).json(),
        agent.deliver_webhook(int(incoming["id"])).json(),
        agent.post(
            hooks.message_created_body(agent.chatwoot, note, event="message_updated")
        ).json(),
    ]

    assert [a["stored"] for a in answers] == [0, 0, 0]
    time.sleep(0.3)
    assert graph.sent == []


def test_forged_signature_wrong_secret_and_stale_timestamp_are_401(agent: AgentSide) -> None:
    message_id = agent.reply("hi")
    body = hooks.message_created_body(agent.chatwoot, message_id)
    raw = hooks.encode_body(body)
    path = agent.webhook_path()
    forged = hooks.signed_headers(raw, "not-the-inbox-secret")
    stale = hooks.signed_headers(raw, agent.inbox_secret(), timestamp=int(time.time()) - 600)
    good = hooks.signed_headers(raw, agent.inbox_secret())
    client = agent.bridge.client

    assert client.post(path, content=raw, headers=forged).status_code == 401
    assert client.post(path, content=raw, headers=stale).status_code == 401
    wrong_path = path.rsplit("/", 1)[0] + "/wrong-secret"
    assert client.post(wrong_path, content=raw, headers=good).status_code == 401
    assert [e for e in agent.bridge.events() if e.direction == "outbound"] == []


def test_five_quick_replies_arrive_in_order(agent: AgentSide, graph: FakeGraph) -> None:
    ids = [agent.reply(f"step {i}") for i in range(5)]

    for message_id in ids:
        assert agent.deliver_webhook(message_id).status_code == 200

    wait_sent(graph, 5)
    assert [s.body["text"]["body"] for s in graph.sent] == [f"step {i}" for i in range(5)]


def test_quote_of_a_customer_message_becomes_the_whatsapp_context(
    agent: AgentSide, graph: FakeGraph
) -> None:
    [incoming] = [m for m in agent.chatwoot.messages.values() if m["message_type"] == "incoming"]
    message_id = agent.reply("Yes, we are here", in_reply_to=int(incoming["id"]))

    agent.deliver_webhook(message_id)

    wait_sent(graph, 1)
    assert graph.sent[0].body["context"] == {"message_id": "wamid.customer.hello"}


def test_attachment_is_uploaded_and_sent_with_the_text_as_caption(
    agent: AgentSide, graph: FakeGraph
) -> None:
    photo = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100
    message_id = agent.reply("Here is the part", attachments=[("part.png", photo, "image/png")])

    agent.deliver_webhook(message_id)

    wait_sent(graph, 1)
    [sent] = graph.sent
    assert sent.body["type"] == "image"
    assert sent.body["image"]["caption"] == "Here is the part"
    media_id = sent.body["image"]["id"]
    assert graph.media[media_id].data == photo
    agent.wait_status(message_id, "sent")


def test_sign_messages_prefixes_the_agent_name(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> None:
    graph.reset()
    graph.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    bridge = make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=True
    )
    agent = open_chat(bridge)
    message_id = agent.reply("On my way")

    agent.deliver_webhook(message_id)

    wait_sent(graph, 1)
    assert graph.sent[0].body["text"]["body"] == "*Jane Agent*:\nOn my way"


def _sends(graph: FakeGraph) -> list[object]:
    return [c for c in graph.calls if c.method == "POST" and c.path.endswith("/messages")]


def test_timeout_after_the_send_waits_for_whatsapp_and_a_status_confirms_it(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.set_delay("POST", r"/messages$", 3.0, times=1)  # Graph sends it; we time out at 2 s
    message_id = agent.reply("Did this arrive?")

    agent.deliver_webhook(message_id)
    wait_until(lambda: len(graph.sent) == 1, 15, "the send to reach Graph")
    outbound = [e for e in agent.bridge.events() if e.direction == "outbound"]
    wait_until(
        lambda: next(e for e in agent.bridge.events() if e.direction == "outbound").unconfirmed,
        10,
        "the reply to be unconfirmed",
    )
    assert outbound

    wamid = graph.sent[0].message_id
    agent.bridge.post(status_webhook(PHONE_NUMBER_ID, wamid, CUSTOMER, "delivered"))

    agent.wait_status(message_id, "delivered")
    time.sleep(4)  # past the confirmation window: nothing is sent again
    assert len(_sends(graph)) == 1
    [event] = [e for e in agent.bridge.events() if e.direction == "outbound"]
    assert event.status == "delivered"


def test_our_sent_tick_landing_after_whatsapps_delivered_leaves_the_message_delivered(
    agent: AgentSide, graph: FakeGraph
) -> None:
    """Our ``sent`` PATCH is slow to land; WhatsApp's ``delivered`` overtakes it. Chatwoot must
    end at ``delivered`` (app.relay.message_map.apply_tick), not at the tick that landed last."""
    message_id = agent.reply("Racing ticks")
    patches = rf"/messages/{message_id}$"
    agent.chatwoot.hold_next("PATCH", patches, 1.5)

    agent.deliver_webhook(message_id)
    wait_sent(graph, 1)
    wait_until(lambda: _status_patches(agent, message_id) == ["sent"], 15, "our sent tick")
    delivered = status_webhook(PHONE_NUMBER_ID, graph.sent[0].message_id, CUSTOMER, "delivered")
    agent.bridge.post(delivered)

    wait_until(
        lambda: all(e.status == "delivered" for e in agent.bridge.events()),
        15,
        "the reply and its status to be delivered",
    )
    assert agent.message(message_id)["status"] == "delivered"
    # ours (held), WhatsApp's (landed first), and ours again once ours had landed
    assert _status_patches(agent, message_id) == ["sent", "delivered", "delivered"]


def _status_patches(agent: AgentSide, message_id: int) -> list[str]:
    """Statuses of the PATCHes that reached Chatwoot (answered or still held)."""
    return [
        str(call.json["status"])
        for call in list(agent.chatwoot.calls)
        if call.method == "PATCH"
        and call.path.endswith(f"/messages/{message_id}")
        and isinstance(call.json, dict)
    ]


def test_unconfirmed_send_without_any_evidence_is_sent_again_after_the_window(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.fail_next("POST", r"/messages$", 502, body="<html>Bad Gateway</html>", times=1)
    message_id = agent.reply("Second try")

    agent.deliver_webhook(message_id)

    agent.wait_status(message_id, "sent", timeout=20)
    assert len(_sends(graph)) == 2
    assert len(graph.sent) == 1


def test_throughput_limit_130429_is_retried_and_sent_once(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.fail_next("POST", r"/messages$", 400, 130429, times=3)
    message_id = agent.reply("Busy moment")

    agent.deliver_webhook(message_id)

    agent.wait_status(message_id, "sent", timeout=20)
    assert len(graph.sent) == 1
