"""Group-committed intake of WhatsApp events: many webhook bodies in one transaction.

Same guarantees as :func:`app.relay.inbound.intake.store_inbound`, with a constant number of
statements per integration and batch instead of several per event: the aliases and natural
keys the batch names are read once, new aliases and new events are written with one
multi-row ``INSERT`` each. Events are inserted per integration in arrival order, so their ids
follow arrival order (the caller holds the integration locks, see
:mod:`app.relay.intake_lock`). A natural key seen twice in the batch (a redelivery that
arrived meanwhile) is stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.relay.inbound.intake import _identifiers, _kind, _oldest_lane, store_inbound
from app.relay.intake_lock import (
    ROWS_PER_INSERT,
    insert_new_events,
    load_integrations,
    lock_integrations,
    select_where_in,
)
from app.relay.lanes.drain import deliverable
from app.relay.messages import Event, InboundMessage
from app.store.counters import bump_counters
from app.store.db import database
from app.store.models import DIRECTION_INBOUND, ChatAlias, ChatwootIntegration

KEYS_PER_SELECT = 500

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class InboundRequest:
    """The parsed events of one webhook body for one integration, with their stored form
    (``payloads``, serialised by :meth:`of` in the request's own task: CPU spent beside the
    writer's commits rather than inside them)."""

    integration_id: str
    events: Sequence[Event]
    payloads: Sequence[str]

    @classmethod
    def of(cls, integration_id: str, events: Sequence[Event]) -> InboundRequest:
        return cls(integration_id, events, [event.to_json() for event in events])


@dataclass
class InboundOutcome:
    """What a request stored: the lanes with new events (first-stored order) and how many."""

    integration_found: bool = False
    deliverable: bool = False
    stored: int = 0
    chat_keys: list[str] = field(default_factory=list)

    def add(self, chat_key: str) -> None:
        self.stored += 1
        if chat_key not in self.chat_keys:
            self.chat_keys.append(chat_key)


def relayed(integration: ChatwootIntegration, events: Iterable[Event]) -> list[Event]:
    """Drop what the integration does not want: group messages when ``ignoreGroups``."""
    if not integration.ignore_groups:
        return list(events)
    return [e for e in events if not (isinstance(e, InboundMessage) and e.is_group)]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def store_inbound_batch(
    requests: Sequence[InboundRequest], integrations: dict[str, ChatwootIntegration]
) -> list[InboundOutcome]:
    """Inside the caller's transaction, holding the locks of ``integrations`` (the fresh rows
    of every integration the requests name; a missing one stores nothing)."""
    outcomes = [InboundOutcome() for _ in requests]
    by_integration: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        integration = integrations.get(request.integration_id)
        if integration is None:
            continue
        outcomes[index].integration_found = True
        outcomes[index].deliverable = deliverable(integration)
        by_integration.setdefault(request.integration_id, []).append(index)
    deltas = []
    for integration_id, indexes in by_integration.items():
        batch = _IntegrationBatch(integrations[integration_id])
        stored = batch.store([(outcomes[i], requests[i]) for i in indexes])
        deltas.append((integration_id, DIRECTION_INBOUND, "received", stored))
    bump_counters(deltas)
    return outcomes


def store_inbound_alone(request: InboundRequest) -> InboundOutcome:
    """One request in its own transaction, event by event (the fallback when a batch failed:
    an event that cannot be stored costs only itself, as in :func:`store_inbound`)."""
    outcome = InboundOutcome()
    with database.atomic():
        lock_integrations([request.integration_id])
        integration = load_integrations([request.integration_id]).get(request.integration_id)
        if integration is None:
            return outcome
        outcome.integration_found = True
        outcome.deliverable = deliverable(integration)
        for stored in store_inbound(integration, relayed(integration, request.events)):
            outcome.add(stored.chat_key)
    return outcome


class _IntegrationBatch:
    """The events of one integration in a batch: resolve lanes, dedupe, write."""

    def __init__(self, integration: ChatwootIntegration) -> None:
        self.integration = integration
        self.lanes: dict[str, str] = {}  # identifier -> chat_key, stored or new in this batch
        self.new_aliases: list[dict[Any, Any]] = []
        self.batch_keys: set[str] = set()
        self.rows: list[dict[str, Any]] = []

    def store(self, work: list[tuple[InboundOutcome, InboundRequest]]) -> int:
        """Store the events not stored yet (the unique natural key decides, in the insert),
        each in its lane; every request's outcome names the lanes of what it stored."""
        wanted = set(map(id, relayed(self.integration, [e for _, r in work for e in r.events])))
        self._read_lanes([e for _, r in work for e in r.events if id(e) in wanted])
        written: list[tuple[InboundOutcome, str, str]] = []  # outcome, natural key, lane
        for outcome, request in work:
            for event, payload in zip(request.events, request.payloads, strict=True):
                if id(event) not in wanted:
                    continue
                chat_key = self._lane_of(event)
                if event.natural_key not in self.batch_keys:  # a redelivery in this batch
                    self.batch_keys.add(event.natural_key)
                    self.rows.append(self._row(event, chat_key, payload))
                    written.append((outcome, event.natural_key, chat_key))
        self._flush_aliases()
        new = insert_new_events(self.rows)
        for outcome, natural_key, chat_key in written:
            if natural_key in new:
                outcome.add(chat_key)
        return len(new)

    def _read_lanes(self, events: list[Event]) -> None:
        """The stored lanes of every identifier these events name."""
        identifiers = list(dict.fromkeys(i for e in events for i in _identifiers(e)))
        integration: tuple[Any, Any] = (ChatAlias.integration, self.integration.id)
        for part in chunks(identifiers, KEYS_PER_SELECT):
            columns = (ChatAlias.identifier, ChatAlias.chat_key)
            found = select_where_in(ChatAlias, columns, [integration], ChatAlias.identifier, part)
            self.lanes.update((str(identifier), str(key)) for identifier, key in found)

    def _lane_of(self, event: Event) -> str:
        """As :func:`app.relay.inbound.intake._chat_key`, and records the new aliases."""
        identifiers = _identifiers(event)
        lanes = {self.lanes[i] for i in identifiers if i in self.lanes}
        if not lanes:
            chat_key = event.chat_id
        elif len(lanes) == 1:
            chat_key = lanes.pop()
        else:
            self._flush_aliases()  # the oldest lane is decided by the stored aliases
            chat_key = _oldest_lane(self.integration, lanes)
            logger.warning(
                "event %s names identifiers of %d chats; relayed in the oldest (%s)",
                event.natural_key,
                len(lanes),
                chat_key,
            )
        for alias in identifiers:
            if alias not in self.lanes:
                self.lanes[alias] = chat_key
                self.new_aliases.append(
                    {
                        ChatAlias.integration: self.integration.id,
                        ChatAlias.identifier: alias,
                        ChatAlias.chat_key: chat_key,
                    }
                )
        return chat_key

    def _flush_aliases(self) -> None:
        for rows in chunks(self.new_aliases, ROWS_PER_INSERT):
            ChatAlias.insert_many(rows).on_conflict_ignore().execute()
        self.new_aliases = []

    def _row(self, event: Event, chat_key: str, payload: str) -> dict[str, Any]:
        return {
            "integration_id": self.integration.id,
            "direction": DIRECTION_INBOUND,
            "natural_key": event.natural_key,
            "chat_key": chat_key,
            "kind": _kind(event),
            "payload": payload,
            "message_id": event.message_id,
        }
