"""The map between WhatsApp message ids and Chatwoot messages, both directions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.store.models import (
    EVENT_PENDING,
    EVENT_WAITING,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
)
from app.store.prepared import insert_ignore, update_where, values_where


@dataclass(frozen=True)
class MessageLink:
    """A WhatsApp message and the Chatwoot message it became, to be remembered."""

    whatsapp_id: str
    chatwoot_id: int
    conversation_id: int
    direction: str


def remember_messages(integration_id: str, links: Sequence[MessageLink]) -> int:
    """:func:`remember_message` for many links at once (one insert, one wake for the business's
    own messages); used when a drain flushes the outcomes of a batch. Returns statuses woken."""
    if not links:
        return 0
    MessageMap.insert_many(
        [
            {
                MessageMap.integration: integration_id,
                MessageMap.whatsapp_message_id: link.whatsapp_id,
                MessageMap.chatwoot_message_id: link.chatwoot_id,
                MessageMap.chatwoot_conversation_id: link.conversation_id,
                MessageMap.direction: link.direction,
            }
            for link in links
        ]
    ).on_conflict_ignore().execute()
    outgoing = [link.whatsapp_id for link in links if link.direction != "incoming"]
    if not outgoing:
        return 0  # WhatsApp sends statuses only for messages the business sent
    return int(
        RelayEvent.update(status=EVENT_PENDING, next_attempt_at=None)
        .where(
            (RelayEvent.integration == integration_id)
            & RelayEvent.message_id.in_(outgoing)
            & (RelayEvent.status == EVENT_WAITING)
        )
        .execute()
    )


def remember_message(
    integration: ChatwootIntegration,
    whatsapp_id: str,
    chatwoot_id: int,
    conversation: int,
    direction: str,
) -> int:
    """Map a WhatsApp message id to its Chatwoot message, and wake the statuses that arrived
    before it (they wait in ``waiting``). Returns how many statuses were woken."""
    insert_ignore(
        MessageMap,
        integration=integration,
        whatsapp_message_id=whatsapp_id,
        chatwoot_message_id=chatwoot_id,
        chatwoot_conversation_id=conversation,
        direction=direction,
    )
    if direction == "incoming":
        return 0  # WhatsApp sends statuses only for messages the business sent
    woken = {"status": EVENT_PENDING, "next_attempt_at": None}
    waiting: dict[str, Any] = {
        "integration": integration,
        "message_id": whatsapp_id,
        "status": EVENT_WAITING,
    }
    return update_where(RelayEvent, woken, **waiting)


TICK_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


def chatwoot_status(integration: ChatwootIntegration, chatwoot_id: int) -> str | None:
    """The furthest tick applied to a Chatwoot message (over all its WhatsApp parts)."""
    statuses = values_where(
        MessageMap, "status", integration=integration, chatwoot_message_id=chatwoot_id
    )
    ticks = [str(status) for status in statuses if status is not None]
    return max(ticks, key=TICK_ORDER.__getitem__) if ticks else None


def advances(integration: ChatwootIntegration, chatwoot_id: int, status: str) -> bool:
    """Whether ``status`` moves the Chatwoot message forward. WhatsApp's webhooks may arrive
    out of order (read before delivered), and our ``sent`` tick may come after a status."""
    current = chatwoot_status(integration, chatwoot_id)
    return current is None or TICK_ORDER[status] > TICK_ORDER[current]


def record_tick(integration: ChatwootIntegration, whatsapp_id: str, status: str) -> None:
    MessageMap.update(status=status).where(
        (MessageMap.integration == integration) & (MessageMap.whatsapp_message_id == whatsapp_id)
    ).execute()


def record_sent(integration: ChatwootIntegration | str, chatwoot_ids: int | Sequence[int]) -> None:
    """Our own ``sent`` tick, on every WhatsApp part of the replies that has none yet."""
    ids = [chatwoot_ids] if isinstance(chatwoot_ids, int) else list(chatwoot_ids)
    if not ids:
        return
    MessageMap.update(status="sent").where(
        (MessageMap.integration == integration)
        & MessageMap.chatwoot_message_id.in_(ids)
        & MessageMap.status.is_null()
    ).execute()
