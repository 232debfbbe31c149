"""Profiles follow the customer, for real: Cloud webhooks through the TestClient, a Dramatiq
worker on real Redis and the fake Chatwoot.

A changed WhatsApp profile name renames the Chatwoot contact while its name is still the one
Wootbridge gave it, never after an agent renamed it; the username goes into the contact's
attributes, merged; and an unchanged profile costs no Chatwoot call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes.chatwoot import FakeChatwoot, RecordedCall
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import CloudBridge, make_cloud_bridge, text_body

CUSTOMER = "16505551234"


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, worker: Worker
) -> CloudBridge:
    return make_cloud_bridge(
        client, account_token, chatwoot, graph_url=graph.base_url, chatwootSignMessages=False
    )


class Customer:
    """The customer writing, numbering their messages, with the profile they have now."""

    def __init__(self, bridge: CloudBridge) -> None:
        self.bridge = bridge
        self.sent = 0

    def says(self, text: str, name: str | None, username: str | None = None) -> None:
        self.sent += 1
        body = text_body(CUSTOMER, f"wamid.profile.{self.sent}", text, name=name or "")
        profile: dict[str, Any] = {}
        if name is not None:
            profile["name"] = name
        if username is not None:
            profile["username"] = username
        body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"] = profile
        assert self.bridge.post(body).status_code == 200
        self.bridge.wait_for_events("delivered", self.sent)


def contact(bridge: CloudBridge) -> dict[str, Any]:
    [found] = bridge.chatwoot.contacts.values()
    return found


def contact_calls(chatwoot: FakeChatwoot) -> list[RecordedCall]:
    """Reads and updates of one contact (not the creation, not the search)."""
    return [
        c
        for c in list(chatwoot.calls)
        if c.method in ("GET", "PUT")
        and "/contacts/" in c.path
        and c.path.rstrip("/").split("/")[-1].isdigit()
    ]


def updates(chatwoot: FakeChatwoot) -> list[Any]:
    return [c.json for c in contact_calls(chatwoot) if c.method == "PUT"]


def agent_edits(bridge: CloudBridge, fields: dict[str, Any]) -> None:
    """An agent edits the contact in Chatwoot (its own PUT, merged like ours)."""
    account_id = int(bridge.integration().chatwoot_account_id)
    token = bridge.chatwoot.add_user("Jane Agent", {account_id: "agent"})
    response = httpx.put(
        f"{bridge.chatwoot.base_url}/api/v1/accounts/{account_id}/contacts/{contact(bridge)['id']}",
        json=fields,
        headers={"api_access_token": token},
    )
    assert response.status_code == 200, response.text
    bridge.chatwoot.calls.clear()  # what follows is ours


def test_a_new_profile_name_renames_the_contact_we_named(bridge: CloudBridge) -> None:
    customer = Customer(bridge)
    customer.says("Hi", "Maria")
    assert contact(bridge)["name"] == "Maria"

    customer.says("It's me again", "Maria Silva")

    assert contact(bridge)["name"] == "Maria Silva"
    assert updates(bridge.chatwoot) == [{"name": "Maria Silva"}]
    customer.says("And again", "Maria Silva Santos")
    assert contact(bridge)["name"] == "Maria Silva Santos"


def test_an_unchanged_profile_costs_no_chatwoot_call(bridge: CloudBridge) -> None:
    customer = Customer(bridge)
    customer.says("Hi", "Maria", "maria.s")
    bridge.chatwoot.calls.clear()

    for text in ("one", "two", "three"):
        customer.says(text, "Maria", "maria.s")

    assert contact_calls(bridge.chatwoot) == []
    customer.says("new name", "Maria S.", "maria.s")
    assert [c.method for c in contact_calls(bridge.chatwoot)] == ["GET", "PUT"]  # one change


def test_an_agents_rename_is_never_overwritten(bridge: CloudBridge) -> None:
    customer = Customer(bridge)
    customer.says("Hi", "Maria")
    agent_edits(bridge, {"name": "Maria (VIP, Lisbon store)"})

    customer.says("New phone, new name", "Mary")
    customer.says("And another", "Mary S.")

    assert contact(bridge)["name"] == "Maria (VIP, Lisbon store)"
    assert updates(bridge.chatwoot) == []
    assert [c.method for c in contact_calls(bridge.chatwoot)] == ["GET", "GET"]  # per change only


def test_a_message_without_a_profile_name_renames_nothing(bridge: CloudBridge) -> None:
    customer = Customer(bridge)
    customer.says("Hi", "Maria")

    customer.says("no profile", None)

    assert contact(bridge)["name"] == "Maria"
    assert updates(bridge.chatwoot) == []


def test_the_username_goes_into_the_attributes_merged(bridge: CloudBridge) -> None:
    customer = Customer(bridge)
    customer.says("Hi", "Maria")
    assert "social_whatsapp_user_name" not in contact(bridge)["additional_attributes"]
    agent_edits(
        bridge,
        {
            "additional_attributes": {
                "company_name": "Acme",
                "social_profiles": {"instagram": "maria.insta"},
            }
        },
    )

    customer.says("I have a username now", "Maria", "maria.s")

    assert contact(bridge)["additional_attributes"] == {
        "company_name": "Acme",
        "social_profiles": {"instagram": "maria.insta", "whatsapp": "maria.s"},
        "social_whatsapp_user_name": "maria.s",
    }
    customer.says("Changed it", "Maria", "maria.silva")
    attributes = contact(bridge)["additional_attributes"]
    assert attributes["social_profiles"] == {"instagram": "maria.insta", "whatsapp": "maria.silva"}
    assert attributes["social_whatsapp_user_name"] == "maria.silva"
    assert attributes["company_name"] == "Acme"
    assert contact(bridge)["name"] == "Maria"
    assert len(updates(bridge.chatwoot)) == 2


def test_name_and_username_change_together_in_one_update(bridge: CloudBridge) -> None:
    customer = Customer(bridge)
    customer.says("Hi", "Maria", "maria.s")

    customer.says("Both changed", "Maria Silva", "maria.silva")

    assert updates(bridge.chatwoot) == [
        {
            "name": "Maria Silva",
            "additional_attributes": {
                "social_profiles": {"whatsapp": "maria.silva"},
                "social_whatsapp_user_name": "maria.silva",
            },
        }
    ]


def test_a_contact_an_agent_created_is_adopted_only_when_it_bears_the_profile_name(
    bridge: CloudBridge,
) -> None:
    """A contact Chatwoot already had (an agent made it; Wootbridge links it): renamed only if
    its name is the customer's profile name, never if an agent named it otherwise."""
    account_id = int(bridge.integration().chatwoot_account_id)
    token = bridge.chatwoot.add_user("Admin", {account_id: "administrator"})
    created = httpx.post(
        f"{bridge.chatwoot.base_url}/api/v1/accounts/{account_id}/contacts",
        json={"inbox_id": bridge.inbox_id, "name": "Dona Maria", "phone_number": f"+{CUSTOMER}"},
        headers={"api_access_token": token},
    )
    assert created.status_code == 200, created.text
    customer = Customer(bridge)

    customer.says("Hi", "Maria")
    customer.says("Hi again", "Maria Silva")

    [found] = [c for c in bridge.chatwoot.contacts.values() if c["phone_number"]]
    assert found["name"] == "Dona Maria"
    assert updates(bridge.chatwoot) == []


