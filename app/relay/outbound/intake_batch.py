"""Group-committed intake of Chatwoot webhooks: many agent replies in one transaction.

Same guarantees as :func:`app.relay.outbound.intake.store_reply`: a reply is stored once by
its Chatwoot message id, never when the message is one we created in Chatwoot ourselves; the
ids of one integration's replies follow arrival order (the caller holds the integration
locks). Conversation status changes are applied in arrival order too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from app.relay.intake_lock import insert_new_events, load_integrations, lock_integrations
from app.relay.lanes.drain import deliverable
from app.relay.outbound.chatwoot_webhook import AgentReply, ConversationStatusChanged
from app.relay.outbound.intake import record_conversation_status, store_reply
from app.relay.outbound.message_updates import (
    MESSAGE_UPDATES,
    MessageUpdate,
    apply_message_update,
)
from app.store.counters import bump_counters
from app.store.db import database
from app.store.models import DIRECTION_OUTBOUND, ChatwootIntegration, MessageMap

KEYS_PER_SELECT = 500


@dataclass(frozen=True)
class OutboundRequest:
    """One Chatwoot webhook to store: an agent reply, a conversation status change, or an
    agent's Retry or delete of a message (``message_updated``)."""

    integration_id: str
    change: AgentReply | ConversationStatusChanged | MessageUpdate


@dataclass
class OutboundOutcome:
    integration_found: bool = False
    deliverable: bool = False
    stored: bool = False


def store_outbound_batch(
    requests: Sequence[OutboundRequest], integrations: dict[str, ChatwootIntegration]
) -> list[OutboundOutcome]:
    """Inside the caller's transaction, holding the locks of ``integrations``."""
    outcomes = [OutboundOutcome() for _ in requests]
    replies: dict[str, list[tuple[OutboundOutcome, AgentReply]]] = {}
    for outcome, request in zip(outcomes, requests, strict=True):
        integration = integrations.get(request.integration_id)
        if integration is None:
            continue
        outcome.integration_found = True
        outcome.deliverable = deliverable(integration)
        if isinstance(request.change, ConversationStatusChanged):
            record_conversation_status(integration, request.change)
        elif isinstance(request.change, MESSAGE_UPDATES):  # Chatwoot's Retry, a delete
            outcome.stored = apply_message_update(integration, request.change)
        else:
            replies.setdefault(request.integration_id, []).append((outcome, request.change))
    deltas = [
        (integration_id, DIRECTION_OUTBOUND, "received", _store_replies(integration_id, work))
        for integration_id, work in replies.items()
    ]
    bump_counters(deltas)
    return outcomes


def store_outbound_alone(request: OutboundRequest) -> OutboundOutcome:
    """One request in its own transaction (the fallback when a batch failed)."""
    outcome = OutboundOutcome()
    with database.atomic():
        lock_integrations([request.integration_id])
        integration = load_integrations([request.integration_id]).get(request.integration_id)
        if integration is None:
            return outcome
        outcome.integration_found = True
        outcome.deliverable = deliverable(integration)
        if isinstance(request.change, ConversationStatusChanged):
            record_conversation_status(integration, request.change)
        elif isinstance(request.change, MESSAGE_UPDATES):  # Chatwoot's Retry, a delete
            outcome.stored = apply_message_update(integration, request.change)
        else:
            outcome.stored = store_reply(integration, request.change)
    return outcome


def _store_replies(integration_id: str, work: list[tuple[OutboundOutcome, AgentReply]]) -> int:
    """Store the replies not stored yet (the unique natural key decides, in the insert) and
    not our own messages echoed back; each request's outcome says whether it stored one."""
    message_ids = list(dict.fromkeys(reply.chatwoot_message_id for _, reply in work))
    ours: set[object] = set()
    for start in range(0, len(message_ids), KEYS_PER_SELECT):
        ours.update(_ours(integration_id, message_ids[start : start + KEYS_PER_SELECT]))
    rows: list[dict[str, Any]] = []
    written: list[tuple[OutboundOutcome, str]] = []
    batch_keys: set[str] = set()
    for outcome, reply in work:
        if reply.chatwoot_message_id in ours or reply.natural_key in batch_keys:
            continue
        batch_keys.add(reply.natural_key)
        written.append((outcome, reply.natural_key))
        rows.append(
            {
                "integration_id": integration_id,
                "direction": DIRECTION_OUTBOUND,
                "natural_key": reply.natural_key,
                "chat_key": reply.recipient,
                "kind": "reply",
                "payload": reply.to_json(),
            }
        )
    new = insert_new_events(rows)
    for outcome, natural_key in written:
        outcome.stored = natural_key in new
    return len(new)


def _ours(integration_id: str, message_ids: list[Any]) -> Iterable[object]:
    if not message_ids:
        return []
    query = MessageMap.select(MessageMap.chatwoot_message_id).where(
        (MessageMap.integration == integration_id) & MessageMap.chatwoot_message_id.in_(message_ids)
    )
    return [value for (value,) in cast("Iterable[tuple[object]]", query.tuples())]
