"""The map between WhatsApp message ids and Chatwoot messages, both directions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.store.models import (
    EVENT_PENDING,
    EVENT_WAITING,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
)
from app.store.prepared import exists_where, insert_ignore, rows_where, update_where


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


def chatwoot_target(integration: ChatwootIntegration, whatsapp_id: str) -> tuple[int, int] | None:
    """The Chatwoot message and conversation a WhatsApp message id is mapped to, if any."""
    rows = rows_where(
        MessageMap,
        ("chatwoot_message_id", "chatwoot_conversation_id"),
        integration=integration,
        whatsapp_message_id=whatsapp_id,
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def is_mapped(integration: ChatwootIntegration, whatsapp_id: str) -> bool:
    """Whether a WhatsApp message id is mapped to a Chatwoot message."""
    return exists_where(MessageMap, integration=integration, whatsapp_message_id=whatsapp_id)


TICK_ORDER = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


@dataclass(frozen=True)
class Tick:
    """A status to show on a Chatwoot message; ``error`` is the reason shown with ``failed``."""

    status: str
    error: str | None = None

    @property
    def rank(self) -> int:
        return TICK_ORDER[self.status]


def furthest_tick(integration: ChatwootIntegration | str, chatwoot_id: int) -> Tick | None:
    """The furthest tick claimed for a Chatwoot message (over all its WhatsApp parts)."""
    rows = rows_where(
        MessageMap,
        ("status", "status_error"),
        integration=integration,
        chatwoot_message_id=chatwoot_id,
    )
    ticks = [Tick(str(status), error) for status, error in rows if status in TICK_ORDER]
    return max(ticks, key=lambda tick: tick.rank) if ticks else None


def claim_tick(integration: ChatwootIntegration, whatsapp_id: str, tick: Tick) -> None:
    """Record that ``tick`` is to be shown for a WhatsApp part, unless the part already has it
    or a further one (WhatsApp's statuses may arrive out of order: read before delivered)."""
    behind = [status for status, rank in TICK_ORDER.items() if rank < tick.rank]
    MessageMap.update(status=tick.status, status_error=tick.error).where(
        (MessageMap.integration == integration)
        & (MessageMap.whatsapp_message_id == whatsapp_id)
        & (MessageMap.status.is_null() | MessageMap.status.in_(behind))
    ).execute()


def apply_tick(
    integration: ChatwootIntegration | str,
    chatwoot_id: int,
    tick: Tick,
    send: Callable[[Tick], object],
    *,
    claimed: bool,
    retrying: bool,
) -> Tick | None:
    """Show ``tick`` on a Chatwoot message with ``send``, so that the message ends at the
    furthest tick claimed for it, whichever lane's call lands last; returns the last tick sent,
    None when nothing was sent.

    Two lanes tick one message: the outbound lane its own ``sent`` (never claimed: it is the
    lowest, and recorded with the delivered event, batched), the inbound lane WhatsApp's
    statuses (``claimed`` with :func:`claim_tick`, committed, before this call). Every claim
    is committed before its call, so after a call lands, a claim this call may have overtaken
    is visible: while a further tick than the one sent is claimed, it is sent again (ticks
    only advance, so this ends). A tick behind a claimed one is not sent — the claimant sends
    its own — except when ``retrying``: an earlier attempt's call may have timed out and still
    landed after the claimant's, so the furthest tick is sent again (the PATCH is idempotent).
    """
    current = furthest_tick(integration, chatwoot_id)
    if current is None:
        sending = tick
    elif retrying or (claimed and current.rank == tick.rank):
        sending = current
    else:
        return None  # already shown, or another lane claimed a further tick and sends it
    while True:
        send(sending)
        latest = furthest_tick(integration, chatwoot_id)
        if latest is None or latest.rank <= sending.rank:
            return sending
        sending = latest


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
