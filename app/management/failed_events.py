"""Failed relay events: list them (newest first, paged) and send them back to be relayed.

A failed event is one the relay gave up on for good (Chatwoot refused it, its media was gone,
WhatsApp refused the reply, …). Nothing here talks HTTP or Redis: the callers (the API and the
CLI) enqueue the lanes that :func:`retry_failed` returns.

Replay keeps every guarantee of a first delivery:

* order: a replayed event keeps its id, so its lane delivers it before the chat's newer
  pending events, one at a time, like any other;
* no duplicate: the event keeps ``attempts = 1`` (the failed attempt that was made), and a lane
  delivers an event with ``attempts > 0`` *interrupted*: an inbound message is first looked up
  in Chatwoot by its ``source_id`` and only posted if it is not there;
* an outbound reply keeps ``progress`` (the parts already sent to WhatsApp are not sent again).

Timestamps: no column records attempts separately. ``first_attempt_at`` is the event's
``created_at`` (a stored event is attempted at once unless its integration is paused or in
error); ``last_attempt_at`` is its ``updated_at``, which every write moves
(:meth:`app.store.models.RelayEvent.update`): for a failed event, when the failure was recorded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from app.management.integrations import rfc3339
from app.relay.lanes.replay import back_to_pending
from app.store.db import database
from app.store.models import (
    DIRECTION_INBOUND,
    DIRECTION_OUTBOUND,
    EVENT_FAILED,
    EVENT_PENDING,
    ChatwootIntegration,
    Instance,
    RelayEvent,
)

logger = logging.getLogger(__name__)

DIRECTIONS = (DIRECTION_INBOUND, DIRECTION_OUTBOUND)
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_EVENT_ID = 2**63 - 1  # BigAutoField
_PHONE_KEY = re.compile(r"[0-9]{6,15}")


@dataclass(frozen=True)
class FailedEvent:
    """One failed event as ``failed`` shows it: no message content."""

    id: int
    direction: str
    chat: str
    kind: str
    reason: str
    attempts: int
    first_attempt_at: str
    last_attempt_at: str

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "direction": self.direction,
            "chat": self.chat,
            "kind": self.kind,
            "reason": self.reason,
            "attempts": self.attempts,
            "first_attempt_at": self.first_attempt_at,
            "last_attempt_at": self.last_attempt_at,
        }


@dataclass(frozen=True)
class FailedPage:
    events: list[FailedEvent]
    next_before: int | None  # the ``before`` of the next page; None on the last page


def chat_label(chat_key: str) -> str:
    """The customer as WhatsApp named them: a phone number in E.164 with ``+`` (lanes are
    keyed by its digits), else the identifier itself (a BSUID, a group id)."""
    return f"+{chat_key}" if _PHONE_KEY.fullmatch(chat_key) else chat_key


def list_failed(
    integration: ChatwootIntegration,
    direction: str | None = None,
    limit: int = DEFAULT_LIMIT,
    before: int | None = None,
) -> FailedPage:
    """A page of failed events, newest first."""
    rows = list(failed_select(str(integration.id), direction, before).limit(limit + 1))
    page = rows[:limit]
    next_before = int(page[-1].id) if len(rows) > limit else None
    return FailedPage([_failed_event(row) for row in page], next_before)


def failed_select(integration_id: str, direction: str | None, before: int | None) -> Any:
    """The failed events, newest first: read along the index ``integration, status, id``."""
    condition = (RelayEvent.integration == integration_id) & (RelayEvent.status == EVENT_FAILED)
    if direction is not None:
        condition &= RelayEvent.direction == direction
    if before is not None:
        condition &= RelayEvent.id < before
    columns = (
        RelayEvent.id,
        RelayEvent.direction,
        RelayEvent.chat_key,
        RelayEvent.kind,
        RelayEvent.last_error,
        RelayEvent.attempts,
        RelayEvent.created_at,
        RelayEvent.updated_at,
    )  # never the payload: it holds the message
    return RelayEvent.select(*columns).where(condition).order_by(RelayEvent.id.desc())


def _failed_event(row: RelayEvent) -> FailedEvent:
    return FailedEvent(
        id=int(row.id),
        direction=str(row.direction),
        chat=chat_label(str(row.chat_key)),
        kind=str(row.kind),
        reason=str(row.last_error),
        attempts=int(row.attempts),
        first_attempt_at=rfc3339(row.created_at),
        last_attempt_at=rfc3339(row.updated_at),
    )


Lane = tuple[str, str]  # direction, chat key


@dataclass(frozen=True)
class RetryResult:
    """What :func:`retry_failed` did: how many events went back to ``pending``, the ids that
    were not failed events of the integration, and the lanes to enqueue."""

    retrying: int
    skipped: list[int] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)

    def chat_keys(self, direction: str) -> list[str]:
        return [chat for lane_direction, chat in self.lanes if lane_direction == direction]


def retry_failed(integration: ChatwootIntegration, ids: Sequence[int] | None = None) -> RetryResult:
    """Put the integration's failed events (all, or those of ``ids``) back to ``pending``.

    Compare-and-set in one transaction: only rows still ``failed`` change, so two concurrent
    retries replay an event once. The rows are locked (PostgreSQL ``FOR UPDATE``; SQLite's
    write lock is taken when the transaction begins).
    """
    wanted = sorted(set(ids)) if ids is not None else None
    if wanted == []:
        return RetryResult(0)
    condition = (RelayEvent.integration == integration.id) & (RelayEvent.status == EVENT_FAILED)
    if wanted is not None:
        condition &= RelayEvent.id.in_(wanted)
    with database.atomic():
        query = RelayEvent.select(RelayEvent.id, RelayEvent.direction, RelayEvent.chat_key)
        query = query.where(condition)
        if database.for_update:  # PostgreSQL; SQLite has no FOR UPDATE and needs none
            query = query.for_update()
        found = cast("Iterable[tuple[int, str, str]]", query.tuples())
        rows = [(int(i), str(d), str(c)) for i, d, c in found]
        if rows:
            _back_to_pending(condition)
    found_ids = {i for i, _, _ in rows}
    skipped = [i for i in wanted if i not in found_ids] if wanted is not None else []
    lanes = sorted({(direction, chat) for _, direction, chat in rows})
    logger.info(
        "integration %s: %d failed events back to pending, %d ids skipped",
        integration.id,
        len(rows),
        len(skipped),
    )
    return RetryResult(len(rows), skipped, lanes)


def _back_to_pending(condition: Any) -> None:
    """The failed events matching ``condition`` pending again, unclaimed, no backoff
    (:func:`app.relay.lanes.replay.back_to_pending`, shared with Chatwoot's Retry button):
    ``attempts`` restarts at 1, so the lane delivers the event *interrupted* (looks before
    posting again); ``progress`` stays; ``last_error`` keeps the old reason behind
    ``retrying: `` until the outcome replaces it."""
    back_to_pending(condition)


def oldest_pending_at(integration: ChatwootIntegration) -> str | None:
    """When the integration's oldest pending event was stored (RFC 3339), or None."""
    row = oldest_pending_select(str(integration.id)).first()
    return None if row is None else rfc3339(row.created_at)


def oldest_pending_select(integration_id: str) -> Any:
    """The oldest pending event is the one with the lowest id: the first entry of the index
    ``integration, status, id`` for ``pending``, one row read, no scan."""
    return (
        RelayEvent.select(RelayEvent.created_at)
        .where((RelayEvent.integration == integration_id) & (RelayEvent.status == EVENT_PENDING))
        .order_by(RelayEvent.id)
        .limit(1)
    )


def integration_named(instance_name: str) -> ChatwootIntegration:
    """The integration of the instance called ``instance_name`` (any account: for the CLI),
    or :class:`LookupError` saying what is missing."""
    integration: ChatwootIntegration | None = (
        ChatwootIntegration.select().join(Instance).where(Instance.name == instance_name).first()
    )
    if integration is not None:
        return integration
    if Instance.get_or_none(Instance.name == instance_name) is None:
        raise LookupError("instance not found")
    raise LookupError("no chatwoot integration for this instance")
