"""Chatwoot's typing webhook (``WebhookListener#handle_typing_status``: ``{event, user,
conversation, is_private}``) read as an agent's typing, or ignored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.relay.outbound.chatwoot_webhook import AgentTyping, Ignored, parse_chatwoot_webhook
from tests.reference import chatwoot_dir

EXAMPLE: dict[str, Any] = json.loads(
    (chatwoot_dir() / "webhook-message-created.example.json").read_text()
)
RECIPIENT = "4915112345678"
AGENT = {"id": 5, "name": "Jane Agent", "email": "jane@acme.example", "type": "user"}
BOT = {"id": 2, "name": "Triage", "type": "agent_bot"}
CONTACT = {"id": 9, "name": "Maria", "avatar": "", "type": "contact"}


def typing(on: bool = True, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "conversation_typing_on" if on else "conversation_typing_off",
        "user": AGENT,
        "conversation": EXAMPLE["conversation"],
        "is_private": False,
    }
    body.update(changes)
    return body


@pytest.mark.parametrize("user", [AGENT, BOT])
@pytest.mark.parametrize("on", [True, False])
def test_an_agent_or_bot_typing_a_reply(user: dict[str, Any], on: bool) -> None:
    assert parse_chatwoot_webhook(typing(on, user=user)) == AgentTyping(87, RECIPIENT, on)


@pytest.mark.parametrize("flag", [False, None, "false", "0"])
def test_not_private_in_any_spelling(flag: Any) -> None:
    assert isinstance(parse_chatwoot_webhook(typing(is_private=flag)), AgentTyping)


@pytest.mark.parametrize("flag", [True, "true", "1", 1, "yes", ["x"], {"a": 1}])
def test_a_private_notes_typing_is_ignored(flag: Any) -> None:
    result = parse_chatwoot_webhook(typing(is_private=flag))
    assert result == Ignored("typing of a private note")
    assert not result.malformed


@pytest.mark.parametrize("user", [CONTACT, {"type": None}, {"type": ["user"]}, "user", None, {}])
def test_the_contacts_typing_and_unknown_typists_are_ignored(user: Any) -> None:
    """The contact's typing is also what our own public-API toggle comes back as."""
    result = parse_chatwoot_webhook(typing(user=user))
    assert isinstance(result, Ignored) and "not an agent" in result.reason


@pytest.mark.parametrize(
    "conversation",
    [
        None,
        [],
        {"id": 87},
        {"contact_inbox": {"source_id": RECIPIENT}},
        {"id": "x", "contact_inbox": {"source_id": RECIPIENT}},
        {"id": 0, "contact_inbox": {"source_id": RECIPIENT}},
    ],
)
def test_typing_without_a_readable_chat_is_ignored(conversation: Any) -> None:
    result = parse_chatwoot_webhook(typing(conversation=conversation))
    assert isinstance(result, Ignored)
