"""Message templates end to end: synced from the fake Graph into the fake Chatwoot's inbox (at
``set``, again when Meta reports a status change), and an agent's template sent to WhatsApp in
exactly Meta's shape; unknown templates, gateways and the closed 24-hour window fail with a
reason the agent can act on."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.config import Settings, use_settings
from app.integrations.whatsapp.hints import WINDOW_CLOSED_HINT
from app.management import templates as service
from app.store.db import database
from app.store.models import STATE_ACTIVE, ChatwootIntegration
from tests.conftest import SecretLogCapture
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway
from tests.fakes.graph import FakeGraph, status_webhook
from tests.reference import DATA
from tests.relay.bridge import (
    APP_SECRET,
    CLOUD_ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    CloudBridge,
    create_with_chatwoot,
    make_gateway_bridge,
    wait_until,
)
from tests.relay.outbound_bridge import CUSTOMER, AgentSide, open_chat
from tests.template_catalog import USABLE, WABA_ID, all_templates, as_chatwoot_stores

TEMPLATES = r"/message_templates$"
PAGE_SIZE = 3  # ten templates: four pages
REFERENCE_2026 = DATA / "whatsapp_cloud" / "2026"
SEND_TEMPLATE = REFERENCE_2026 / "requests" / "send_template.json"
STATUS_UPDATE = REFERENCE_2026 / "template_status_update_approved.json"
PICKED = {
    "name": "order_ready_pickup",
    "category": "UTILITY",
    "language": "en_US",
    "processed_params": {
        # as the picker fills them (in the order the agent typed): sent by variable number
        "body": {"2": "A-10427", "1": "Sheena"},
        "header": {
            "media_url": "https://cdn.example.com/wootbridge/pickup-banner.jpg",
            "media_type": "image",
        },
        "buttons": [{"type": "url", "parameter": "A-10427"}],
    },
}
RENDERED = "Hi Sheena, your order A-10427 is ready for pickup."


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    """A short debounce, so a burst of status webhooks is answered within the test."""
    current = replace(settings, template_sync_debounce_seconds=1.0)
    use_settings(current)
    yield current


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, CLOUD_ACCESS_TOKEN)
    graph_server.max_template_page_size = PAGE_SIZE
    graph_server.add_business_account(
        WABA_ID, CLOUD_ACCESS_TOKEN, all_templates(), (PHONE_NUMBER_ID,)
    )
    yield graph_server
    assert graph_server.schema_errors == []


def make_bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph
) -> CloudBridge:
    fields: dict[str, Any] = {
        "name": "suporte",
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": CLOUD_ACCESS_TOKEN,
        "cloudAppSecret": APP_SECRET,
        "cloudApiBaseUrl": graph.base_url,
        "cloudBusinessAccountId": WABA_ID,
        "chatwootSignMessages": False,
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


def inbox_attributes(bridge: CloudBridge) -> dict[str, Any]:
    attributes: dict[str, Any] = bridge.chatwoot.inboxes[bridge.inbox_id]["additional_attributes"]
    return attributes


def template_names(bridge: CloudBridge) -> list[str]:
    return [t["name"] for t in inbox_attributes(bridge).get("message_templates", [])]


def wait_synced(bridge: CloudBridge) -> ChatwootIntegration:
    wait_until(lambda: bridge.integration().templates_synced_at is not None, 15, "template sync")
    return bridge.integration()


def template_reads(graph: FakeGraph) -> int:
    return sum(1 for c in graph.calls if c.method == "GET" and c.path.endswith("_templates"))


def inbox_patches(chatwoot: FakeChatwoot, bridge: CloudBridge) -> list[Any]:
    return [
        c.json
        for c in chatwoot.calls
        if c.method == "PATCH" and c.path.endswith(f"/inboxes/{bridge.inbox_id}")
    ]


@pytest.fixture
def bridge(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> CloudBridge:
    made = make_bridge(client, account_token, chatwoot, graph)
    wait_synced(made)
    return made


@pytest.fixture
def agent(bridge: CloudBridge) -> AgentSide:
    return open_chat(bridge)


def send_picked(agent: AgentSide, picked: dict[str, Any], content: str = RENDERED) -> int:
    """The agent sends a template from Chatwoot's picker; Chatwoot's webhook reaches us."""
    message_id = hooks.agent_reply(
        agent.chatwoot,
        agent.account_id,
        agent.agent_token,
        agent.conversation_id,
        content,
        template_params=copy.deepcopy(picked),
    )
    assert agent.deliver_webhook(message_id).json() == {"stored": 1}
    return message_id


# ---- the sync ----


def test_set_syncs_the_usable_templates_into_the_inbox_page_by_page(
    bridge: CloudBridge, graph: FakeGraph, chatwoot: FakeChatwoot
) -> None:
    assert inbox_attributes(bridge) == {
        "message_templates": [as_chatwoot_stores(t) for t in USABLE],
        "agent_reply_time_window": 24,
    }
    assert template_reads(graph) == 4  # every page, following paging.next
    integration = bridge.integration()
    assert integration.templates_error == ""
    assert json.loads(integration.templates_index or "")["complete"] is True
    assert integration.state == STATE_ACTIVE


def test_a_sync_keeps_the_inbox_s_other_attributes_and_writes_nothing_unchanged(
    bridge: CloudBridge, graph: FakeGraph, chatwoot: FakeChatwoot
) -> None:
    with chatwoot._lock:
        attributes = inbox_attributes(bridge)
        attributes["agent_reply_time_window_message"] = "Use a template after 24 h"
        attributes["message_templates"] = attributes["message_templates"][:1]
    before = len(inbox_patches(chatwoot, bridge))

    with database.connection_context():
        first = service.sync_integration(bridge.integration_id)
        second = service.sync_integration(bridge.integration_id)

    assert (first.outcome, first.templates, second.outcome) == ("synced", 4, "unchanged")
    assert inbox_attributes(bridge) == {
        "message_templates": [as_chatwoot_stores(t) for t in USABLE],
        "agent_reply_time_window": 24,
        "agent_reply_time_window_message": "Use a template after 24 h",
    }
    assert len(inbox_patches(chatwoot, bridge)) == before + 1


def test_a_burst_of_status_webhooks_syncs_once(
    bridge: CloudBridge, graph: FakeGraph, chatwoot: FakeChatwoot
) -> None:
    approved = copy.deepcopy(USABLE[1])
    approved.update(id="3001", name="back_in_stock")
    with graph._lock:
        graph.business_accounts[WABA_ID].templates.append(approved)
    reads = template_reads(graph)
    body = json.loads(STATUS_UPDATE.read_text())

    answers = [bridge.post(body).status_code for _ in range(5)]

    assert answers == [200] * 5
    wait_until(lambda: "back_in_stock" in template_names(bridge), 15, "the resync")
    time.sleep(2.0)  # a second sync would have started by now
    assert template_reads(graph) - reads == 4  # one sync: 11 templates, four pages
    assert template_names(bridge) == [
        "back_in_stock",
        "coupon_offer",
        "hello_world",
        "order_ready_pickup",
        "order_ready_pickup",
    ]


def test_a_status_webhook_of_another_business_account_syncs_nothing(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    reads = template_reads(graph)
    body = json.loads(STATUS_UPDATE.read_text())
    body["entry"][0]["id"] = "987654321"

    assert bridge.post(body).status_code == 200

    time.sleep(2.0)
    assert template_reads(graph) == reads


def test_a_token_without_template_access_never_stops_relaying(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
    all_logs: SecretLogCapture,
) -> None:
    """The sync fails (403, #10): recorded, the integration stays active, replies still go;
    with no synced list, a template Meta does not know fails with Meta's 132001."""
    graph.fail_next("GET", TEMPLATES, 403, body=10, times=5)
    made = make_bridge(client, account_token, chatwoot, graph)
    wait_until(lambda: made.integration().templates_error != "", 15, "the failed sync")
    integration = made.integration()
    assert integration.state == STATE_ACTIVE and integration.templates_synced_at is None
    assert integration.templates_error.startswith("reading WhatsApp templates: ")
    assert CLOUD_ACCESS_TOKEN not in integration.templates_error
    agent = open_chat(made)

    text_id = agent.reply("Still here")
    agent.deliver_webhook(text_id)
    agent.wait_status(text_id, "sent")
    rejected = send_picked(agent, {**PICKED, "name": "spring_sale"}, "Spring sale!")

    failed = agent.wait_status(rejected, "failed")
    assert failed["external_error"] == "132001: Template name does not exist in the translation"
    assert any("template sync of" in line for line in all_logs.lines)
    assert not [line for line in all_logs.lines if CLOUD_ACCESS_TOKEN in line]


# ---- sending ----


def test_a_template_reply_is_sent_in_exactly_metas_shape(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = send_picked(agent, PICKED)

    agent.wait_status(message_id, "sent")
    [sent] = graph.sent
    assert sent.body == json.loads(SEND_TEMPLATE.read_text())


def test_a_named_template_with_a_copy_code_button(agent: AgentSide, graph: FakeGraph) -> None:
    picked = {
        "name": "coupon_offer",
        "category": "MARKETING",
        "language": "en_US",
        "processed_params": {
            "body": {"customer_name": "Sheena", "discount": "20%"},
            # the picker fills the coupon at its button's index (1): JSON gives null before it
            "buttons": [None, {"type": "copy_code", "parameter": "SAVE20"}],
        },
    }

    message_id = send_picked(agent, picked, "Hi Sheena, here is 20% off.")

    agent.wait_status(message_id, "sent")
    [sent] = graph.sent
    assert sent.body["template"] == {
        "name": "coupon_offer",
        "language": {"policy": "deterministic", "code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Sheena", "parameter_name": "customer_name"},
                    {"type": "text", "text": "20%", "parameter_name": "discount"},
                ],
            },
            {
                "type": "button",
                "sub_type": "copy_code",
                "index": "1",
                "parameters": [{"type": "coupon_code", "coupon_code": "SAVE20"}],
            },
        ],
    }


