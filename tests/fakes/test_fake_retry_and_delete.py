"""The fakes' side of Chatwoot's Retry button and of deleting a message: the ``message_updated``
bodies the fake Chatwoot gives for an agent's Retry and delete (and for our own ticks), and the
fake gateway's ``DELETE /api/chat/delete/:instance``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.relay.outbound.chatwoot_webhook import (
    Ignored,
    MessageDeleted,
    RetryRequested,
    parse_chatwoot_webhook,
)
from tests.fakes import gateway_samples as gs
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.chatwoot_webhooks import (
    DELETED_CONTENT,
    agent_reply,
    delete_message,
    message_updated_body,
    retry_message,
)
from tests.fakes.gateway import FakeGateway

PHONE = "+4915112345678"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
TOKEN = "gw-token-suporte"


class Chat:
    """An API inbox with one conversation, an agent's token, and a way to PATCH ticks."""

    def __init__(self, fake: FakeChatwoot) -> None:
        self.fake = fake
        self.account_id = fake.add_account("Acme Support")
        self.token = fake.add_user("Jane Agent", {self.account_id: "administrator"})
        inbox = self.post("/inboxes", {"name": "WhatsApp Bridge", "channel": {"type": "api"}})
        contact = {"inbox_id": inbox["id"], "name": "Maria", "phone_number": PHONE}
        self.post("/contacts", {**contact, "source_id": PHONE[1:]})
        conversation = self.post(
            "/conversations", {"source_id": PHONE[1:], "inbox_id": inbox["id"]}
        )
        self.conversation_id = int(conversation["id"])

    def url(self, suffix: str) -> str:
        return f"{self.fake.base_url}/api/v1/accounts/{self.account_id}{suffix}"

    def post(self, suffix: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(self.url(suffix), json=body, headers={"api_access_token": self.token})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def reply(self, text: str, **kwargs: Any) -> int:
        return agent_reply(
            self.fake, self.account_id, self.token, self.conversation_id, text, **kwargs
        )

    def tick(self, message_id: int, status: str, error: str | None = None) -> None:
        body: dict[str, Any] = {"status": status}
        if error is not None:
            body["external_error"] = error
        url = self.url(f"/conversations/{self.conversation_id}/messages/{message_id}")
        r = httpx.patch(url, json=body, headers={"api_access_token": self.token})
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatwoot]:
    with FakeChatwoot() as fake:
        yield fake


@pytest.fixture
def chat(server: FakeChatwoot) -> Iterator[Chat]:
    server.reset()
    yield Chat(server)
    assert server.schema_errors == []


# ---- Chatwoot: Retry ----
def test_retry_of_a_failed_reply_posts_two_updates_clearing_the_error(chat: Chat) -> None:
    message_id = chat.reply("Your order ships today")
    chat.tick(message_id, "failed", "131047: Re-engagement message")

    bodies = retry_message(chat.fake, message_id)

    assert [body["event"] for body in bodies] == ["message_updated", "message_updated"]
    first, second = bodies
    assert first["content_attributes"] == {"external_error": None}
    assert second["content_attributes"] == {}
    for body in bodies:
        assert (body["id"], body["message_type"], body["private"]) == (
            message_id,
            "outgoing",
            False,
        )
        assert "status" not in body  # Message#webhook_data has none
        [pushed] = body["conversation"]["messages"]
        assert (pushed["id"], pushed["status"]) == (message_id, "sent")
    stored = chat.fake.messages[message_id]
    assert (stored["status"], stored["external_error"]) == ("sent", None)
    assert parse_chatwoot_webhook(first) == RetryRequested(
        message_id, chat.conversation_id, PHONE[1:], explicit=True
    )
    assert parse_chatwoot_webhook(second) == RetryRequested(
        message_id, chat.conversation_id, PHONE[1:], explicit=False
    )


def test_retry_keeps_the_other_content_attributes(chat: Chat) -> None:
    quoted = chat.reply("First")
    message_id = chat.reply("Second", in_reply_to=quoted)
    chat.tick(message_id, "failed", "131026: Message undeliverable")

    *_, last = retry_message(chat.fake, message_id)

    assert last["content_attributes"]["in_reply_to"] == quoted
    assert "external_error" not in last["content_attributes"]


