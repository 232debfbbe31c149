"""Per-chat lanes: the events of one chat are delivered one at a time, oldest first.

Any worker may be asked to drain a lane; a Redis lock makes sure only one does at a time, and
it delivers every pending event of the lane in id order until none is left. Different chats
drain in parallel. A worker that finds the lane locked leaves: the holder re-checks for new
events after releasing the lock, so nothing is stranded (and the recovery sweep is a second net).

Failures are classified here:

* transient (connect, timeout, 429, 5xx): the event keeps its place, ``next_attempt_at`` is set
  with exponential backoff and the lane stops; the caller schedules the retry;
* permanent for the event (422, media gone or too large): the event is ``failed`` with the
  reason and the lane moves on;
* permanent for the integration (401/403, inbox gone): the integration turns ``error`` and
  every event waits until a successful ``set`` replays them in order.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from redis.lock import Lock

from app.config import get_settings
from app.integrations.errors import (
    RemoteError,
    RemoteForbidden,
    RemoteNotFound,
    RemoteUnauthorized,
    is_transient,
)
from app.relay.inbound import (
    Delivered,
    InboundContext,
    MediaUnavailable,
    Outcome,
    deliver,
    remember_message,
)
from app.store.db import database, thread_connection
from app.store.models import (
    DIRECTION_INBOUND,
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    EVENT_WAITING,
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


@dataclass(frozen=True)
class Step:
    """The fate of one event: ``delivered``, ``failed``, ``held`` or ``retry`` (after seconds)."""

    kind: Literal["delivered", "failed", "held", "retry"]
    retry_after: float | None = None


DELIVERED = Step("delivered")
FAILED = Step("failed")
HELD = Step("held")


class IntegrationBroken(Exception):
    """Chatwoot refuses the integration itself; carries the text for ``last_error``."""


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


ContextFactory = Callable[[ChatwootIntegration], InboundContext]


def lock_seconds() -> float:
    """How long a lane stays locked without its holder renewing it (before each event).

    Long enough for one event's worst case (every in-call attempt timing out), short enough
    that a lane held by a killed worker frees itself soon.
    """
    settings = get_settings()
    return settings.remote_timeout_seconds * (settings.remote_retry_attempts + 1) + 10


QUEUED_FLAG_SECONDS = 300


def claim_enqueue(integration_id: str, chat_key: str) -> bool:
    """True when the caller should enqueue the lane: no drain of it is queued yet.

    Saves a worker run per event when a chat is busy. The flag is cleared when a drain
    starts, so an event stored after that enqueues the lane again; a lost queue message at
    worst delays the lane until the flag expires or the recovery sweep (which ignores the
    flag) comes by.
    """
    key = redis_key("queued", integration_id, chat_key)
    return bool(get_redis().set(key, b"1", nx=True, ex=QUEUED_FLAG_SECONDS))


def drain(integration_id: str, chat_key: str, make_context: ContextFactory) -> DrainResult:
    """Deliver the lane's pending events in order; see the module docstring."""
    redis = get_redis()
    redis.delete(redis_key("queued", integration_id, chat_key))
    lock = redis.lock(redis_key("lane", integration_id, chat_key), timeout=lock_seconds())
    total = DrainResult()
    while lock.acquire(blocking=False):
        try:
            total = _merge(total, _drain_locked(integration_id, chat_key, make_context, lock))
        finally:
            lock.release()
        if total.stopped or not _has_ready_event(integration_id, chat_key):
            break
    return total


def _merge(first: DrainResult, second: DrainResult) -> DrainResult:
    return DrainResult(
        delivered=first.delivered + second.delivered,
        failed=first.failed + second.failed,
        retry_after=second.retry_after,
        held=second.held,
        backing_off=second.backing_off,
    )


def _drain_locked(
    integration_id: str, chat_key: str, make_context: ContextFactory, lock: Lock
) -> DrainResult:
    with thread_connection():
        integration = ChatwootIntegration.get_or_none(ChatwootIntegration.id == integration_id)
        if integration is None or not deliverable(integration):
            return DrainResult(held=integration is not None)
        context = make_context(integration)
        delivered = failed = 0
        renewed = time.monotonic()
        while (row := _head(integration_id, chat_key)) is not None:
            if row.next_attempt_at is not None and row.next_attempt_at > utcnow():
                # an earlier run scheduled the retry of this event; leave it to that run
                return DrainResult(delivered, failed, backing_off=True)
            if time.monotonic() - renewed > lock_seconds() / 3:
                lock.reacquire()
                renewed = time.monotonic()
            step = _deliver_one(context, row)
            if step is DELIVERED:
                delivered += 1
            elif step is FAILED:
                failed += 1
            elif step is HELD:
                return DrainResult(delivered, failed, held=True)
            else:
                return DrainResult(delivered, failed, retry_after=step.retry_after)
        return DrainResult(delivered, failed)


