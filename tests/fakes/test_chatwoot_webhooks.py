"""The Chatwoot webhook bodies and signatures the test helpers build from a FakeChatwoot."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.relay.outbound.chatwoot_webhook import (
    AgentReply,
    AgentTyping,
    ConversationStatusChanged,
    Ignored,
    RetryRequested,
    parse_chatwoot_webhook,
)
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.chatwoot_webhooks import (
    agent_reply,
    encode_body,
    message_created_body,
    signed_headers,
    signed_request,
    status_changed_body,
    typing_body,
)
from tests.reference import reference_dir

EXAMPLE: dict[str, Any] = json.loads(
    (reference_dir() / "chatwoot" / "webhook-message-created.example.json").read_text()
)
PHONE = "+4915112345678"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Chat:
    fake: FakeChatwoot
    account_id: int
    token: str
    user_id: int
    inbox: dict[str, Any]
    conversation_id: int  # display id

    def url(self, suffix: str) -> str:
        return f"{self.fake.base_url}/api/v1/accounts/{self.account_id}{suffix}"

    def post(self, suffix: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(self.url(suffix), json=body, headers={"api_access_token": self.token})
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatwoot]:
    with FakeChatwoot() as fake:
        yield fake


@pytest.fixture
def chat(server: FakeChatwoot) -> Chat:
    """An API inbox with one contact and one open conversation, and an agent's token."""
    server.reset()
    account_id = server.add_account("Acme Support")
    token = server.add_user("Jane Agent", {account_id: "administrator"}, "jane@acme.example")
    user_id = next(iter(server.users))
    c = Chat(server, account_id, token, user_id, {}, 0)
    c.inbox = c.post("/inboxes", {"name": "WhatsApp Bridge", "channel": {"type": "api"}})
    c.post(
        "/contacts",
        {"inbox_id": c.inbox["id"], "name": "Maria", "phone_number": PHONE, "source_id": PHONE[1:]},
    )
    conv = c.post("/conversations", {"source_id": PHONE[1:], "inbox_id": c.inbox["id"]})
    c.conversation_id = int(conv["id"])
    return c


def customer_message(c: Chat, text: str, wamid: str) -> int:
    """A message the bridge relayed in: incoming, carrying the WhatsApp id as source_id."""
    body = {"content": text, "message_type": "incoming", "source_id": wamid}
    return int(c.post(f"/conversations/{c.conversation_id}/messages", body)["id"])


def keys(value: Any) -> set[str]:
    assert isinstance(value, dict)
    return set(value)


# ---- message_created ----
def test_body_has_the_reference_example_shape(chat: Chat) -> None:
    message_id = agent_reply(
        chat.fake,
        chat.account_id,
        chat.token,
        chat.conversation_id,
        "Here is a photo",
        attachments=[("replacement-part.png", PNG, "image/png")],
    )
    body = message_created_body(chat.fake, message_id)
    assert keys(body) == keys(EXAMPLE)
    assert keys(body["conversation"]) == keys(EXAMPLE["conversation"])
    assert keys(body["conversation"]["contact_inbox"]) == keys(
        EXAMPLE["conversation"]["contact_inbox"]
    )
    assert keys(body["conversation"]["meta"]) == keys(EXAMPLE["conversation"]["meta"])
    pushed, example_pushed = (
        body["conversation"]["messages"][0],
        EXAMPLE["conversation"]["messages"][0],
    )
    assert keys(pushed) == keys(example_pushed)
    assert keys(pushed["sender"]) == keys(example_pushed["sender"])
    assert keys(pushed["attachments"][0]) == keys(example_pushed["attachments"][0])
    assert keys(body["attachments"][0]) == keys(EXAMPLE["attachments"][0])
    assert keys(body["sender"]) == keys(EXAMPLE["sender"])