def test_an_unknown_template_fails_with_the_reason_and_is_not_sent(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = send_picked(agent, {**PICKED, "name": "spring_sale"}, "Spring sale!")

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"] == (
        "template spring_sale (en_US) is not among the approved templates of this WhatsApp "
        "Business Account"
    )
    assert graph.sent == []


def test_a_template_in_another_language_is_unknown_too(agent: AgentSide, graph: FakeGraph) -> None:
    message_id = send_picked(agent, {**PICKED, "language": "es_MX"})

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"].startswith("template order_ready_pickup (es_MX) is not")
    assert graph.sent == []


# ---- the closed 24-hour window ----


def test_a_free_text_reply_refused_with_131047_tells_the_agent_to_use_a_template(
    agent: AgentSide, graph: FakeGraph
) -> None:
    graph.fail_recipient(CUSTOMER, 400, 131047)
    message_id = agent.reply("Are you still there?")

    agent.deliver_webhook(message_id)

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"] == "24-hour window closed — reply with a template"
    assert agent.wait_event(message_id, "failed").last_error == WINDOW_CLOSED_HINT


def test_a_failed_status_131047_tells_the_agent_to_use_a_template(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply("Are you still there?")
    agent.deliver_webhook(message_id)
    agent.wait_status(message_id, "sent")
    reference = json.loads((REFERENCE_2026 / "status_failed_no_contacts_131047.json").read_text())
    status = reference["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["id"] = graph.sent[0].message_id

    assert agent.bridge.post(reference).status_code == 200

    failed = agent.wait_status(message_id, "failed")
    assert failed["external_error"] == "24-hour window closed — reply with a template"


def test_the_status_helper_failure_reaches_chatwoot_as_the_hint(
    agent: AgentSide, graph: FakeGraph
) -> None:
    message_id = agent.reply("One more")
    agent.deliver_webhook(message_id)
    agent.wait_status(message_id, "sent")
    body = status_webhook(
        PHONE_NUMBER_ID, graph.sent[0].message_id, CUSTOMER, "failed", error_code=131047
    )

    agent.bridge.post(body)

    assert agent.wait_status(message_id, "failed")["external_error"] == WINDOW_CLOSED_HINT


# ---- WhatsApp Web ----


def test_a_template_on_a_gateway_instance_fails_with_the_reason(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    with FakeGateway() as gateway:
        gateway.add_instance("vendas", "gw-token")
        bridge = make_gateway_bridge(client, account_token, chatwoot, gateway_url=gateway.base_url)
        bridge.post_event("message.exchange", samples.text_data(text="Oi", message_id="IN1"))
        [first] = bridge.wait_for_messages(1)
        conversation = chatwoot.conversations[first["conversation_id"]]
        account_id = int(conversation["account_id"])
        token = chatwoot.add_user("Jane Agent", {account_id: "agent"})
        agent = AgentSide(bridge, account_id, token, int(conversation["display_id"]))

        message_id = send_picked(agent, PICKED)

        failed = agent.wait_status(message_id, "failed")
        assert failed["external_error"].startswith(
            "WhatsApp templates can only be sent through the WhatsApp Cloud API"
        )
        assert gateway.sent == []
