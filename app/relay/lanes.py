"""Per-chat lanes: the events of one chat and direction are delivered one at a time, in order.

Any worker may be asked to drain a lane; a Redis lock makes sure only one does at a time, and
it delivers every pending event of the lane in id order until none is left. Different chats
drain in parallel. A worker that finds the lane locked leaves: the holder re-checks for new
events after releasing the lock, so nothing is stranded (and the recovery sweep is a second net).

Events are claimed in small batches (``in_flight``, one write) before they are sent. An event
found still claimed by a previous run was cut short (a killed worker): its handler is told to
check the remote side before sending it again.

A :class:`LaneHandler` delivers one event and says what became of it (:class:`Step`):

* ``delivered`` / ``failed`` (permanent for the event: recorded with the reason, lane goes on);
* ``retry`` (transient: the event keeps its place with ``next_attempt_at`` set by exponential
  backoff; the lane stops and the caller schedules the retry);
* ``held`` (permanent for the integration: it turned ``error``; events wait for ``set``).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass
from typing import Literal, Protocol

from redis.lock import Lock

from app.config import get_settings
from app.relay.liveness import lock_token, take_over_if_orphaned
from app.store.db import database, thread_connection
from app.store.models import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    STATE_ACTIVE,
    STATE_ERROR,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)
from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 30
MAX_BACKOFF_SECONDS = 3600.0
CLAIM_BATCH = 20
QUEUED_FLAG_SECONDS = 300


@dataclass(frozen=True)
class Step:
    """The fate of one event: ``delivered``, ``failed``, ``held`` or ``retry`` (after seconds)."""

    kind: Literal["delivered", "failed", "held", "retry"]
    retry_after: float | None = None


DELIVERED = Step("delivered")
FAILED = Step("failed")
HELD = Step("held")


class LaneHandler(Protocol):
    """Delivers the events of one direction."""

    direction: str

    def open(self, integration: ChatwootIntegration) -> object:
        """What the handler needs for this integration (clients), built once per drain."""

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> Step:
        """Deliver ``row`` and record its fate (with :func:`finish`, :func:`retry_later`, …).

        ``interrupted``: a previous attempt may have reached the remote side.
        """


@dataclass(frozen=True)
class DrainResult:
    """What a drain did; ``retry_after`` (seconds) asks the caller to come back later."""

    delivered: int = 0
    failed: int = 0
    retry_after: float | None = None
    held: bool = False
    backing_off: bool = False

    @property
    def stopped(self) -> bool:
        """The lane cannot go on now (retry scheduled, held, or waiting for a backoff)."""
        return self.retry_after is not None or self.held or self.backing_off

    def __add__(self, later: DrainResult) -> DrainResult:
        return DrainResult(
            self.delivered + later.delivered,
            self.failed + later.failed,
            later.retry_after,
            later.held,
            later.backing_off,
        )


def backoff_seconds(attempts: int) -> float:
    """2, 4, 8 … seconds, capped at an hour, with ±20 % jitter so lanes don't stampede."""
    base = min(2.0**attempts, MAX_BACKOFF_SECONDS)
    return base * random.uniform(0.8, 1.2)


def deliverable(integration: ChatwootIntegration) -> bool:
    return (
        integration.state == STATE_ACTIVE
        and not integration.paused
        and integration.chatwoot_inbox_id is not None
    )


def lock_seconds() -> float:
    """How long a lane stays locked without its holder renewing it.

    Long enough for one event's worst case (every in-call attempt timing out). A lane held by
    a killed worker is taken over sooner, as soon as that process stops beating
    (:mod:`app.relay.liveness`).
    """
    settings = get_settings()
    return settings.remote_timeout_seconds * (settings.remote_retry_attempts + 1) + 10


def _lane_key(kind: str, direction: str, integration_id: str, chat_key: str) -> str:
    return redis_key(kind, direction, integration_id, chat_key)


def claim_enqueue(direction: str, integration_id: str, chat_key: str) -> bool:
    """True when the caller should enqueue the lane: no drain of it is queued yet.

    Saves a worker run per event when a chat is busy. The flag is cleared when a drain
    starts, so an event stored after that enqueues the lane again; a lost queue message at
    worst delays the lane until the flag expires or the recovery sweep (which ignores the
    flag) comes by.
    """
    key = _lane_key("queued", direction, integration_id, chat_key)
    return bool(get_redis().set(key, b"1", nx=True, ex=QUEUED_FLAG_SECONDS))


def drain(handler: LaneHandler, integration_id: str, chat_key: str) -> DrainResult:
    """Deliver the lane's pending events in order; see the module docstring."""
    redis = get_redis()
    redis.delete(_lane_key("queued", handler.direction, integration_id, chat_key))
    lock_key = _lane_key("lane", handler.direction, integration_id, chat_key)
    lock = redis.lock(lock_key, timeout=lock_seconds())
    total = DrainResult()
    while _acquire(lock, lock_key):
        try:
            total = total + _drain_locked(handler, integration_id, chat_key, lock)
        finally:
            lock.release()
        if total.stopped or not _has_ready_event(handler.direction, integration_id, chat_key):
            break
    return total


