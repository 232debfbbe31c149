"""Intake of an agent's ``message_updated`` (Chatwoot's Retry, a delete), in the webhook's
transaction: a failed reply back to its lane (:mod:`app.relay.outbound.retry`), or a delete
stored in the chat's lane (:mod:`app.relay.outbound.deletion`)."""

from __future__ import annotations

from app.relay.outbound.chatwoot_webhook import MessageDeleted, RetryRequested
from app.relay.outbound.deletion import store_deletion
from app.relay.outbound.retry import request_retry
from app.store.models import ChatwootIntegration

MessageUpdate = RetryRequested | MessageDeleted
MESSAGE_UPDATES = (RetryRequested, MessageDeleted)


def apply_message_update(integration: ChatwootIntegration, change: MessageUpdate) -> bool:
    """True when the chat's outbound lane has new work (to enqueue)."""
    if isinstance(change, MessageDeleted):
        return store_deletion(integration, change)
    return request_retry(integration, change)
