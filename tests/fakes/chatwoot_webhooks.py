"""What a real Chatwoot POSTs to an API inbox's ``webhook_url``, built from a FakeChatwoot's state.

The fake serves Chatwoot's API but does not call webhooks itself; a test creates the agent's
message through the API (:func:`agent_reply`), builds the body Chatwoot would send for it
(:func:`message_created_body`, :func:`status_changed_body`, :func:`typing_body`), and posts it to
the bridge with :func:`signed_request`'s raw bytes and headers. An agent's Retry and delete change
the fake's message as Chatwoot does and give the ``message_updated`` bodies Chatwoot posts
(:func:`retry_message`, :func:`delete_message`).

Shapes follow Chatwoot's source (chatwoot/chatwoot) and the example
``tests/data/chatwoot/webhook-message-created.example.json``:

- ``app/listeners/webhook_listener.rb``: ``message.webhook_data.merge(event:)``;
  ``conversation.webhook_data.merge(event:, changed_attributes:)`` with
  ``[{attr => {previous_value:, current_value:}}]`` (``app/listeners/base_listener.rb``); typing:
  ``{event, user, conversation, is_private}``.
- ``app/models/message.rb#webhook_data`` (``message_type`` by name, ``sender`` =
  ``User#webhook_data`` ``{id, name, email, type}``) and ``#push_event_data`` (integer
  ``message_type``, ``conversation: {assignee_id, unread_count, last_activity_at,
  contact_inbox: {source_id}}``, ``sender`` = ``User#push_event_data`` with ``available_name``).
- ``app/presenters/conversations/event_data_presenter.rb``: ``id`` is the display id,
  ``messages`` is ``[messages.chat.last]``, the last message that is neither private nor activity.
- ``Messages::InReplyToMessageBuilder``: Chatwoot fills ``in_reply_to_external_id`` with the
  quoted message's ``source_id`` when it saves a reply (the fake stores ``content_attributes``
  as given, so this module does it when building the body).
- Signing, ``lib/webhooks/trigger.rb#request_headers`` (account webhooks since v4.11.2, PR #13573;
  API inboxes and agent bots since v4.13.0, PR #13892, with the inbox's own ``secret``):
  ``Content-Type``/``Accept: application/json``, ``X-Chatwoot-Delivery: <uuid>`` (the same on
  Sidekiq retries), and with a secret ``X-Chatwoot-Timestamp: <unix seconds>`` and
  ``X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``. The body
  is ``payload.to_json`` (ActiveSupport: compact, non-ASCII kept, ``< > &`` escaped as
  ``\\u003c \\u003e \\u0026``), see :func:`encode_body`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.fakes import chatwoot_views as views
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.chatwoot_api import to_int

Attachment = tuple[str, bytes, str]  # filename, data, content type


# ---- bodies ----
def message_created_body(
    fake: FakeChatwoot, message_id: int, *, event: str = "message_created"
) -> dict[str, Any]:
    """``Message#webhook_data`` + ``event`` for a message stored in ``fake``."""
    with fake._lock:
        message = fake.messages[message_id]
        conv = fake.conversations[message["conversation_id"]]
        account = fake.accounts[message["account_id"]]
        inbox = fake.inboxes.get(message["inbox_id"])
        body: dict[str, Any] = {
            "account": {"id": account["id"], "name": account["name"]},
            "additional_attributes": copy.deepcopy(message.get("additional_attributes") or {}),
            "content_attributes": _content_attributes(fake, message),
            "content_type": message["content_type"],
            "content": message["content"],
            "conversation": _conversation_data(fake, conv),
            "created_at": _iso(message["created_at"]),
            "id": message["id"],
            "inbox": {"id": message["inbox_id"], "name": inbox["name"] if inbox else None},
            "message_type": message["message_type"],
            "private": message["private"],
            "sender": _webhook_sender(fake, message, account),
            "source_id": message["source_id"],
        }
        if message["attachments"]:
            body["attachments"] = [
                views.attachment_json(a, message, fake.base_url) for a in message["attachments"]
            ]
        body["event"] = event
        return body