def test_retry_of_a_message_that_did_not_fail_does_nothing(chat: Chat) -> None:
    message_id = chat.reply("Fine")
    chat.tick(message_id, "delivered")

    assert retry_message(chat.fake, message_id) == []
    assert chat.fake.messages[message_id]["status"] == "delivered"


def test_our_own_ticks_of_a_reply_that_never_failed_carry_no_error_key(chat: Chat) -> None:
    message_id = chat.reply("Fine")
    for status in ("sent", "delivered"):
        chat.tick(message_id, status)
        body = message_updated_body(chat.fake, message_id)
        assert body["content_attributes"] == {}
        parsed = parse_chatwoot_webhook(body)
        if status == "sent":
            assert parsed == RetryRequested(message_id, chat.conversation_id, PHONE[1:])
        else:
            assert isinstance(parsed, Ignored)  # the pushed copy says delivered


def test_our_failure_tick_is_ignored(chat: Chat) -> None:
    message_id = chat.reply("Too late")
    chat.tick(message_id, "failed", "131047: Re-engagement message")

    parsed = parse_chatwoot_webhook(message_updated_body(chat.fake, message_id))

    assert isinstance(parsed, Ignored) and "failed" in parsed.reason


# ---- Chatwoot: delete ----
def test_delete_replaces_the_content_and_marks_it_deleted(chat: Chat) -> None:
    message_id = chat.reply("Oops, wrong customer", attachments=[("a.png", PNG, "image/png")])
    chat.tick(message_id, "failed", "131047: Re-engagement message")

    body = delete_message(chat.fake, message_id)

    assert body["event"] == "message_updated"
    assert (body["content"], body["content_type"]) == (DELETED_CONTENT, "text")
    assert body["content_attributes"] == {"deleted": True}
    assert "attachments" not in body
    assert parse_chatwoot_webhook(body) == MessageDeleted(
        message_id, chat.conversation_id, PHONE[1:]
    )


def test_a_deleted_private_note_or_customer_message_is_ignored(chat: Chat) -> None:
    note = chat.reply("internal", private=True)
    incoming = chat.post(
        f"/conversations/{chat.conversation_id}/messages",
        {"content": "hi", "message_type": "incoming", "source_id": "wamid.in"},
    )
    for message_id in (note, int(incoming["id"])):
        assert isinstance(parse_chatwoot_webhook(delete_message(chat.fake, message_id)), Ignored)


# ---- gateway: delete for everyone ----
@pytest.fixture(scope="module")
def gateway_server() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


@pytest.fixture
def gw(gateway_server: FakeGateway) -> FakeGateway:
    gateway_server.reset()
    gateway_server.add_instance("suporte", TOKEN)
    return gateway_server


def delete(gw: FakeGateway, body: Any) -> httpx.Response:
    return httpx.request(
        "DELETE",
        f"{gw.base_url}/api/chat/delete/suporte",
        json=body,
        headers={"token": TOKEN},
        timeout=5,
    )


def test_gateway_revokes_a_message_it_sent(gw: FakeGateway) -> None:
    sent = httpx.post(
        f"{gw.base_url}/api/message/text/suporte",
        json={"number": gs.CUSTOMER, "message": "oops"},
        headers={"token": TOKEN},
        timeout=5,
    ).json()["data"]["messageId"]

    response = delete(gw, {"messageId": sent, "deleteForEveryone": True})

    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["data"]["delete_type"]) == (True, "revoke")
    assert gw.revoked == [sent]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"deleteForEveryone": True}, 400, "MessageID is required"),
        ({"messageId": "3EB0NOPE", "deleteForEveryone": True}, 404, "message not found"),
        ({"messageId": "3EB0NOPE", "deleteForEveryone": "yes"}, 400, "Invalid request body"),
    ],
)
def test_gateway_delete_errors(gw: FakeGateway, body: Any, status: int, message: str) -> None:
    response = delete(gw, body)
    assert response.status_code == status
    assert response.json() == {"success": False, "error": {"message": message}}
    assert gw.revoked == []
