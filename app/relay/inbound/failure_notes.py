"""Failures visible where agents work: private notes in the customer's conversation.

When a customer's message cannot be relayed for good (Chatwoot refused it, its media is gone),
the agent sees a private note saying what arrived and why it is missing — once, when the event
is marked failed, not per attempt. When a retry later brings the message in, a second note says
so. Notes are best effort: a note that cannot be posted is logged and never changes the fate of
the event. Private notes are never sent to WhatsApp (the Chatwoot webhook ignores them).
"""

from __future__ import annotations

import logging

from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import RemoteError
from app.relay.messages import MEDIA_KINDS, InboundMessage, event_from_json
from app.store.models import RETRYING_PREFIX, ChatLink, ChatwootIntegration, RelayEvent

logger = logging.getLogger(__name__)

_KIND_NAMES = {
    "text": "a text message",
    "image": "an image",
    "video": "a video",
    "audio": "an audio message",
    "document": "a document",
    "sticker": "a sticker",
    "location": "a location",
    "contacts": "a contact card",
    "reaction": "a reaction",
}


def note_failure(
    client: ChatwootClient, integration: ChatwootIntegration, row: RelayEvent, reason: str
) -> None:
    """The message of ``row`` failed for good: tell the agent in its conversation."""
    message = _customer_message(row)
    conversation_id = _conversation_of(integration, str(row.chat_key))
    if message is None or conversation_id is None:
        return
    text = (
        f"⚠️ The customer sent {_what(message)} on WhatsApp that could not be shown here: "
        f"{reason}. It is kept as failed event {row.id} and can be retried "
        "(status page, or POST /api/chatwoot/retry)."
    )
    _post_note(client, conversation_id, text, row)


def note_recovery(
    client: ChatwootClient, integration: ChatwootIntegration, row: RelayEvent
) -> None:
    """A retried event was delivered: say so under the failure note."""
    if not str(row.last_error).startswith(RETRYING_PREFIX):
        return
    message = _customer_message(row)
    conversation_id = _conversation_of(integration, str(row.chat_key))
    if message is None or conversation_id is None:
        return
    text = f"✅ Recovered: {_what(message)} from failed event {row.id} is now in this conversation."
    _post_note(client, conversation_id, text, row)


def _customer_message(row: RelayEvent) -> InboundMessage | None:
    """The customer's message of ``row`` (statuses and business echoes get no note)."""
    try:
        event = event_from_json(str(row.payload))
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(event, InboundMessage) or event.direction != "incoming":
        return None
    return event


def _conversation_of(integration: ChatwootIntegration, chat_key: str) -> int | None:
    link: ChatLink | None = ChatLink.get_or_none(
        (ChatLink.integration == integration) & (ChatLink.chat_key == chat_key)
    )
    if link is None or link.conversation_id is None:
        return None
    return int(link.conversation_id)


def _what(message: InboundMessage) -> str:
    name = _KIND_NAMES.get(message.kind, f"a {message.kind} message")
    if message.kind in MEDIA_KINDS and message.media is not None and message.media.filename:
        return f'{name} ("{message.media.filename}")'
    return name


def _post_note(client: ChatwootClient, conversation_id: int, text: str, row: RelayEvent) -> None:
    try:
        client.create_message(conversation_id, content=text, message_type="outgoing", private=True)
    except RemoteError as exc:
        logger.warning("event %s: private note not posted in Chatwoot: %s", row.id, exc)
