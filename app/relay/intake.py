"""Intake: store parsed WhatsApp events durably, once each, before the webhook is answered.

Each event is keyed by its natural key (``msg:<id>``, ``status:<id>:<status>``), unique per
integration and direction, so a redelivered webhook stores nothing new. The ordering lane of an
event (``chat_key``) is resolved through the integration's aliases, so the LID and the phone
number of one person share one lane, one contact and one conversation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import peewee

from app.relay.messages import Event, InboundMessage, StatusUpdate
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


def _chat_key(integration: ChatwootIntegration, event: Event) -> tuple[str, set[str]]:
    """The lane of ``event`` (its chat, or the chat one of its aliases already belongs to),
    and the identifiers of the event that are already recorded as aliases."""
    candidates = [event.chat_id]
    if isinstance(event, InboundMessage):
        candidates += list(event.chat_aliases)
    known = (
        ChatAlias.select(ChatAlias.identifier, ChatAlias.chat_key)
        .where((ChatAlias.integration == integration) & (ChatAlias.identifier.in_(candidates)))
        .tuples()
    )
    by_alias = dict(cast("Iterable[tuple[str, str]]", known))
    for candidate in candidates:
        if candidate in by_alias:
            return str(by_alias[candidate]), set(by_alias)
    return event.chat_id, set(by_alias)


def _remember_aliases(
    integration: ChatwootIntegration, chat_key: str, event: Event, known: set[str]
) -> None:
    aliases = {event.chat_id}
    if isinstance(event, InboundMessage):
        aliases.update(event.chat_aliases)
    for alias in aliases - known:
        ChatAlias.insert(
            integration=integration, identifier=alias, chat_key=chat_key
        ).on_conflict_ignore().execute()


def _serialize_intake(integration: ChatwootIntegration) -> None:
    """Make event ids follow commit order per integration, which lanes rely on.

    SQLite transactions are IMMEDIATE and therefore serial already; on PostgreSQL concurrent
    transactions could commit ids out of order, so they take a transaction-scoped advisory
    lock keyed by the integration.
    """
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        key = int.from_bytes(
            hashlib.sha256(integration.id.encode()).digest()[:8], "big", signed=True
        )
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))


def _kind(event: Event) -> str:
    return "status" if isinstance(event, StatusUpdate) else event.kind


def store_inbound(integration: ChatwootIntegration, events: list[Event]) -> list[StoredEvent]:
    """Store the events that are new; returns them in arrival order. One transaction."""
    stored: list[StoredEvent] = []
    with database.atomic():
        _serialize_intake(integration)
        for event in events:
            chat_key, known = _chat_key(integration, event)
            _remember_aliases(integration, chat_key, event, known)
            event_id = _insert_once(integration, event, chat_key)
            if event_id is not None:
                stored.append(StoredEvent(event_id, chat_key))
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