def _head(integration_id: str, chat_key: str) -> RelayEvent | None:
    head: RelayEvent | None = (
        RelayEvent.select()
        .where(
            (RelayEvent.integration == integration_id)
            & (RelayEvent.direction == DIRECTION_INBOUND)
            & (RelayEvent.chat_key == chat_key)
            & (RelayEvent.status == EVENT_PENDING)
        )
        .order_by(RelayEvent.id)
        .first()
    )
    return head


def _has_ready_event(integration_id: str, chat_key: str) -> bool:
    with thread_connection():
        head = _head(integration_id, chat_key)
        return head is not None and (
            head.next_attempt_at is None or head.next_attempt_at <= utcnow()
        )


def _deliver_one(context: InboundContext, row: RelayEvent) -> Step:
    """Deliver ``row`` and record its fate.

    The attempt is counted (and committed) before anything is sent, so that an attempt cut
    short by a crash is known on the next run, which then checks Chatwoot before posting.
    """
    RelayEvent.update(attempts=row.attempts + 1).where(RelayEvent.id == row.id).execute()
    try:
        outcome = _deliver_retrying_lost_conversation(context, row)
    except MediaUnavailable as exc:
        _finish(row, EVENT_FAILED, f"media unavailable: {exc}")
        return FAILED
    except IntegrationBroken as exc:
        _break_integration(context.integration, str(exc))
        return HELD
    except RemoteError as exc:
        return _classify_remote(context, row, exc)
    if isinstance(outcome, Delivered):
        with database.atomic():
            if outcome.link is not None:
                link = outcome.link
                remember_message(
                    context.integration,
                    link.whatsapp_id,
                    link.chatwoot_id,
                    link.conversation_id,
                    link.direction,
                )
            _finish(row, EVENT_DELIVERED, "")
    else:
        _finish(row, EVENT_WAITING, "waiting for the message this status belongs to")
    return DELIVERED


def _deliver_retrying_lost_conversation(context: InboundContext, row: RelayEvent) -> Outcome:
    """A conversation deleted in Chatwoot is recreated once; a second 404 means the inbox
    itself may be gone, which is checked before blaming the event."""
    try:
        return deliver(context, row)
    except RemoteNotFound:
        logger.info("event %s: conversation gone in Chatwoot, opening a new one", row.id)
    try:
        return deliver(context, row)
    except RemoteNotFound as exc:
        _raise_if_inbox_gone(context)
        raise exc


def _raise_if_inbox_gone(context: InboundContext) -> None:
    inbox_id = context.integration.chatwoot_inbox_id
    if inbox_id is None:
        raise IntegrationBroken("the integration has no Chatwoot inbox — run set")
    try:
        context.client.get_inbox(int(inbox_id))
    except RemoteNotFound:
        raise IntegrationBroken(
            f"Chatwoot inbox {inbox_id} no longer exists — run set to create a new one"
        ) from None


def _classify_remote(context: InboundContext, row: RelayEvent, exc: RemoteError) -> Step:
    if isinstance(exc, RemoteUnauthorized | RemoteForbidden):
        _break_integration(context.integration, _integration_error_text(exc))
        return HELD
    if is_transient(exc):
        return _schedule_retry(row, exc)
    _finish(row, EVENT_FAILED, str(exc))
    return FAILED


def _integration_error_text(exc: RemoteError) -> str:
    if isinstance(exc, RemoteUnauthorized):
        return f"Chatwoot rejected the API token — verify chatwootApiToken. Detail: {exc.detail}"
    return f"Chatwoot denied the request — verify the token's access. Detail: {exc.detail}"


def _schedule_retry(row: RelayEvent, exc: RemoteError) -> Step:
    attempts = row.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        _finish(row, EVENT_FAILED, f"gave up after {attempts} attempts: {exc}")
        return FAILED
    delay = backoff_seconds(attempts)
    next_at = utcnow() + dt.timedelta(seconds=delay)
    RelayEvent.update(attempts=attempts, last_error=str(exc), next_attempt_at=next_at).where(
        RelayEvent.id == row.id
    ).execute()
    logger.info("event %s: transient failure (%s); retry in %.1fs", row.id, exc, delay)
    return Step("retry", delay)


def _finish(row: RelayEvent, status: str, error: str) -> None:
    RelayEvent.update(
        status=status,
        last_error=error,
        attempts=row.attempts + 1,
        delivered_at=utcnow() if status == EVENT_DELIVERED else None,
        next_attempt_at=None,
    ).where(RelayEvent.id == row.id).execute()
    if status == EVENT_FAILED:
        logger.warning("event %s failed for good: %s", row.id, error)


def _break_integration(integration: ChatwootIntegration, error: str) -> None:
    logger.error("integration %s turned to error: %s", integration.id, error)
    ChatwootIntegration.update(state=STATE_ERROR, last_error=error, updated_at=utcnow()).where(
        ChatwootIntegration.id == integration.id
    ).execute()