def test_body_values_of_an_agent_reply(chat: Chat) -> None:
    message_id = agent_reply(
        chat.fake, chat.account_id, chat.token, chat.conversation_id, "Hello **Maria**"
    )
    body = message_created_body(chat.fake, message_id)
    assert (body["event"], body["id"], body["message_type"]) == (
        "message_created",
        message_id,
        "outgoing",
    )
    assert (body["private"], body["source_id"], body["content"]) == (False, None, "Hello **Maria**")
    assert body["sender"] == {
        "id": chat.user_id,
        "name": "Jane Agent",
        "email": "jane@acme.example",
        "type": "user",
    }
    assert body["account"] == {"id": chat.account_id, "name": "Acme Support"}
    assert body["inbox"] == {"id": chat.inbox["id"], "name": "WhatsApp Bridge"}
    conversation = body["conversation"]
    assert conversation["id"] == chat.conversation_id
    assert conversation["contact_inbox"]["source_id"] == PHONE[1:]
    pushed = conversation["messages"][0]
    assert (pushed["id"], pushed["message_type"]) == (message_id, 1)
    assert pushed["conversation"]["contact_inbox"] == {"source_id": PHONE[1:]}
    assert pushed["sender"]["available_name"] == "Jane Agent"
    assert "attachments" not in body
    created = datetime.strptime(body["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(created.timestamp() - time.time()) < 60


def test_parser_reads_the_body_as_the_agent_reply(chat: Chat) -> None:
    message_id = agent_reply(
        chat.fake,
        chat.account_id,
        chat.token,
        chat.conversation_id,
        "Manual attached",
        attachments=[("manual.pdf", b"%PDF-1.4 test", "application/pdf")],
    )
    event = parse_chatwoot_webhook(message_created_body(chat.fake, message_id))
    assert isinstance(event, AgentReply)
    assert (event.chatwoot_message_id, event.conversation_id, event.recipient) == (
        message_id,
        chat.conversation_id,
        PHONE[1:],
    )
    assert (event.content, event.sender_name) == ("Manual attached", "Jane Agent")
    (attachment,) = event.attachments
    assert (attachment.file_type, attachment.filename, attachment.content_type) == (
        "file",
        "manual.pdf",
        "application/pdf",
    )
    assert attachment.file_size == len(b"%PDF-1.4 test")


def test_attachment_data_url_serves_the_uploaded_bytes(chat: Chat) -> None:
    message_id = agent_reply(
        chat.fake,
        chat.account_id,
        chat.token,
        chat.conversation_id,
        "",
        attachments=[("photo one.png", PNG, "image/png")],
    )
    body = message_created_body(chat.fake, message_id)
    url = body["attachments"][0]["data_url"]
    assert url.startswith(chat.fake.base_url + "/rails/active_storage/blobs/redirect/")
    r = httpx.get(url, follow_redirects=True)
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, PNG, "image/png")
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, AgentReply)
    assert event.content == ""
    assert event.attachments[0].filename == "photo one.png"


def test_quote_gets_the_quoted_messages_source_id(chat: Chat) -> None:
    quoted = customer_message(chat, "Is it in stock?", "wamid.HBgLQUOTED")
    message_id = agent_reply(
        chat.fake, chat.account_id, chat.token, chat.conversation_id, "Yes", in_reply_to=quoted
    )
    body = message_created_body(chat.fake, message_id)
    assert body["content_attributes"] == {
        "in_reply_to": quoted,
        "in_reply_to_external_id": "wamid.HBgLQUOTED",
    }
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, AgentReply)
    assert (event.in_reply_to, event.in_reply_to_external_id) == (quoted, "wamid.HBgLQUOTED")


def test_quote_with_attachments_goes_through_multipart(chat: Chat) -> None:
    quoted = customer_message(chat, "Send the manual", "wamid.M1")
    message_id = agent_reply(
        chat.fake,
        chat.account_id,
        chat.token,
        chat.conversation_id,
        "Here",
        attachments=[("m.pdf", b"%PDF", "application/pdf")],
        in_reply_to=quoted,
    )
    body = message_created_body(chat.fake, message_id)
    assert body["content_attributes"]["in_reply_to_external_id"] == "wamid.M1"
    assert chat.fake.schema_errors == []


