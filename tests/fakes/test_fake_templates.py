"""The fakes' template endpoints: Graph's paged template list and its 132001 check, and
Chatwoot's API-channel ``additional_attributes`` (replaced as a whole, as Rails permits them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.template_catalog import WABA_ID, all_templates

TOKEN = "EAAG-fake-templates"
PHONE_ID = "106540352242922"


HTTP = httpx.Client(timeout=5.0)  # one client: each new one loads the CA bundle


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        fake.add_phone_number(PHONE_ID, TOKEN)
        fake.add_business_account(WABA_ID, TOKEN, all_templates(), (PHONE_ID,))
        yield fake


def get(url: str, token: str = TOKEN, **params: Any) -> httpx.Response:
    """(httpx drops a URL's own query when given ``params={}``: only pass them when set.)"""
    return HTTP.get(url, params=params or None, headers={"Authorization": f"Bearer {token}"})


def test_graph_pages_the_template_list_with_absolute_next_urls(graph: FakeGraph) -> None:
    graph.max_template_page_size = 4
    url: str | None = f"{graph.base_url}/{WABA_ID}/message_templates"
    pages = []
    while url is not None:
        body = get(url).json()
        pages.append(body)
        url = body["paging"].get("next")
        assert url is None or url.startswith(graph.base_url + "/")

    assert [len(p["data"]) for p in pages] == [4, 4, 2]
    assert [t for p in pages for t in p["data"]] == all_templates()
    assert all(set(p["paging"]["cursors"]) == {"before", "after"} for p in pages)


def test_graph_honours_a_smaller_limit_and_refuses_strangers(graph: FakeGraph) -> None:
    first = get(f"{graph.base_url}/{WABA_ID}/message_templates", limit="3").json()
    assert len(first["data"]) == 3 and "limit=3" in first["paging"]["next"]

    unknown = get(f"{graph.base_url}/{WABA_ID}/message_templates", token="EAAG-nobody")
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == 190
    other = get(f"{graph.base_url}/555/message_templates")
    assert other.status_code == 400 and other.json()["error"]["error_subcode"] == 33


def test_graph_refuses_a_template_the_account_has_not_approved(graph: FakeGraph) -> None:
    def send(name: str) -> httpx.Response:
        body = {
            "messaging_product": "whatsapp",
            "to": "16505551234",
            "type": "template",
            "template": {"name": name, "language": {"policy": "deterministic", "code": "en_US"}},
        }
        return HTTP.post(
            f"{graph.base_url}/{PHONE_ID}/messages",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )

    assert send("hello_world").status_code == 200
    refused = send("spring_sale")  # REJECTED
    assert refused.status_code == 400 and refused.json()["error"]["code"] == 132001
    assert len(graph.sent) == 1 and graph.schema_errors == []


@pytest.fixture
def inbox(chatwoot: FakeChatwoot) -> tuple[str, dict[str, str]]:
    account_id = chatwoot.add_account()
    token = chatwoot.add_user("Ada", {account_id: "administrator"})
    headers = {"api_access_token": token}
    created = HTTP.post(
        f"{chatwoot.base_url}/api/v1/accounts/{account_id}/inboxes",
        json={"name": "WhatsApp", "channel": {"type": "api", "webhook_url": "https://x.test/h"}},
        headers=headers,
    ).json()
    return f"{chatwoot.base_url}/api/v1/accounts/{account_id}/inboxes/{created['id']}", headers


def test_chatwoot_replaces_the_channel_attributes_as_rails_permits_them(
    chatwoot: FakeChatwoot, inbox: tuple[str, dict[str, str]]
) -> None:
    url, headers = inbox
    template = {
        "name": "t",
        "language": "en",
        "status": "APPROVED",
        "components": [{"type": "BODY", "example": {"body_text": [["a", "b"]]}}],
    }
    first = {"other": "kept?", "agent_reply_time_window": 24}
    assert HTTP.patch(url, json={"channel": {"additional_attributes": first}}, headers=headers)

    second = {"message_templates": [template], "agent_reply_time_window": "24"}
    answer = HTTP.patch(url, json={"channel": {"additional_attributes": second}}, headers=headers)

    stored = {
        "message_templates": [
            {**template, "components": [{"type": "BODY", "example": {"body_text": []}}]}
        ],
        "agent_reply_time_window": "24",
    }
    assert answer.status_code == 200 and answer.json()["additional_attributes"] == stored
    assert HTTP.get(url, headers=headers).json()["additional_attributes"] == stored  # no "other"


def test_chatwoot_refuses_a_reply_window_that_is_not_positive(
    chatwoot: FakeChatwoot, inbox: tuple[str, dict[str, str]]
) -> None:
    url, headers = inbox
    bad = {"channel": {"additional_attributes": {"agent_reply_time_window": "0"}}}

    answer = HTTP.patch(url, json=bad, headers=headers)

    assert answer.status_code == 422
    assert answer.json()["message"] == (
        "Agent reply time window agent_reply_time_window must be greater than 0"
    )