def status_changed_body(
    fake: FakeChatwoot,
    conversation_display_id: int,
    status: str,
    *,
    account_id: int | None = None,
    previous_status: str | None = None,
    event: str = "conversation_status_changed",
) -> dict[str, Any]:
    """``Conversation#webhook_data`` + ``event`` + ``changed_attributes`` for a status change
    to ``status`` (``previous_status`` defaults to the status the fake holds, when different).

    ``event="conversation_updated"`` gives the second webhook Chatwoot sends for the change.
    """
    with fake._lock:
        conv = _find_conversation(fake, conversation_display_id, account_id)
        stored = conv["status"]
        previous = previous_status if previous_status is not None else stored
        body = _conversation_data(fake, conv)
        body["status"] = status
        body["event"] = event
        body["changed_attributes"] = [
            {
                "status": {
                    "previous_value": previous if previous != status else None,
                    "current_value": status,
                }
            }
        ]
        return body


def typing_body(
    fake: FakeChatwoot,
    conversation_display_id: int,
    user_id: int,
    *,
    on: bool = True,
    is_private: bool = False,
    account_id: int | None = None,
) -> dict[str, Any]:
    """``conversation_typing_on``/``_off`` as ``WebhookListener#handle_typing_status`` sends."""
    with fake._lock:
        conv = _find_conversation(fake, conversation_display_id, account_id)
        user = fake.users[user_id]
        return {
            "event": "conversation_typing_on" if on else "conversation_typing_off",
            "user": _user_webhook_data(user),
            "conversation": _conversation_data(fake, conv),
            "is_private": is_private,
        }


def message_updated_body(fake: FakeChatwoot, message_id: int) -> dict[str, Any]:
    """``message_updated`` for a message as ``fake`` holds it now (e.g. after our own tick)."""
    return message_created_body(fake, message_id, event="message_updated")


# ---- an agent's Retry and delete (messages_controller.rb #retry and #destroy) ----
DELETED_CONTENT = "This message was deleted"  # I18n conversations.messages.deleted


def retry_message(fake: FakeChatwoot, message_id: int) -> list[dict[str, Any]]:
    """An agent presses Retry on a message: what Chatwoot does and the ``message_updated``
    bodies it posts, one per update (an empty list when the message is not failed).

    ``claim_message_retry``: only a failed message; ``Messages::StatusUpdateService(message,
    "sent")`` sets the status and writes ``external_error`` nil (the key stays, null), then
    ``content_attributes.except("external_error")`` drops it (API inboxes keep ``source_id``).
    Each committed update posts its own webhook (``after_update_commit``)."""
    with fake._lock:
        message = fake.messages[message_id]
        if message["status"] != "failed":
            return []
        message["status"] = "sent"
        message["external_error"] = None
        if message["content_attributes"].get("external_error") is not None:
            message["content_attributes"]["external_error"] = None
        first = message_created_body(fake, message_id, event="message_updated")
        if "external_error" not in message["content_attributes"]:
            return [first]
        del message["content_attributes"]["external_error"]
        return [first, message_created_body(fake, message_id, event="message_updated")]


def delete_message(fake: FakeChatwoot, message_id: int) -> dict[str, Any]:
    """An agent deletes a message: Chatwoot replaces its content, marks it ``deleted`` (the
    other content attributes go), drops its attachments, and posts ``message_updated``."""
    with fake._lock:
        message = fake.messages[message_id]
        message["content"] = DELETED_CONTENT
        message["content_type"] = "text"
        message["content_attributes"] = {"deleted": True}
        message["attachments"] = []
        return message_created_body(fake, message_id, event="message_updated")


# ---- encoding and signing ----
def encode_body(body: Any) -> bytes:
    """The bytes Rails' ``to_json`` would send for ``body``."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text.encode()


def signature(raw: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signed_headers(
    raw: bytes, secret: str, timestamp: int | None = None, delivery: str | None = None
) -> dict[str, str]:
    """The headers of a signed delivery of ``raw`` (now, with a fresh delivery id by default)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-Chatwoot-Delivery": delivery or str(uuid.uuid4()),
        "X-Chatwoot-Timestamp": str(ts),
        "X-Chatwoot-Signature": signature(raw, secret, ts),
    }