def test_quote_of_a_message_outside_the_conversation_has_no_ids(chat: Chat) -> None:
    message_id = agent_reply(
        chat.fake, chat.account_id, chat.token, chat.conversation_id, "Yes", in_reply_to=999999
    )
    body = message_created_body(chat.fake, message_id)
    assert body["content_attributes"] == {"in_reply_to": None, "in_reply_to_external_id": None}


def test_our_incoming_message_comes_back_and_is_ignored(chat: Chat) -> None:
    message_id = customer_message(chat, "Hi", "wamid.IN1")
    body = message_created_body(chat.fake, message_id)
    assert (body["message_type"], body["source_id"]) == ("incoming", "wamid.IN1")
    assert body["sender"]["name"] == "Maria"
    assert body["conversation"]["messages"][0]["message_type"] == 0
    assert isinstance(parse_chatwoot_webhook(body), Ignored)


def test_private_note_is_not_the_pushed_message_and_is_ignored(chat: Chat) -> None:
    public = agent_reply(chat.fake, chat.account_id, chat.token, chat.conversation_id, "Public")
    note = agent_reply(
        chat.fake, chat.account_id, chat.token, chat.conversation_id, "Note", private=True
    )
    body = message_created_body(chat.fake, note)
    assert body["private"] is True
    assert body["conversation"]["messages"][0]["id"] == public  # messages.chat.last
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, Ignored)
    assert "private" in event.reason


def test_message_updated_body_of_a_reply_without_failure_is_a_possible_retry(chat: Chat) -> None:
    """Not sent by itself: only a reply whose send failed is sent again (the database decides,
    tests/relay/outbound/test_retry_button.py); a failure tick or a note stays ignored."""
    message_id = agent_reply(chat.fake, chat.account_id, chat.token, chat.conversation_id, "x")
    body = message_created_body(chat.fake, message_id, event="message_updated")
    assert body["event"] == "message_updated"
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, RetryRequested)
    assert (event.chatwoot_message_id, event.explicit) == (message_id, False)


# ---- conversation events ----
def test_status_changed_body(chat: Chat) -> None:
    body = status_changed_body(chat.fake, chat.conversation_id, "resolved")
    assert (body["event"], body["id"], body["status"]) == (
        "conversation_status_changed",
        chat.conversation_id,
        "resolved",
    )
    assert body["changed_attributes"] == [
        {"status": {"previous_value": "open", "current_value": "resolved"}}
    ]
    assert keys(body) == keys(EXAMPLE["conversation"]) | {"event", "changed_attributes"}
    assert parse_chatwoot_webhook(body) == ConversationStatusChanged(
        chat.conversation_id, "resolved", PHONE[1:]
    )
    updated = status_changed_body(
        chat.fake, chat.conversation_id, "resolved", event="conversation_updated"
    )
    assert parse_chatwoot_webhook(updated) == parse_chatwoot_webhook(body)


def test_status_changed_body_after_the_fake_changed_status(chat: Chat) -> None:
    chat.post(f"/conversations/{chat.conversation_id}/toggle_status", {"status": "resolved"})
    body = status_changed_body(chat.fake, chat.conversation_id, "open")
    assert body["changed_attributes"][0]["status"] == {
        "previous_value": "resolved",
        "current_value": "open",
    }
    same = status_changed_body(chat.fake, chat.conversation_id, "resolved")
    assert same["changed_attributes"][0]["status"]["previous_value"] is None


def test_display_id_shared_by_two_accounts_needs_account_id(chat: Chat) -> None:
    other = chat.fake.add_account("Other")
    token = chat.fake.add_user("Olga", {other: "administrator"})
    second = Chat(chat.fake, other, token, 0, {}, 0)
    inbox = second.post("/inboxes", {"name": "B", "channel": {"type": "api"}})
    second.post("/contacts", {"inbox_id": inbox["id"], "name": "Bo", "source_id": "4930111"})
    conv = second.post("/conversations", {"source_id": "4930111", "inbox_id": inbox["id"]})
    assert conv["id"] == chat.conversation_id  # display ids count per account
    with pytest.raises(KeyError):
        status_changed_body(chat.fake, chat.conversation_id, "resolved")
    body = status_changed_body(chat.fake, chat.conversation_id, "resolved", account_id=other)
    assert body["contact_inbox"]["source_id"] == "4930111"


