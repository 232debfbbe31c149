"""Intake: store parsed WhatsApp events durably, once each, before the webhook is answered.

Each event is keyed by its natural key (``msg:<id>``, ``status:<id>:<status>``), unique per
integration and direction, so a redelivered webhook stores nothing new. The ordering lane of an
event (``chat_key``) is resolved through the integration's aliases, so the phone number, the
BSUID, the parent BSUID and the LID of one person share one lane, one contact and one
conversation. A lane is keyed by the first identifier it was seen under (a BSUID-only customer's
lane stays keyed by the BSUID after their number appears); a status naming only the BSUID
(``recipient_user_id``) finds the lane through the same aliases.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import peewee

from app.relay.intake_lock import lock_integrations
from app.relay.messages import Event, InboundMessage, StatusUpdate
from app.store.counters import bump_counters
from app.store.db import database
from app.store.models import (
    DIRECTION_INBOUND,
    ChatAlias,
    ChatwootIntegration,
    RelayEvent,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredEvent:
    """A newly stored event: what the relay needs to enqueue it."""

    event_id: int
    chat_key: str


def _identifiers(event: Event) -> list[str]:
    """Every identifier ``event`` names for its chat, ``chat_id`` first."""
    candidates = [event.chat_id]
    if isinstance(event, InboundMessage):
        candidates += [a for a in event.chat_aliases if a and a not in candidates]
    return candidates


def _oldest_lane(integration: ChatwootIntegration, lanes: set[str]) -> str:
    """Of several lanes, the one whose first identifier was recorded first."""
    first_seen = (
        ChatAlias.select(ChatAlias.chat_key, peewee.fn.MIN(ChatAlias._meta.primary_key))
        .where((ChatAlias.integration == integration) & (ChatAlias.chat_key.in_(list(lanes))))
        .group_by(ChatAlias.chat_key)
        .tuples()
    )
    ranked = sorted(cast("Iterable[tuple[str, int]]", first_seen), key=lambda r: (r[1], r[0]))
    return str(ranked[0][0]) if ranked else min(lanes)


def _chat_key(integration: ChatwootIntegration, event: Event) -> tuple[str, set[str]]:
    """The lane of ``event`` (its chat, or the chat one of its aliases already belongs to),
    and the identifiers of the event that are already recorded as aliases.

    When the identifiers are recorded under several lanes (two routes to one person that were
    first seen apart), the oldest lane wins; the lanes themselves are not merged.
    """
    candidates = _identifiers(event)
    known = (
        ChatAlias.select(ChatAlias.identifier, ChatAlias.chat_key)
        .where((ChatAlias.integration == integration) & (ChatAlias.identifier.in_(candidates)))
        .tuples()
    )
    by_alias = dict(cast("Iterable[tuple[str, str]]", known))
    lanes = {str(lane) for lane in by_alias.values()}
    if not lanes:
        return event.chat_id, set()
    if len(lanes) == 1:
        return lanes.pop(), set(by_alias)
    chosen = _oldest_lane(integration, lanes)
    logger.warning(
        "event %s names identifiers of %d chats; relayed in the oldest (%s), chats not merged",
        event.natural_key,
        len(lanes),
        chosen,
    )
    return chosen, set(by_alias)


def _remember_aliases(
    integration: ChatwootIntegration, chat_key: str, event: Event, known: set[str]
) -> None:
    for alias in _identifiers(event):
        if alias not in known:
            ChatAlias.insert(
                integration=integration, identifier=alias, chat_key=chat_key
            ).on_conflict_ignore().execute()


def _kind(event: Event) -> str:
    return "status" if isinstance(event, StatusUpdate) else event.kind


def store_inbound(integration: ChatwootIntegration, events: list[Event]) -> list[StoredEvent]:
    """Store the events that are new; returns them in arrival order. One transaction."""
    stored: list[StoredEvent] = []
    with database.atomic():
        lock_integrations([integration.id])
        for event in events:
            chat_key, known = _chat_key(integration, event)
            _remember_aliases(integration, chat_key, event, known)
            event_id = _insert_once(integration, event, chat_key)
            if event_id is not None:
                stored.append(StoredEvent(event_id, chat_key))
        if stored:
            bump_counters([(integration.id, DIRECTION_INBOUND, "received", len(stored))])
    return stored


def _insert_once(integration: ChatwootIntegration, event: Event, chat_key: str) -> int | None:
    """Insert unless the natural key is already stored (then ``None``)."""
    exists = (
        RelayEvent.select(RelayEvent.id)
        .where(
            (RelayEvent.integration == integration)
            & (RelayEvent.direction == DIRECTION_INBOUND)
            & (RelayEvent.natural_key == event.natural_key)
        )
        .exists()
    )
    if exists:
        return None
    try:
        with database.atomic():
            row = RelayEvent.create(
                integration=integration,
                direction=DIRECTION_INBOUND,
                natural_key=event.natural_key,
                chat_key=chat_key,
                kind=_kind(event),
                payload=event.to_json(),
                message_id=event.message_id,
            )
    except peewee.IntegrityError:
        logger.info("event %s stored concurrently by another request", event.natural_key)
        return None
    return int(row.id)
