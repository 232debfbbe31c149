"""``message_updated`` bodies: Chatwoot's Retry button and an agent's delete, read from the body
Chatwoot posts (``Message#webhook_data``, as in the reference example), everything else ignored."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from app.relay.outbound.chatwoot_webhook import (
    Ignored,
    MessageDeleted,
    RetryRequested,
    parse_chatwoot_webhook,
)
from tests.reference import reference_dir

EXAMPLE: dict[str, Any] = json.loads(
    (reference_dir() / "chatwoot" / "webhook-message-created.example.json").read_text()
)
MESSAGE_ID, CONVERSATION_ID, RECIPIENT = 9012, 87, "4915112345678"


def updated(content_attributes: Any, pushed_status: str | None = "sent", **changes: Any) -> Any:
    """The example as ``message_updated`` with these ``content_attributes``; ``pushed_status``
    is the status in ``conversation.messages`` (``None``: the message is not the last one)."""
    body = copy.deepcopy(EXAMPLE)
    body.update(event="message_updated", content_attributes=content_attributes, **changes)
    if pushed_status is None:
        body["conversation"]["messages"][0]["id"] = MESSAGE_ID + 1
    else:
        body["conversation"]["messages"][0]["status"] = pushed_status
    return body


def test_retry_first_update_is_explicit() -> None:
    """StatusUpdateService(message, "sent") wrote nil over the error: the key stays, null."""
    assert parse_chatwoot_webhook(updated({"external_error": None})) == RetryRequested(
        MESSAGE_ID, CONVERSATION_ID, RECIPIENT, explicit=True
    )


@pytest.mark.parametrize("attributes", [{}, {"in_reply_to": 5}, "{}", None])
def test_retry_second_update_or_our_sent_tick_is_a_possible_retry(attributes: Any) -> None:
    assert parse_chatwoot_webhook(updated(attributes)) == RetryRequested(
        MESSAGE_ID, CONVERSATION_ID, RECIPIENT, explicit=False
    )


def test_the_status_need_not_be_pushed() -> None:
    event = parse_chatwoot_webhook(updated({"external_error": None}, pushed_status=None))
    assert isinstance(event, RetryRequested) and event.explicit


@pytest.mark.parametrize("status", ["failed", "delivered", "read"])
def test_a_settled_status_is_no_retry(status: str) -> None:
    event = parse_chatwoot_webhook(updated({}, pushed_status=status))
    assert isinstance(event, Ignored) and not event.malformed
    assert status in event.reason


def test_our_failure_tick_is_ignored() -> None:
    event = parse_chatwoot_webhook(updated({"external_error": "131047: Re-engagement message"}))
    assert isinstance(event, Ignored) and not event.malformed
    assert "failed" in event.reason


@pytest.mark.parametrize(
    "changes",
    [
        {"private": True},
        {"message_type": "incoming"},
        {"message_type": 2},
        {"source_id": "wamid.ECHO"},  # a message we posted (the business phone's own)
    ],
)
def test_no_retry_of_notes_customer_messages_or_our_own(changes: dict[str, Any]) -> None:
    event = parse_chatwoot_webhook(updated({"external_error": None}, **changes))
    assert isinstance(event, Ignored) and not event.malformed


@pytest.mark.parametrize("flag", [True, "true", 1])
def test_delete_of_an_agent_reply(flag: Any) -> None:
    body = updated({"deleted": flag}, content="This message was deleted")
    assert parse_chatwoot_webhook(body) == MessageDeleted(MESSAGE_ID, CONVERSATION_ID, RECIPIENT)


def test_delete_of_a_message_from_the_business_phone_is_kept() -> None:
    """It reached WhatsApp too: the lane decides by what was sent (the message map)."""
    body = updated({"deleted": True}, source_id="wamid.ECHO")
    assert isinstance(parse_chatwoot_webhook(body), MessageDeleted)


@pytest.mark.parametrize("changes", [{"private": True}, {"message_type": "incoming"}])
def test_delete_of_a_note_or_customer_message_is_ignored(changes: dict[str, Any]) -> None:
    event = parse_chatwoot_webhook(updated({"deleted": True}, **changes))
    assert isinstance(event, Ignored) and not event.malformed


def test_delete_event_round_trips_and_has_its_own_key() -> None:
    deleted = MessageDeleted(MESSAGE_ID, CONVERSATION_ID, RECIPIENT)
    assert MessageDeleted.from_json(deleted.to_json()) == deleted
    assert deleted.natural_key == f"cw:{MESSAGE_ID}:deleted"


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [({"deleted": True}, "source_id is missing"), ({"external_error": None}, "source_id")],
)
def test_without_a_contact_inbox_it_is_malformed(attributes: Any, reason: str) -> None:
    body = updated(attributes)
    body["conversation"]["contact_inbox"] = None
    body["conversation"]["messages"] = []
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, Ignored) and event.malformed
    assert reason in event.reason
