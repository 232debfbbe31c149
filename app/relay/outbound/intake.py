"""Storing what Chatwoot's inbox webhook asks us to relay, before it is acknowledged."""

from __future__ import annotations

import logging

import peewee

from app.relay.outbound.chatwoot_webhook import AgentReply, ConversationStatusChanged
from app.store.counters import bump_counters
from app.store.db import database
from app.store.models import (
    DIRECTION_OUTBOUND,
    ChatLink,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
)

logger = logging.getLogger(__name__)


def store_reply(integration: ChatwootIntegration, reply: AgentReply) -> bool:
    """Store an agent reply once (by Chatwoot message id). False when already known: a
    duplicate delivery, or a message we created in Chatwoot ourselves."""
    ours = (
        MessageMap.select()
        .where(
            (MessageMap.integration == integration)
            & (MessageMap.chatwoot_message_id == reply.chatwoot_message_id)
        )
        .exists()
    )
    if ours:
        return False
    try:
        with database.atomic():
            RelayEvent.create(
                integration=integration,
                direction=DIRECTION_OUTBOUND,
                natural_key=reply.natural_key,
                chat_key=reply.recipient,
                kind="reply",
                payload=reply.to_json(),
            )
            bump_counters([(integration.id, DIRECTION_OUTBOUND, "received", 1)])
    except peewee.IntegrityError:
        logger.info("agent reply %s already stored", reply.chatwoot_message_id)
        return False
    return True


def record_conversation_status(
    integration: ChatwootIntegration, change: ConversationStatusChanged
) -> int:
    """Remember the conversation's status, so that after ``resolved`` the next customer
    message opens a new conversation (or reopens it, with ``reopenResolved``)."""
    return int(
        ChatLink.update(conversation_status=change.status)
        .where(
            (ChatLink.integration == integration)
            & (ChatLink.conversation_id == change.conversation_id)
        )
        .execute()
    )
