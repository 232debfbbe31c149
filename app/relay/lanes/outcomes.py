"""What became of an event (:class:`Step`), and how a drain records it.

Non-delivered outcomes (``failed``, ``retry``, ``waiting``, ``held``) are written at once,
each in its own transaction with its counter. ``delivered`` is the common case and costs the
most commits, so a drain keeps the delivered events of a batch in an :class:`OutcomeBuffer`
and writes them together — statuses, message-map rows, ``sent`` ticks and counters in one
transaction — when the batch ends, when the buffer is full or old, before the lane renews its
claims, and before the drain stops for any reason other than a crash.

Why this is safe: an event stays claimed (``in_flight``) until its delivered mark is
written, and the flush writes only where the claim is still the drain's own. If the worker
dies before the flush, or another drain took the events over meanwhile, the next attempt is
``interrupted`` and looks for the message on the remote side before sending it again (inbound:
Chatwoot by ``source_id``; outbound: every WhatsApp part was recorded as it was sent, and only
the final mark waits in the buffer). So a lost flush costs a look-up, never a duplicate.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.relay.lanes import claims
from app.relay.message_map import MessageLink, record_sent, remember_messages
from app.store.counters import bump_counters
from app.store.db import database
from app.store.group_commit import run_committed
from app.store.models import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    EVENT_WAITING,
    STATE_ERROR,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 30
MAX_BACKOFF_SECONDS = 3600.0
FLUSH_EVERY = 100  # delivered events kept unrecorded at most
FLUSH_SECONDS = 1.0  # how long the oldest of them may wait


@dataclass(frozen=True)
class Step:
    """The fate of one event: ``delivered``, ``failed``, ``waiting`` (a status for a message not
    known yet, parked), ``held`` or ``retry`` (after seconds).

    A ``delivered`` step carries what the drain records with the event's status: the message
    map rows (``links``), the Chatwoot message to mark ``sent`` (``sent_tick``) and any other
    write that belongs with the delivery (``after``, e.g. the chat's last customer message for
    read receipts): all of them in the flush's one transaction, never a commit of their own
    per event, and only for events the drain still owns."""

    kind: Literal["delivered", "failed", "waiting", "held", "retry"]
    retry_after: float | None = None
    links: tuple[MessageLink, ...] = ()
    sent_tick: int | None = None
    after: tuple[Callable[[], object], ...] = ()


DELIVERED = Step("delivered")
FAILED = Step("failed")
WAITING = Step("waiting")
HELD = Step("held")


def delivered(
    link: MessageLink | None = None,
    sent_tick: int | None = None,
    after: tuple[Callable[[], object], ...] = (),
) -> Step:
    """The event reached the remote side; the drain records it (``link``, ``after``) in a
    batch."""
    links = (link,) if link is not None else ()
    return Step("delivered", links=links, sent_tick=sent_tick, after=after)


@dataclass
class _Flushing:
    row: RelayEvent
    step: Step


@dataclass
class OutcomeBuffer:
    """The delivered events of one drain whose outcome is not written yet (see module doc)."""

    token: str
    integration_id: str
    direction: str
    entries: list[_Flushing] = field(default_factory=list)
    oldest: float = 0.0

    def add(self, row: RelayEvent, step: Step) -> None:
        if not self.entries:
            self.oldest = time.monotonic()
        self.entries.append(_Flushing(row, step))

    def due(self) -> bool:
        """Full, or holding an event for too long: flush before the next event."""
        age = time.monotonic() - self.oldest
        return len(self.entries) >= FLUSH_EVERY or (bool(self.entries) and age >= FLUSH_SECONDS)

    def flush(self) -> tuple[int, list[int]]:
        """Record every buffered event still claimed by this drain, in one transaction.

        Returns how many were recorded and the ids of those another drain owns now (nothing
        is written for them: that drain finds them in the remote system)."""
        entries, self.entries = self.entries, []
        if not entries:
            return 0, []
        # with other drains' writes of this process: one commit for several lanes' batches
        return run_committed(lambda: self._write(entries))

    def _write(self, entries: list[_Flushing]) -> tuple[int, list[int]]:
        with database.atomic() as savepoint:
            if _mark_delivered(self.token, [entry.row.id for entry in entries]) == len(entries):
                self._record(entries)
                return len(entries), []
            savepoint.rollback()  # some claims were lost: sort them out one by one
        owned = [entry for entry in entries if _mark_delivered(self.token, [entry.row.id])]
        self._record(owned)
        recorded = {entry.row.id for entry in owned}
        lost = [entry.row.id for entry in entries if entry.row.id not in recorded]
        return len(owned), lost

    def _record(self, entries: list[_Flushing]) -> None:
        links = [link for entry in entries for link in entry.step.links]
        remember_messages(self.integration_id, links)
        ticks = [entry.step.sent_tick for entry in entries if entry.step.sent_tick is not None]
        record_sent(self.integration_id, ticks)
        for entry in entries:
            for write in entry.step.after:
                write()
        bump_counters([(self.integration_id, self.direction, "relayed", len(entries))])


def _mark_delivered(token: str, ids: list[int]) -> int:
    changed: int = (
        RelayEvent.update(
            status=EVENT_DELIVERED,
            last_error="",
            attempts=RelayEvent.attempts + 1,
            delivered_at=utcnow(),
            next_attempt_at=None,
            sending=False,
            **claims.released(),
        )
        .where(
            RelayEvent.id.in_(ids)
            & (RelayEvent.claim_token == token)
            & (RelayEvent.status == EVENT_PENDING)
        )
        .execute()
    )
    return changed


def _count(row: RelayEvent, outcome: str) -> None:
    integration_id = str(row.__data__["integration"])  # the key, without loading the row
    bump_counters([(integration_id, str(row.direction), outcome, 1)])


def backoff_seconds(attempts: int) -> float:
    """2, 4, 8 … seconds, capped at an hour, with ±20 % jitter so lanes don't stampede."""
    base = min(2.0**attempts, MAX_BACKOFF_SECONDS)
    return base * random.uniform(0.8, 1.2)


