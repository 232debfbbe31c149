"""Matching WhatsApp's evidence to replies whose send had an unknown outcome.

When a send times out after the request went out, the reply is *unconfirmed*: we do not know
whether the customer got it, and WhatsApp offers no idempotency key. Evidence may follow: a
status for a message id we never saw, addressed to that customer (Cloud API), or the
gateway's echo of a message the instance sent. Such evidence is adopted by the oldest
unconfirmed reply of that chat, which then continues with its next part instead of resending.
"""

from __future__ import annotations

import logging

from app.relay.message_map import remember_message
from app.relay.outbound.chatwoot_webhook import AgentReply
from app.store.db import database
from app.store.models import (
    DIRECTION_OUTBOUND,
    EVENT_PENDING,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)

logger = logging.getLogger(__name__)


def _unconfirmed_reply(integration: ChatwootIntegration, chat_key: str) -> RelayEvent | None:
    found: RelayEvent | None = (
        RelayEvent.select()
        .where(
            (RelayEvent.integration == integration)
            & (RelayEvent.direction == DIRECTION_OUTBOUND)
            & (RelayEvent.chat_key == chat_key)
            & (RelayEvent.status == EVENT_PENDING)
            & (RelayEvent.unconfirmed == True)  # noqa: E712 (SQL comparison)
        )
        .order_by(RelayEvent.id)
        .first()
    )
    return found


def adopt(integration: ChatwootIntegration, chat_key: str, whatsapp_id: str) -> bool:
    """Let the oldest unconfirmed reply of the chat claim ``whatsapp_id``; True if one did.

    The reply is made due at once, so its lane continues (next part, then the ``sent`` tick);
    the caller enqueues that lane.
    """
    with database.atomic():
        row = _unconfirmed_reply(integration, chat_key)
        if row is None:
            return False
        reply = AgentReply.from_json(row.payload)
        remember_message(
            integration, whatsapp_id, reply.chatwoot_message_id, reply.conversation_id, "outgoing"
        )
        RelayEvent.update(
            progress=RelayEvent.progress + 1, unconfirmed=False, next_attempt_at=utcnow()
        ).where(RelayEvent.id == row.id).execute()
    logger.info("reply %s confirmed by WhatsApp message %s", reply.chatwoot_message_id, whatsapp_id)
    return True


def send_in_progress(integration: ChatwootIntegration, chat_key: str) -> bool:
    """A reply to this chat is being sent right now, or its outcome is still unknown: an echo
    of a business message may be ours, so it must wait rather than be posted to Chatwoot."""
    return bool(
        RelayEvent.select()
        .where(
            (RelayEvent.integration == integration)
            & (RelayEvent.direction == DIRECTION_OUTBOUND)
            & (RelayEvent.chat_key == chat_key)
            & (RelayEvent.status == EVENT_PENDING)
            & ((RelayEvent.sending == True) | (RelayEvent.unconfirmed == True))  # noqa: E712
        )
        .exists()
    )
