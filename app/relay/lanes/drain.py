"""Per-chat lanes: the events of one chat and direction are delivered one at a time, in order.

Any worker may be asked to drain a lane; a Redis lock makes it likely that only one does at a
time, and it delivers every pending event of the lane in id order until none is left.
Different chats drain in parallel. A worker that finds the lane locked leaves: the holder
re-checks for new events after releasing the lock, so nothing is stranded (and the recovery
sweep is a second net).

The lock is an optimisation, not the guard (DESIGN invariant 10; Redis may restart empty, a
worker may pause past a TTL): events are claimed in the database (:mod:`app.relay.lanes.claims`),
in batches, by compare-and-set. A drain delivers only the leading events of the lane whose
claim it won, posts only while its lease is fresh (renewing it for all its events in one write
when half of it is gone), and records outcomes only while the claim is its own; when another
drain owns the lane it stops. An event taken over from a previous owner (a killed worker) may
have reached the remote side: its handler is told to check before sending it again.
Delivered events are recorded in batches (:mod:`app.relay.lanes.outcomes`).

A :class:`LaneHandler` delivers one event and says what became of it (:class:`Step`):

* ``delivered`` (recorded by the lane, in batches) / ``failed`` (permanent for the event:
  recorded with the reason at once); the lane goes on;
* ``retry`` (transient: the event keeps its place with ``next_attempt_at`` set by exponential
  backoff; the lane stops and the caller schedules the retry);
* ``held`` (permanent for the integration: it turned ``error``; events wait for ``set``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from app.logs import log_context
from app.relay.lanes import claims
from app.relay.lanes.claims import ClaimLost, lock_seconds
from app.relay.lanes.liveness import lock_token, running, take_over_if_orphaned
from app.relay.lanes.outcomes import (
    DELIVERED,
    FAILED,
    HELD,
    MAX_ATTEMPTS,
    WAITING,
    OutcomeBuffer,
    Step,
    backoff_seconds,
    delivered,
    fail,
    finish,
    hold_integration,
    park,
    postpone,
    retry_later,
    wait_briefly,
)
from app.store.db import thread_connection
from app.store.models import EVENT_PENDING, STATE_ACTIVE, ChatwootIntegration, RelayEvent, utcnow
from app.store.prepared import oldest_where
from app.store.redis_client import get_redis, redis_key

__all__ = [
    "DELIVERED",
    "FAILED",
    "HELD",
    "MAX_ATTEMPTS",
    "WAITING",
    "ClaimLost",
    "DrainResult",
    "LaneHandler",
    "Step",
    "Waker",
    "backoff_seconds",
    "claim_enqueue",
    "deliverable",
    "delivered",
    "drain",
    "fail",
    "finish",
    "hold_integration",
    "park",
    "postpone",
    "retry_later",
    "wait_briefly",
]

logger = logging.getLogger(__name__)

CLAIM_BATCH = 100
QUEUED_FLAG_SECONDS = 300


Waker = Callable[[str, str, str], None]  # direction, integration id, chat key: enqueue a lane


class LaneHandler(Protocol):
    """Delivers the events of one direction. The lane guarantees the claim is fresh when
    :meth:`deliver` is called; a handler that writes per remote send (outbound parts) renews
    its event's claim with that write (:func:`app.relay.lanes.claims.reassert`)."""

    direction: str

    def open(self, integration: ChatwootIntegration) -> object:
        """What the handler needs for this integration (clients), built once per drain."""

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> Step:
        """Deliver ``row`` and say its fate: :func:`delivered` (the lane records it, batched),
        or record it at once with :func:`fail`, :func:`retry_later`, … and return that step.

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
    lease_from: float = 0.0  # when the lease of the events held now was last set (monotonic)
    delivered: int = 0
    failed: int = 0
    buffer: OutcomeBuffer | None = None

    def drain(self) -> DrainResult:
        with thread_connection():
            integration = ChatwootIntegration.get_or_none(
                ChatwootIntegration.id == self.integration_id
            )
            if integration is None or not deliverable(integration):
                return DrainResult(held=integration is not None)
            context = self.handler.open(integration)
            self.buffer = OutcomeBuffer(self.token, self.integration_id, self.handler.direction)
            try:
                end = self._run(context)
            finally:
                if self.outstanding:
                    claims.release(self.token, sorted(self.outstanding - self.attempted))
            return DrainResult(self.delivered, self.failed) + end

    def _run(self, context: object) -> DrainResult:
        """Deliver, then record what is still buffered. A crash (the process killed) skips the
        flush: those events are delivered again as interrupted, found on the remote side."""
        try:
            end = self._deliver_batches(context)
            self._flush()
        except ClaimLost as lost:
            logger.warning("a %s lane of %s left to another drain: %s", *self._name(), lost)
            self._flush(strict=False)
            return DrainResult(yielded=True)
        except Exception:
            self._flush(strict=False)  # what was delivered before the error stays delivered
            raise
        return end

    def _deliver_batches(self, context: object) -> DrainResult:
        while batch := _pending(self.handler.direction, self.integration_id, self.chat_key):
            if batch[0].next_attempt_at is not None and batch[0].next_attempt_at > utcnow():
                # an earlier run scheduled the retry of this event; leave it to that run
                return DrainResult(backing_off=True)
            owned = self._claim(batch)
            if not owned:
                logger.info("a %s lane of %s is drained elsewhere", *self._name())
                return DrainResult(yielded=True)
            for row in owned:
                self.keeper.renew()
                self._keep_claims()
                end = self._take(row, self._deliver(context, row))
                if end.stopped:
                    return end
            self._flush()  # before reading the lane again: buffered events are still pending
        return DrainResult()

    def _name(self) -> tuple[str, str]:
        """How logs name the lane (not by its chat key: a customer's phone number)."""
        return self.handler.direction, self.integration_id

    def _claim(self, batch: list[RelayEvent]) -> list[RelayEvent]:
        """Claim the head of the lane; the leading events this drain now owns."""
        for row in batch:
            self.was_in_flight.setdefault(row.id, bool(row.in_flight))
        prefix = claims.claimable_prefix(batch, self.token)
        started = time.monotonic()
        taken = claims.claim(prefix, self.token)
        current = batch
        if prefix and taken == len(prefix):  # each row is as read, plus this claim
            for row in prefix:
                row.claim_token, row.in_flight = self.token, True
        else:
            current = _pending(self.handler.direction, self.integration_id, self.chat_key)
        self.lease_from = started
        self.outstanding |= {row.id for row in current if row.claim_token == self.token}
        owned = []
        for row in current:
            if row.claim_token != self.token:
                break
            owned.append(row)
        return owned

    def _keep_claims(self) -> None:
        """Before a post: flush the buffer when it is due; when half the lease is gone, flush
        and renew the lease of every event still held, in one write (or :class:`ClaimLost`)."""
        assert self.buffer is not None
        if time.monotonic() - self.lease_from >= claims.lease_seconds() / 2:
            self._flush()
            started = time.monotonic()
            claims.renew(self.token, sorted(self.outstanding - self.attempted))
            self.lease_from = started
        elif self.buffer.due():
            self._flush()

    def _flush(self, strict: bool = True) -> None:
        """Record the buffered delivered events; ``strict``: :class:`ClaimLost` if another
        drain owns some of them now (nothing was written for those)."""
        assert self.buffer is not None
        recorded, lost = self.buffer.flush()
        self.delivered += recorded
        if lost and strict:
            raise ClaimLost(lost[0])

    def _deliver(self, context: object, row: RelayEvent) -> Step:
        self.attempted.add(row.id)
        interrupted = self.was_in_flight.get(row.id, True) or row.attempts > 0
        with log_context(event_id=row.id, integration_id=self.integration_id):
            step = self.handler.deliver(context, row, interrupted=interrupted)
        self.outstanding.discard(row.id)
        return step

    def _take(self, row: RelayEvent, step: Step) -> DrainResult:
        """Buffer a delivered event; what the lane does next."""
        assert self.buffer is not None
        if step.kind == "delivered":
            self.buffer.add(row, step)
        elif step.kind == "failed":
            self.failed += 1
        elif step.kind == "waiting":
            pass  # recorded by the handler; the lane goes on
        elif step.kind == "held":
            return DrainResult(held=True)
        else:
            return DrainResult(retry_after=step.retry_after)
        return DrainResult()


def _pending(direction: str, integration_id: str, chat_key: str) -> list[RelayEvent]:
    """The next events of the lane, oldest first."""
    return oldest_where(
        RelayEvent,
        CLAIM_BATCH,
        integration=integration_id,
        direction=direction,
        chat_key=chat_key,
        status=EVENT_PENDING,
    )


def _has_ready_event(direction: str, integration_id: str, chat_key: str) -> bool:
    with thread_connection():
        batch = _pending(direction, integration_id, chat_key)
        if not batch:
            return False
        head = batch[0]
        return head.next_attempt_at is None or head.next_attempt_at <= utcnow()
