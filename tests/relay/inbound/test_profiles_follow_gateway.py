"""Profiles follow the customer on a gateway too: the sender's WhatsApp name renames the
Chatwoot contact while its name is the one Wootbridge gave it, never after an agent's edit
(tests/relay/inbound/test_profiles_follow.py holds the Cloud API's cases)."""

from __future__ import annotations

from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.relay.bridge import GatewayBridge, make_gateway_bridge
from tests.relay.inbound.test_profiles_follow import agent_edits, contact, updates


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> GatewayBridge:
    return make_gateway_bridge(client, account_token, chatwoot)


class GatewayCustomer:
    """The customer writing through the gateway under the WhatsApp name they have now."""

    def __init__(self, bridge: GatewayBridge) -> None:
        self.bridge = bridge
        self.sent = 0

    def says(self, text: str, name: str) -> None:
        self.sent += 1
        person: dict[str, Any] = {
            "jid": f"{samples.CUSTOMER}@s.whatsapp.net",
            "lid": samples.CUSTOMER_LID,
            "name": name,
        }
        data = samples.text_data(
            text=text,
            message_id=f"3EB0PROFILE{self.sent:04d}",
            chat={**person, "type": "private"},
            sender=person,
        )
        response = self.bridge.post_event("message.exchange", data)
        assert response.status_code == 200, response.text
        self.bridge.wait_for_events("delivered", self.sent)


def test_a_new_whatsapp_name_renames_the_contact_we_named(bridge: GatewayBridge) -> None:
    customer = GatewayCustomer(bridge)
    customer.says("Olá", "João Silva")
    assert contact(bridge)["name"] == "João Silva"

    customer.says("Sou eu de novo", "João S.")

    assert contact(bridge)["name"] == "João S."
    assert updates(bridge.chatwoot) == [{"name": "João S."}]


def test_an_agents_rename_is_never_overwritten(bridge: GatewayBridge) -> None:
    customer = GatewayCustomer(bridge)
    customer.says("Olá", "João Silva")
    agent_edits(bridge, {"name": "João (cliente VIP)"})

    customer.says("Nome novo", "Jo")

    assert contact(bridge)["name"] == "João (cliente VIP)"
    assert updates(bridge.chatwoot) == []