def signed_request(
    body: Any, secret: str, timestamp: int | None = None, delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """``(raw body, headers)`` ready for ``client.post(url, content=raw, headers=headers)``."""
    raw = encode_body(body)
    return raw, signed_headers(raw, secret, timestamp, delivery)


# ---- acting as an agent through the fake's API ----
def agent_reply(
    fake: FakeChatwoot,
    account_id: int,
    token: str,
    conversation_display_id: int,
    content: str,
    attachments: Sequence[Attachment] = (),
    in_reply_to: int | None = None,
    *,
    private: bool = False,
    template_params: dict[str, Any] | None = None,
) -> int:
    """Post an agent's message (``POST .../messages``, multipart when there are files) as the
    user owning ``token``; return the new message id. ``template_params``: a WhatsApp template
    picked in Chatwoot's picker (``{name, category, language, processed_params}``)."""
    url = (
        f"{fake.base_url}/api/v1/accounts/{account_id}"
        f"/conversations/{conversation_display_id}/messages"
    )
    attributes = {"in_reply_to": in_reply_to} if in_reply_to is not None else {}
    headers = {"api_access_token": token}
    if attachments:
        form = {
            "content": content,
            "message_type": "outgoing",
            "private": "true" if private else "false",
            "content_attributes": json.dumps(attributes),
        }
        files = [("attachments[]", (name, data, ctype)) for name, data, ctype in attachments]
        response = httpx.post(url, data=form, files=files, headers=headers, timeout=10)
    else:
        payload: dict[str, Any] = {"content": content, "message_type": "outgoing"}
        payload["private"] = private
        if attributes:
            payload["content_attributes"] = attributes
        if template_params is not None:
            payload["template_params"] = template_params
        response = httpx.post(url, json=payload, headers=headers, timeout=10)
    if response.status_code != 200:
        raise AssertionError(f"fake Chatwoot refused the reply: {response.status_code}")
    return int(response.json()["id"])


# ---- shapes ----
def _iso(epoch: int | float) -> str:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _find_conversation(
    fake: FakeChatwoot, display_id: int, account_id: int | None
) -> dict[str, Any]:
    found = [
        c
        for c in fake.conversations.values()
        if c["display_id"] == display_id and account_id in (None, c["account_id"])
    ]
    if len(found) != 1:
        raise KeyError(f"{len(found)} conversations with display id {display_id}; give account_id")
    return found[0]


def _user_webhook_data(user: dict[str, Any]) -> dict[str, Any]:
    """``User#webhook_data``."""
    return {"id": user["id"], "name": user["name"], "email": user["email"], "type": "user"}


def _webhook_sender(
    fake: FakeChatwoot, message: dict[str, Any], account: dict[str, Any]
) -> dict[str, Any] | None:
    """``sender.try(:webhook_data)``: a user's, or (for incoming) ``Contact#webhook_data``."""
    if message["sender_type"] == "User" and message["sender_id"] in fake.users:
        return _user_webhook_data(fake.users[message["sender_id"]])
    contact = fake.contacts.get(message["sender_id"])
    if message["sender_type"] != "Contact" or contact is None:
        return None
    return {
        "account": {"id": account["id"], "name": account["name"]},
        "additional_attributes": contact["additional_attributes"],
        "avatar": "",
        "custom_attributes": contact["custom_attributes"],
        "email": contact["email"],
        "id": contact["id"],
        "identifier": contact["identifier"],
        "name": contact["name"],
        "phone_number": contact["phone_number"],
        "thumbnail": "",
        "blocked": contact["blocked"],
    }


def _content_attributes(fake: FakeChatwoot, message: dict[str, Any]) -> dict[str, Any]:
    """The stored attributes after ``Messages::InReplyToMessageBuilder``: a quote names both the
    quoted message's id and its ``source_id`` (both null when it is not in the conversation)."""
    attrs: dict[str, Any] = copy.deepcopy(message["content_attributes"])
    reply_to, external = attrs.get("in_reply_to"), attrs.get("in_reply_to_external_id")
    if reply_to in (None, "") and external in (None, ""):
        return attrs
    own = [m for m in fake.messages.values() if m["conversation_id"] == message["conversation_id"]]
    if reply_to not in (None, ""):
        quoted = next((m for m in own if m["id"] == to_int(reply_to)), None)
    else:
        quoted = next((m for m in own if m["source_id"] == external), None)
    attrs["in_reply_to_external_id"] = quoted["source_id"] if quoted else None
    attrs["in_reply_to"] = quoted["id"] if quoted else None
    return attrs


def _pushed_message(
    fake: FakeChatwoot, message: dict[str, Any], conv: dict[str, Any], source_id: str | None
) -> dict[str, Any]:
    """``Message#push_event_data`` as embedded in ``conversation.messages``."""
    out: dict[str, Any] = {
        "id": message["id"],
        "content": message["content"],
        "account_id": message["account_id"],
        "inbox_id": message["inbox_id"],
        "conversation_id": conv["display_id"],
        "message_type": views.MESSAGE_TYPES[message["message_type"]],
        "created_at": message["created_at"],
        "updated_at": _iso(message["created_at"]),
        "private": message["private"],
        "status": message["status"],
        "source_id": message["source_id"],
        "content_type": message["content_type"],
        "content_attributes": _content_attributes(fake, message),
        "sender_type": message["sender_type"],
        "sender_id": message["sender_id"],
        "external_source_ids": {},
        "additional_attributes": {},
        "processed_message_content": message["content"],
        "sentiment": {},
        "conversation": {
            "assignee_id": conv["assignee_id"],
            "unread_count": 0,
            "last_activity_at": conv["last_activity_at"],
            "contact_inbox": {"source_id": source_id},
        },
    }
    if message["attachments"]:
        out["attachments"] = [
            views.attachment_json(a, message, fake.base_url) for a in message["attachments"]
        ]
    if message["sender_type"] == "User" and message["sender_id"] in fake.users:
        out["sender"] = views.user_sender(fake.users[message["sender_id"]])
    elif message["sender_type"] == "Contact" and message["sender_id"] in fake.contacts:
        out["sender"] = views.contact_sender(fake.contacts[message["sender_id"]])
    return out


def _contact_inbox(fake: FakeChatwoot, conv: dict[str, Any]) -> dict[str, Any] | None:
    ci = next((c for c in fake.contact_inboxes if c["id"] == conv["contact_inbox_id"]), None)
    if ci is None:
        return None
    return {
        "id": ci["id"],
        "contact_id": ci["contact_id"],
        "inbox_id": ci["inbox_id"],
        "source_id": ci["source_id"],
        "created_at": _iso(ci["created_at"]),
        "updated_at": _iso(ci["created_at"]),
        "hmac_verified": ci["hmac_verified"],
        "pubsub_token": hashlib.sha256(f"ci-{ci['id']}".encode()).hexdigest()[:24],
    }


def _conversation_data(fake: FakeChatwoot, conv: dict[str, Any]) -> dict[str, Any]:
    """``Conversation#webhook_data`` (``Conversations::EventDataPresenter#push_data``)."""
    account = fake.accounts[conv["account_id"]]
    inbox = fake.inboxes.get(conv["inbox_id"])
    contact_inbox = _contact_inbox(fake, conv)
    source_id = contact_inbox["source_id"] if contact_inbox else None
    own = sorted(
        (m for m in fake.messages.values() if m["conversation_id"] == conv["id"]),
        key=lambda m: m["id"],
    )
    chat = [m for m in own if not m["private"] and m["message_type"] != "activity"]
    replies = [m for m in own if m["message_type"] == "outgoing" and not m["private"]]
    assignee = fake.users.get(conv["assignee_id"]) if conv["assignee_id"] is not None else None
    return {
        "additional_attributes": conv["additional_attributes"],
        "can_reply": True,
        "channel": inbox["channel_type"] if inbox else "Channel::Api",
        "contact_inbox": contact_inbox,
        "id": conv["display_id"],
        "inbox_id": conv["inbox_id"],
        "messages": [_pushed_message(fake, chat[-1], conv, source_id)] if chat else [],
        "labels": [],
        "meta": {
            "sender": views.contact_sender(fake.contacts[conv["contact_id"]]),
            "assignee": views.user_sender(assignee) if assignee else None,
            "assignee_type": "User" if assignee else None,
            "team": None,
            "hmac_verified": False,
        },
        "status": conv["status"],
        "custom_attributes": conv["custom_attributes"],
        "snoozed_until": conv["snoozed_until"],
        "unread_count": 0,
        "first_reply_created_at": _iso(replies[0]["created_at"]) if replies else None,
        "priority": None,
        "waiting_since": 0,
        "agent_last_seen_at": 0,
        "contact_last_seen_at": 0,
        "last_activity_at": conv["last_activity_at"],
        "timestamp": conv["last_activity_at"],
        "created_at": conv["created_at"],
        "updated_at": float(conv["last_activity_at"]),
        "account": {"id": account["id"], "name": account["name"]},
    }