def finish(row: RelayEvent, status: str, error: str = "") -> None:
    """Record the final fate of an attempted event (``delivered``, ``failed`` or ``waiting``)
    at once, if this drain still owns it (else :class:`ClaimLost`)."""
    with database.atomic():
        claims.update_owned(
            row,
            status=status,
            last_error=error,
            attempts=row.attempts + 1,
            delivered_at=utcnow() if status == EVENT_DELIVERED else None,
            next_attempt_at=None,
            sending=False,
            **claims.released(),
        )
        if status in (EVENT_DELIVERED, EVENT_FAILED):
            _count(row, "relayed" if status == EVENT_DELIVERED else "failed")
    if status == EVENT_FAILED:
        logger.warning("event %s failed for good: %s", row.id, error)


def park(row: RelayEvent, reason: str) -> Step:
    """The event waits (``waiting``) for something that will wake it; the lane goes on."""
    finish(row, EVENT_WAITING, reason)
    return WAITING


def fail(row: RelayEvent, error: str) -> Step:
    finish(row, EVENT_FAILED, error)
    return FAILED


def retry_later(row: RelayEvent, reason: str, at_least: float = 0.0) -> Step:
    """A transient failure: back off (at least ``at_least`` seconds), or give up at the cap."""
    attempts = row.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        return fail(row, f"gave up after {attempts} attempts: {reason}")
    delay = max(backoff_seconds(attempts), at_least)
    postpone(row, delay, attempts=attempts, last_error=reason, sending=False)
    logger.info("event %s: transient failure (%s); retry in %.1fs", row.id, reason, delay)
    return Step("retry", delay)


def postpone(row: RelayEvent, seconds: float, **fields: Any) -> None:
    """Give the event back until ``seconds`` from now; counted ``retried`` when the attempt
    counts (``fields`` sets ``attempts``)."""
    with database.atomic():
        claims.update_owned(
            row,
            next_attempt_at=utcnow() + dt.timedelta(seconds=seconds),
            **fields,
            **claims.released(),
        )
        if "attempts" in fields:
            _count(row, "retried")


def wait_briefly(row: RelayEvent, reason: str, seconds: float = 0.5) -> Step:
    """Not a failure: the event waits for something about to happen (a send call under way
    returning its message id). Short fixed delay, no attempt counted."""
    postpone(row, seconds, last_error=reason)
    return Step("retry", seconds)


def hold_integration(integration: ChatwootIntegration, row: RelayEvent, error: str) -> Step:
    """The integration itself is refused: it turns ``error`` and the event waits (unclaimed)."""
    logger.error("integration %s turned to error: %s", integration.id, error)
    with database.atomic():
        ChatwootIntegration.update(state=STATE_ERROR, last_error=error, updated_at=utcnow()).where(
            ChatwootIntegration.id == integration.id
        ).execute()
        claims.update_owned(row, sending=False, **claims.released())
    return HELD
