"""The map between WhatsApp message ids and Chatwoot messages, both directions."""

from __future__ import annotations

from app.store.models import (
    EVENT_PENDING,
    EVENT_WAITING,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
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
    MessageMap.insert(
        integration=integration,
        whatsapp_message_id=whatsapp_id,
        chatwoot_message_id=chatwoot_id,
        chatwoot_conversation_id=conversation,
        direction=direction,
    ).on_conflict_ignore().execute()
    if direction == "incoming":
        return 0  # WhatsApp sends statuses only for messages the business sent
    return int(
        RelayEvent.update(status=EVENT_PENDING, next_attempt_at=None)
        .where(
            (RelayEvent.integration == integration)
            & (RelayEvent.message_id == whatsapp_id)
            & (RelayEvent.status == EVENT_WAITING)
        )
        .execute()
    )


TICK_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


def chatwoot_status(integration: ChatwootIntegration, chatwoot_id: int) -> str | None:
    """The furthest tick applied to a Chatwoot message (over all its WhatsApp parts)."""
    rows = MessageMap.select(MessageMap.status).where(
        (MessageMap.integration == integration)
        & (MessageMap.chatwoot_message_id == chatwoot_id)
        & MessageMap.status.is_null(False)
    )
    ticks = [str(row.status) for row in rows]
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


def record_sent(integration: ChatwootIntegration, chatwoot_id: int) -> None:
    """Our own ``sent`` tick, on every WhatsApp part of the reply that has none yet."""
    MessageMap.update(status="sent").where(
        (MessageMap.integration == integration)
        & (MessageMap.chatwoot_message_id == chatwoot_id)
        & MessageMap.status.is_null()
    ).execute()
