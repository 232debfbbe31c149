"""Per-chat lanes: the events of one chat and direction are delivered one at a time, in order.

Any worker may be asked to drain a lane; a Redis lock makes it likely that only one does at a
time, and it delivers every pending event of the lane in id order until none is left.
Different chats drain in parallel. A worker that finds the lane locked leaves: the holder
re-checks for new events after releasing the lock, so nothing is stranded (and the recovery
sweep is a second net).

The lock is an optimisation, not the guard (DESIGN invariant 10; Redis may restart empty, a
worker may pause past a TTL): events are claimed in the database (:mod:`app.relay.lanes.claims`),
in small batches, by compare-and-set. A drain delivers only the leading events of the lane
whose claim it won, re-asserts the claim before each post, and records outcomes only while
the claim is its own; when another drain owns the lane it stops. An event taken over from a
previous owner (a killed worker) may have reached the remote side: its handler is told to
check before sending it again.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from app.logs import log_context
from app.relay.lanes import claims
from app.relay.lanes.claims import ClaimLost, lock_seconds
from app.relay.lanes.liveness import lock_token, running, take_over_if_orphaned
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


Waker = Callable[[str, str, str], None]  # direction, integration id, chat key: enqueue a lane


class LaneHandler(Protocol):
    """Delivers the events of one direction.

    ``asserts_claim``: the handler re-asserts the event's claim itself right before each
    remote send (:func:`app.relay.lanes.claims.reassert`, folded into a write it makes anyway);
    otherwise the lane does it before handing the event over.
    """

    direction: str
    asserts_claim: bool

    def open(self, integration: ChatwootIntegration) -> object:
        """What the handler needs for this integration (clients), built once per drain."""

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> Step:
        """Deliver ``row`` and record its fate (with :func:`finish`, :func:`retry_later`, …).

        ``interrupted``: a previous attempt may have reached the remote side. Raises
        :class:`ClaimLost` when a claimed write finds the event owned by another drain.
        """


@dataclass(frozen=True)
class DrainResult:
    """What a drain did; ``retry_after`` (seconds) asks the caller to come back later;
    ``yielded``: another drain owns the lane, this one left it."""

    delivered: int = 0
    failed: int = 0
    retry_after: float | None = None
    held: bool = False
    backing_off: bool = False
    yielded: bool = False

    @property
    def stopped(self) -> bool:
        """The lane cannot go on now (retry scheduled, held, waiting for a backoff, or in
        another drain's hands)."""
        return self.retry_after is not None or self.held or self.backing_off or self.yielded

    def __add__(self, later: DrainResult) -> DrainResult:
        return DrainResult(
            self.delivered + later.delivered,
            self.failed + later.failed,
            later.retry_after,
            later.held,
            later.backing_off,
            later.yielded,
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
    token = lock_token()
    keeper = _LockKeeper(redis.lock(lock_key, timeout=lock_seconds()), lock_key, token)
    total = DrainResult()
    with running(token):
        while keeper.acquire():
            try:
                lane = _Lane(handler, integration_id, chat_key, token, keeper)
                total = total + lane.drain()
            finally:
                keeper.release()
            if total.stopped or not _has_ready_event(handler.direction, integration_id, chat_key):
                break
    return total


@dataclass
class _LockKeeper:
    """The lane's Redis lock. Losing it (Redis restarted empty, or down) does not stop a
    drain: the events' claims in the database are the guard."""

    lock: Lock
    key: str
    token: str
    renewed: float = 0.0

    def acquire(self) -> bool:
        """Take the lock; one left behind by a dead worker process is taken over."""
        if self.lock.acquire(blocking=False, token=self.token):
            self.renewed = time.monotonic()
            return True
        if take_over_if_orphaned(self.key) and self.lock.acquire(blocking=False, token=self.token):
            self.renewed = time.monotonic()
            return True
        return False

    def renew(self) -> None:
        if time.monotonic() - self.renewed <= lock_seconds() / 3:
            return
        self.renewed = time.monotonic()
        try:
            self.lock.reacquire()
        except (LockError, RedisError) as exc:
            logger.info("lane lock not renewed (%s); the claims guard the lane", type(exc).__name__)

    def release(self) -> None:
        try:
            self.lock.release()
        except (LockError, RedisError) as exc:
            logger.info("lane lock not released (%s)", type(exc).__name__)


@dataclass
class _Lane:
    """One locked pass over a lane: claim the head, deliver what was won, give back the rest."""

    handler: LaneHandler
    integration_id: str
    chat_key: str
    token: str
    keeper: _LockKeeper
    outstanding: set[int] = field(default_factory=set)  # claimed, outcome not recorded yet
    attempted: set[int] = field(default_factory=set)
    was_in_flight: dict[int, bool] = field(default_factory=dict)  # as first read

    def drain(self) -> DrainResult:
        with thread_connection():
            integration = ChatwootIntegration.get_or_none(
                ChatwootIntegration.id == self.integration_id
            )
            if integration is None or not deliverable(integration):
                return DrainResult(held=integration is not None)
            context = self.handler.open(integration)
            try:
                return self._deliver_batches(context)
            finally:
                if self.outstanding:
                    claims.release(self.token, sorted(self.outstanding - self.attempted))

    def _deliver_batches(self, context: object) -> DrainResult:
        result = DrainResult()
        while batch := _pending(self.handler.direction, self.integration_id, self.chat_key):
            if batch[0].next_attempt_at is not None and batch[0].next_attempt_at > utcnow():
                # an earlier run scheduled the retry of this event; leave it to that run
                return result + DrainResult(backing_off=True)
            owned = self._claim(batch)
            if not owned:
                logger.info("a %s lane of %s is drained elsewhere", *self._name())
                return result + DrainResult(yielded=True)
            for position, row in enumerate(owned):
                self.keeper.renew()
                try:
                    step = self._deliver(context, row, reassert=position > 0)
                except ClaimLost as lost:
                    logger.warning("a %s lane of %s left to another drain: %s", *self._name(), lost)
                    return result + DrainResult(yielded=True)
                result = result + _result_of(step)
                if result.stopped:
                    return result
        return result

    def _name(self) -> tuple[str, str]:
        """How logs name the lane (not by its chat key: a customer's phone number)."""
        return self.handler.direction, self.integration_id

    def _claim(self, batch: list[RelayEvent]) -> list[RelayEvent]:
        """Claim the head of the lane; the leading events this drain now owns, re-read."""
        for row in batch:
            self.was_in_flight.setdefault(row.id, bool(row.in_flight))
        claims.claim(claims.claimable_prefix(batch, self.token), self.token)
        current = _pending(self.handler.direction, self.integration_id, self.chat_key)
        self.outstanding |= {row.id for row in current if row.claim_token == self.token}
        owned = []
        for row in current:
            if row.claim_token != self.token:
                break
            owned.append(row)
        return owned

    def _deliver(self, context: object, row: RelayEvent, reassert: bool) -> Step:
        if reassert and not self.handler.asserts_claim:
            claims.reassert(row)
        self.attempted.add(row.id)
        interrupted = self.was_in_flight.get(row.id, True) or row.attempts > 0
        with log_context(event_id=row.id, integration_id=self.integration_id):
            step = self.handler.deliver(context, row, interrupted=interrupted)
        self.outstanding.discard(row.id)
        return step


def _result_of(step: Step) -> DrainResult:
    if step is DELIVERED:
        return DrainResult(delivered=1)
    if step is FAILED:
        return DrainResult(failed=1)
    if step is HELD:
        return DrainResult(held=True)
    return DrainResult(retry_after=step.retry_after)


def _pending(direction: str, integration_id: str, chat_key: str) -> list[RelayEvent]:
    """The next events of the lane, oldest first."""
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


def _has_ready_event(direction: str, integration_id: str, chat_key: str) -> bool:
    with thread_connection():
        batch = _pending(direction, integration_id, chat_key)
        if not batch:
            return False
        head = batch[0]
        return head.next_attempt_at is None or head.next_attempt_at <= utcnow()


def finish(row: RelayEvent, status: str, error: str = "") -> None:
    """Record the final fate of an attempted event (``delivered``, ``failed`` or ``waiting``),
    if this drain still owns it (else :class:`ClaimLost`)."""
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
    claims.update_owned(
        row,
        attempts=attempts,
        last_error=reason,
        next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
        sending=False,
        **claims.released(),
    )
    logger.info("event %s: transient failure (%s); retry in %.1fs", row.id, reason, delay)
    return Step("retry", delay)


def wait_briefly(row: RelayEvent, reason: str, seconds: float = 0.5) -> Step:
    """Not a failure: the event waits for something about to happen (a send call under way
    returning its message id). Short fixed delay, no attempt counted."""
    claims.update_owned(
        row,
        last_error=reason,
        next_attempt_at=utcnow() + dt.timedelta(seconds=seconds),
        **claims.released(),
    )
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