def test_a_linked_contact_bearing_the_profile_name_follows_it(bridge: CloudBridge) -> None:
    account_id = int(bridge.integration().chatwoot_account_id)
    token = bridge.chatwoot.add_user("Admin", {account_id: "administrator"})
    created = httpx.post(
        f"{bridge.chatwoot.base_url}/api/v1/accounts/{account_id}/contacts",
        json={"inbox_id": bridge.inbox_id, "name": "Maria", "phone_number": f"+{CUSTOMER}"},
        headers={"api_access_token": token},
    )
    assert created.status_code == 200, created.text
    customer = Customer(bridge)

    customer.says("Hi", "Maria")
    customer.says("New name", "Maria Silva")

    assert contact(bridge)["name"] == "Maria Silva"
    assert updates(bridge.chatwoot) == [{"name": "Maria Silva"}]


def test_a_refused_update_never_costs_the_message(bridge: CloudBridge) -> None:
    customer = Customer(bridge)
    customer.says("Hi", "Maria")
    bridge.chatwoot.fail_next("PUT", r"/contacts/\d+$", 422)

    customer.says("Renamed", "Maria Silva")

    assert [m["content"] for m in bridge.messages()] == ["Hi", "Renamed"]
    assert contact(bridge)["name"] == "Maria"
    customer.says("Same profile", "Maria Silva")  # refused once: not tried on every message
    assert [c.method for c in contact_calls(bridge.chatwoot)] == ["GET", "PUT"]