def _acquire(lock: Lock, lock_key: str) -> bool:
    """Take the lane's lock; one left behind by a dead worker process is taken over."""
    if lock.acquire(blocking=False, token=lock_token()):
        return True
    return take_over_if_orphaned(lock_key) and lock.acquire(blocking=False, token=lock_token())


def _drain_locked(
    handler: LaneHandler, integration_id: str, chat_key: str, lock: Lock
) -> DrainResult:
    with thread_connection():
        integration = ChatwootIntegration.get_or_none(ChatwootIntegration.id == integration_id)
        if integration is None or not deliverable(integration):
            return DrainResult(held=integration is not None)
        context = handler.open(integration)
        result = DrainResult()
        renewed = time.monotonic()
        while batch := _pending(handler.direction, integration_id, chat_key):
            if batch[0].next_attempt_at is not None and batch[0].next_attempt_at > utcnow():
                # an earlier run scheduled the retry of this event; leave it to that run
                return result + DrainResult(backing_off=True)
            _claim(batch)
            for position, row in enumerate(batch):
                if time.monotonic() - renewed > lock_seconds() / 3:
                    lock.reacquire()
                    renewed = time.monotonic()
                step = handler.deliver(context, row, interrupted=row.in_flight or row.attempts > 0)
                result = result + _result_of(step)
                if result.stopped:
                    _unclaim(batch[position + 1 :])
                    return result
        return result


def _result_of(step: Step) -> DrainResult:
    if step is DELIVERED:
        return DrainResult(delivered=1)
    if step is FAILED:
        return DrainResult(failed=1)
    if step is HELD:
        return DrainResult(held=True)
    return DrainResult(retry_after=step.retry_after)


def _pending(direction: str, integration_id: str, chat_key: str) -> list[RelayEvent]:
    """The next events of the lane, oldest first (``in_flight`` as stored, before claiming)."""
    return list(
        RelayEvent.select()
        .where(
            (RelayEvent.integration == integration_id)
            & (RelayEvent.direction == direction)
            & (RelayEvent.chat_key == chat_key)
            & (RelayEvent.status == EVENT_PENDING)
        )
        .order_by(RelayEvent.id)
        .limit(CLAIM_BATCH)
    )


def _claim(batch: list[RelayEvent]) -> None:
    unclaimed = [row.id for row in batch if not row.in_flight]
    if unclaimed:
        RelayEvent.update(in_flight=True).where(RelayEvent.id.in_(unclaimed)).execute()


def _unclaim(rows: list[RelayEvent]) -> None:
    """Rows claimed by this run but not attempted (the lane stopped before them)."""
    fresh = [row.id for row in rows if not row.in_flight]
    if fresh:
        RelayEvent.update(in_flight=False).where(RelayEvent.id.in_(fresh)).execute()


def _has_ready_event(direction: str, integration_id: str, chat_key: str) -> bool:
    with thread_connection():
        batch = _pending(direction, integration_id, chat_key)
        if not batch:
            return False
        head = batch[0]
        return head.next_attempt_at is None or head.next_attempt_at <= utcnow()


def finish(row: RelayEvent, status: str, error: str = "") -> None:
    """Record the final fate of an attempted event (``delivered``, ``failed`` or ``waiting``)."""
    RelayEvent.update(
        status=status,
        last_error=error,
        attempts=row.attempts + 1,
        delivered_at=utcnow() if status == EVENT_DELIVERED else None,
        next_attempt_at=None,
        in_flight=False,
        sending=False,
    ).where(RelayEvent.id == row.id).execute()
    if status == EVENT_FAILED:
        logger.warning("event %s failed for good: %s", row.id, error)


def fail(row: RelayEvent, error: str) -> Step:
    finish(row, EVENT_FAILED, error)
    return FAILED


def retry_later(row: RelayEvent, reason: str, at_least: float = 0.0) -> Step:
    """A transient failure: back off (at least ``at_least`` seconds), or give up at the cap."""
    attempts = row.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        return fail(row, f"gave up after {attempts} attempts: {reason}")
    delay = max(backoff_seconds(attempts), at_least)
    RelayEvent.update(
        attempts=attempts,
        last_error=reason,
        next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
        in_flight=False,
        sending=False,
    ).where(RelayEvent.id == row.id).execute()
    logger.info("event %s: transient failure (%s); retry in %.1fs", row.id, reason, delay)
    return Step("retry", delay)


def wait_briefly(row: RelayEvent, reason: str, seconds: float = 0.5) -> Step:
    """Not a failure: the event waits for something about to happen (a send call under way
    returning its message id). Short fixed delay, no attempt counted."""
    RelayEvent.update(
        last_error=reason,
        next_attempt_at=utcnow() + dt.timedelta(seconds=seconds),
        in_flight=False,
    ).where(RelayEvent.id == row.id).execute()
    return Step("retry", seconds)


def hold_integration(integration: ChatwootIntegration, row: RelayEvent, error: str) -> Step:
    """The integration itself is refused: it turns ``error`` and the event waits (unclaimed)."""
    logger.error("integration %s turned to error: %s", integration.id, error)
    with database.atomic():
        ChatwootIntegration.update(state=STATE_ERROR, last_error=error, updated_at=utcnow()).where(
            ChatwootIntegration.id == integration.id
        ).execute()
        RelayEvent.update(in_flight=False, sending=False).where(RelayEvent.id == row.id).execute()
    return HELD
