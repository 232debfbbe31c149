"""The fakes' typing and read-receipt endpoints (issue 11), over real HTTP: the gateway's
``chat/presence`` and ``chat/markRead``, and Chatwoot's public ``toggle_typing``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes import gateway_samples as gs
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway

TOKEN = "gw-token-suporte"
PRESENCE = "/api/chat/presence/suporte"
READ = "/api/chat/markRead/suporte"
SOURCE_ID = "4915112345678"


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


@pytest.fixture
def gw(gateway: FakeGateway) -> Iterator[httpx.Client]:
    gateway.reset()
    gateway.add_instance("suporte", TOKEN)
    with httpx.Client(base_url=gateway.base_url, headers={"token": TOKEN}, timeout=5) as c:
        yield c


@pytest.fixture(scope="module")
def chatwoot() -> Iterator[FakeChatwoot]:
    with FakeChatwoot() as fake:
        yield fake


def message(response: httpx.Response) -> str:
    text: str = response.json()["error"]["message"]
    return text


# ---- gateway ----


def test_presence_is_recorded_with_ryzeapis_answer(gw: httpx.Client, gateway: FakeGateway) -> None:
    response = gw.post(PRESENCE, json={"number": gs.CUSTOMER, "state": "typing", "duration": 20})

    assert response.status_code == 200
    assert response.json()["success"] is True
    [call] = gateway.presences
    assert (call.instance, call.number, call.body["state"]) == ("suporte", gs.CUSTOMER, "typing")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"state": "typing"}, "Number is required"),
        ({"number": gs.CUSTOMER}, "State is required. Use 'typing', 'recording', or 'pause'"),
        ({"number": gs.CUSTOMER, "state": "dancing"}, "Invalid state"),
        ({"number": "abc", "state": "pause"}, "Invalid number format"),
    ],
)
def test_presence_refuses_what_ryzeapi_refuses(
    gw: httpx.Client, gateway: FakeGateway, body: dict[str, str], error: str
) -> None:
    response = gw.post(PRESENCE, json=body)

    assert response.status_code == 400
    assert message(response).startswith(error)
    assert gateway.presences == []


def test_mark_read_needs_the_sender_in_groups(gw: httpx.Client, gateway: FakeGateway) -> None:
    refused = gw.post(READ, json={"messageId": "3EB0AA", "number": gs.GROUP})
    group = {"messageId": "3EB0AA", "number": gs.GROUP, "sender": f"{gs.CUSTOMER}@s.whatsapp.net"}
    accepted = gw.post(READ, json=group)
    direct = gw.post(READ, json={"messageId": "3EB0BB", "number": gs.CUSTOMER})

    assert (refused.status_code, message(refused)) == (400, "sender is required for group messages")
    assert accepted.status_code == direct.status_code == 200
    assert direct.json()["message_id"] == "3EB0BB"
    assert [r.body["messageId"] for r in gateway.reads] == ["3EB0AA", "3EB0BB"]


def test_chat_endpoints_need_the_instance_token(gateway: FakeGateway) -> None:
    gateway.reset()
    gateway.add_instance("suporte", TOKEN)
    answer = httpx.post(gateway.base_url + READ, json={"messageId": "x", "number": gs.CUSTOMER})
    assert answer.status_code == 401
    assert gateway.reads == []


# ---- Chatwoot ----


def test_public_toggle_typing_runs_as_the_contact(chatwoot: FakeChatwoot) -> None:
    chatwoot.reset()
    account_id = chatwoot.add_account("Acme")
    token = chatwoot.add_user("Ada", {account_id: "administrator"})
    with httpx.Client(
        base_url=f"{chatwoot.base_url}/api/v1/accounts/{account_id}",
        headers={"api_access_token": token},
        timeout=5,
    ) as admin:
        inbox = admin.post("/inboxes", json={"name": "WA", "channel": {"type": "api"}}).json()
        contact = {"inbox_id": inbox["id"], "name": "Maria", "source_id": SOURCE_ID}
        assert admin.post("/contacts", json=contact).status_code == 200
        conv = admin.post("/conversations", json={"source_id": SOURCE_ID}).json()
    base = f"{chatwoot.base_url}/public/api/v1/inboxes/{inbox['inbox_identifier']}"
    path = f"{base}/contacts/{SOURCE_ID}/conversations/{conv['id']}/toggle_typing"

    on = httpx.post(path, json={"typing_status": "on"})
    off = httpx.post(path, json={"typing_status": "off"})
    elsewhere = path.replace(inbox["inbox_identifier"], "nope")
    unknown_inbox = httpx.post(elsewhere, json={"typing_status": "on"})
    unknown_contact = httpx.post(path.replace(SOURCE_ID, "4900"), json={"typing_status": "on"})
    wrong = httpx.post(path, json={"typing_status": "maybe"})

    assert (on.status_code, off.status_code, on.content) == (200, 200, b"")
    assert (unknown_inbox.status_code, unknown_contact.status_code) == (404, 404)
    assert [e["event"] for e in chatwoot.typing_events] == [
        "conversation_typing_on",
        "conversation_typing_off",
    ]
    assert chatwoot.typing_events[0]["user"]["type"] == "contact"
    assert wrong.status_code == 422  # outside our description of Chatwoot's API
    assert len(chatwoot.schema_errors) == 1
    chatwoot.schema_errors.clear()