def test_typing_body_reports_the_agents_typing(chat: Chat) -> None:
    on = typing_body(chat.fake, chat.conversation_id, chat.user_id)
    off = typing_body(chat.fake, chat.conversation_id, chat.user_id, on=False)
    private = typing_body(chat.fake, chat.conversation_id, chat.user_id, is_private=True)
    assert (on["event"], off["event"]) == ("conversation_typing_on", "conversation_typing_off")
    assert on["user"]["name"] == "Jane Agent"
    source_id = on["conversation"]["contact_inbox"]["source_id"]
    assert parse_chatwoot_webhook(on) == AgentTyping(chat.conversation_id, source_id, on=True)
    assert parse_chatwoot_webhook(off) == AgentTyping(chat.conversation_id, source_id, on=False)
    assert isinstance(parse_chatwoot_webhook(private), Ignored)


# ---- encoding and signing ----
def test_signature_matches_a_known_answer() -> None:
    raw = b'{"event":"message_created","id":1}'
    headers = signed_headers(raw, "inbox-secret", timestamp=1700000000, delivery="d-1")
    assert headers == {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-Chatwoot-Delivery": "d-1",
        "X-Chatwoot-Timestamp": "1700000000",
        # printf '%s' '1700000000.{"event":"message_created","id":1}' \
        #   | openssl dgst -sha256 -hmac inbox-secret
        "X-Chatwoot-Signature": "sha256="
        "8233c9d89a29c5728d34176633f7acfe6f0dc9429f839da933f93e07099dbb17",
    }


def test_signature_binds_timestamp_body_and_secret() -> None:
    raw = b'{"id":1}'
    base = signed_headers(raw, "s", timestamp=1700000000)["X-Chatwoot-Signature"]
    assert signed_headers(raw, "s", timestamp=1700000001)["X-Chatwoot-Signature"] != base
    assert signed_headers(b'{"id":2}', "s", timestamp=1700000000)["X-Chatwoot-Signature"] != base
    assert signed_headers(raw, "t", timestamp=1700000000)["X-Chatwoot-Signature"] != base
    expected = hmac.new(b"s", b"1700000000." + raw, hashlib.sha256).hexdigest()
    assert base == f"sha256={expected}"


def test_default_timestamp_is_now_and_delivery_is_a_fresh_uuid() -> None:
    first, second = signed_headers(b"{}", "s"), signed_headers(b"{}", "s")
    assert abs(int(first["X-Chatwoot-Timestamp"]) - time.time()) < 5
    assert uuid.UUID(first["X-Chatwoot-Delivery"]) != uuid.UUID(second["X-Chatwoot-Delivery"])


def test_encode_body_escapes_like_rails_and_keeps_unicode() -> None:
    body = {"content": "a <b> & ü 😀", "n": [1, None, True]}
    raw = encode_body(body)
    assert raw == '{"content":"a \\u003cb\\u003e \\u0026 ü 😀","n":[1,null,true]}'.encode()
    assert json.loads(raw) == body


def test_signed_request_signs_the_exact_bytes_sent(chat: Chat) -> None:
    message_id = agent_reply(chat.fake, chat.account_id, chat.token, chat.conversation_id, "x & y")
    secret = chat.fake.inboxes[chat.inbox["id"]]["secret"]
    raw, headers = signed_request(message_created_body(chat.fake, message_id), secret)
    digest = hmac.new(
        secret.encode(), headers["X-Chatwoot-Timestamp"].encode() + b"." + raw, hashlib.sha256
    ).hexdigest()
    assert headers["X-Chatwoot-Signature"] == f"sha256={digest}"
    assert b"\\u0026" in raw
    assert json.loads(raw)["content"] == "x & y"
