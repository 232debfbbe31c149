"""Group commit: one writer thread per web process stores every webhook queued meanwhile.

A webhook endpoint verifies and parses its body, then :func:`submit` s what to store and waits.
The writer takes every request queued while it was busy (up to :data:`MAX_BATCH`), commits
them in ONE transaction (all integrations locked once, in sorted order, see
:mod:`app.relay.intake_lock`), enqueues the lanes that got new events with one Redis pipeline
of queued-flags and one of jobs (in a second thread, while the writer commits the next
batch), and only then answers each request (stored before acknowledged). A batch that fails
for a reason other than an unreachable database (one request's bad data) is stored again
request by request, so one poisoned body costs only itself. An unreachable database answers
503 to the whole batch. The queue is bounded (:data:`MAX_QUEUE`): a full queue makes requests
wait, never drops one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request

from app import jobs
from app.api.errors import ApiError
from app.api.queue import LANE_ACTORS
from app.api.webhook_body import STORAGE_DOWN, STORAGE_ERRORS
from app.relay.inbound.intake_batch import (
    InboundOutcome,
    InboundRequest,
    store_inbound_alone,
    store_inbound_batch,
)
from app.relay.intake_lock import load_integrations, lock_integrations
from app.relay.lanes.drain import QUEUED_FLAG_SECONDS
from app.relay.outbound.intake_batch import (
    OutboundOutcome,
    OutboundRequest,
    store_outbound_alone,
    store_outbound_batch,
)
from app.store.db import database
from app.store.models import DIRECTION_INBOUND, DIRECTION_OUTBOUND
from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

MAX_BATCH = 500
MAX_QUEUE = 10_000
ENQUEUE_BACKLOG = 4  # committed batches waiting for their enqueue (then the writer waits)
FULL_QUEUE_PAUSE = 0.001
QUEUE_ERRORS = (RedisError, OSError)

IntakeRequest = InboundRequest | OutboundRequest
Outcome = InboundOutcome | OutboundOutcome
Result = Outcome | BaseException


@dataclass(frozen=True)
class _Pending:
    request: IntakeRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]


def commit_batch(requests: Sequence[IntakeRequest]) -> list[Result]:
    """Store ``requests`` in one transaction, or one by one when that fails on their data."""
    try:
        with database.atomic():
            return list(_store_together(requests))
    except STORAGE_ERRORS:
        raise
    except Exception as exc:
        logger.warning(
            "intake batch of %d failed (%s); storing its requests one by one",
            len(requests),
            type(exc).__name__,
        )
    return [_store_alone(request) for request in requests]


def _store_together(requests: Sequence[IntakeRequest]) -> list[Outcome]:
    ids = [request.integration_id for request in requests]
    lock_integrations(ids)
    integrations = load_integrations(ids)
    inbound = [(i, r) for i, r in enumerate(requests) if isinstance(r, InboundRequest)]
    outbound = [(i, r) for i, r in enumerate(requests) if isinstance(r, OutboundRequest)]
    results: dict[int, Outcome] = {}
    stored_in = store_inbound_batch([r for _, r in inbound], integrations)
    results.update(zip((i for i, _ in inbound), stored_in, strict=True))
    stored_out = store_outbound_batch([r for _, r in outbound], integrations)
    results.update(zip((i for i, _ in outbound), stored_out, strict=True))
    return [results[i] for i in range(len(requests))]


def _store_alone(request: IntakeRequest) -> Result:
    try:
        if isinstance(request, InboundRequest):
            return store_inbound_alone(request)
        return store_outbound_alone(request)
    except Exception as exc:
        if isinstance(exc, STORAGE_ERRORS):
            _drop_connection()
        else:
            logger.error("webhook for %s not stored", request.integration_id, exc_info=exc)
        return exc


def _drop_connection() -> None:
    """After a connection-level error, reconnect on the next batch (e.g. database restart)."""
    if not database.is_closed():
        database.close()


def lanes_to_enqueue(
    requests: Sequence[IntakeRequest], results: Sequence[Result]
) -> list[tuple[str, str, str]]:
    """``(direction, integration id, chat key)`` of each lane that got new events, once."""
    lanes: dict[tuple[str, str, str], None] = {}
    for request, result in zip(requests, results, strict=True):
        if isinstance(result, InboundOutcome) and result.deliverable:
            for chat_key in result.chat_keys:
                lanes[(DIRECTION_INBOUND, request.integration_id, chat_key)] = None
        elif isinstance(result, OutboundOutcome) and result.deliverable and result.stored:
            assert isinstance(request, OutboundRequest)
            recipient = getattr(request.change, "recipient", "")
            lanes[(DIRECTION_OUTBOUND, request.integration_id, recipient)] = None
    return list(lanes)


def enqueue_lanes(lanes: Sequence[tuple[str, str, str]]) -> None:
    """The lanes not queued yet (the ``queued`` flag of ``claim_enqueue``, set in one
    pipeline), then their jobs (one more). Raises one of ``QUEUE_ERRORS``."""
    if not lanes:
        return
    pipe = get_redis().pipeline(transaction=False)
    for direction, integration_id, chat_key in lanes:
        key = redis_key("queued", direction, integration_id, chat_key)
        pipe.set(key, b"1", nx=True, ex=QUEUED_FLAG_SECONDS)
    claimed = pipe.execute()
    jobs.enqueue_many(
        (LANE_ACTORS[direction], (integration_id, chat_key))
        for (direction, integration_id, chat_key), fresh in zip(lanes, claimed, strict=True)
        if fresh
    )


Committed = tuple[list[_Pending], list[Result]]


class IntakeWriter:
    """The writer thread and its bounded queue (started on first use, stopped by the app).

    A second thread enqueues each committed batch's lanes and answers its requests, so the
    writer commits the next batch meanwhile (Redis round trips off the commit path).
    """

    def __init__(self, max_batch: int = MAX_BATCH, max_queue: int = MAX_QUEUE) -> None:
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._committed: queue.Queue[Committed | None] = queue.Queue(maxsize=ENQUEUE_BACKLOG)
        self._thread: threading.Thread | None = None
        self._enqueuer: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # transactions committed (or attempted) so far
        self.requests = 0  # requests they carried

    def __repr__(self) -> str:
        return f"<IntakeWriter queued={self._queue.qsize()}>"

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = _thread(self._run, "intake-writer")
                self._enqueuer = _thread(self._enqueue, "intake-enqueuer")

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is queued, then end the thread (blocking)."""
        with self._lock:
            thread, self._thread = self._thread, None
            enqueuer, self._enqueuer = self._enqueuer, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
        if enqueuer is not None:
            enqueuer.join(timeout)

    async def submit(self, request: IntakeRequest) -> Outcome:
        """Wait until ``request`` is committed (and its lanes enqueued); raises its error."""
        self.start()
        loop = asyncio.get_running_loop()
        pending = _Pending(request, loop, loop.create_future())
        while True:
            try:
                self._queue.put_nowait(pending)
                break
            except queue.Full:
                await asyncio.sleep(FULL_QUEUE_PAUSE)  # backpressure: wait, never drop
        return await pending.future

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                self._committed.put(self._commit(batch))
            if stop:
                self._committed.put(None)
                return

    def _next_batch(self) -> tuple[list[_Pending], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, batch: list[_Pending]) -> Committed:
        requests = [pending.request for pending in batch]
        self.batches += 1
        self.requests += len(batch)
        try:
            database.connect(reuse_if_open=True)
            results = commit_batch(requests)
        except Exception as exc:  # the database is unreachable: 503 for the whole batch
            if isinstance(exc, STORAGE_ERRORS):
                _drop_connection()
            else:
                logger.error("intake batch failed", exc_info=exc)
            results = [exc] * len(batch)
        return batch, results

    def _enqueue(self) -> None:
        while (committed := self._committed.get()) is not None:
            batch, results = committed
            try:
                enqueue_lanes(lanes_to_enqueue([p.request for p in batch], results))
            except QUEUE_ERRORS as exc:
                logger.warning(
                    "%d webhooks stored, not queued (%s); the sweep will pick them up",
                    len(batch),
                    type(exc).__name__,
                )
            _answer(batch, results)


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _answer(batch: list[_Pending], results: list[Result]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, Result]]] = {}
    for pending, result in zip(batch, results, strict=True):
        by_loop.setdefault(pending.loop, []).append((pending, result))
    for loop, answers in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, answers)
        except RuntimeError:
            logger.warning("%d webhooks stored after their event loop closed", len(answers))


def _settle(answers: list[tuple[_Pending, Result]]) -> None:
    for pending, result in answers:
        if pending.future.done():  # the request was cancelled (client gone); stored anyway
            continue
        if isinstance(result, BaseException):
            pending.future.set_exception(result)
        else:
            pending.future.set_result(result)


def writer_of(app: Starlette) -> IntakeWriter:
    writer: IntakeWriter | None = getattr(app.state, "intake_writer", None)
    if writer is None:
        writer = app.state.intake_writer = IntakeWriter()
    return writer


async def stop_writer(app: Starlette) -> None:
    writer: IntakeWriter | None = getattr(app.state, "intake_writer", None)
    if writer is not None:
        await asyncio.to_thread(writer.stop)


async def _submit(request: Request, item: IntakeRequest) -> Outcome:
    """Store ``item`` through the app's writer; 503 when the database is unreachable."""
    try:
        return await writer_of(request.app).submit(item)
    except STORAGE_ERRORS as exc:
        logger.error("webhook for %s not stored: %s", item.integration_id, type(exc).__name__)
        raise ApiError(503, STORAGE_DOWN) from exc


async def submit_inbound(request: Request, item: InboundRequest) -> InboundOutcome:
    outcome = await _submit(request, item)
    assert isinstance(outcome, InboundOutcome)
    return outcome


async def submit_outbound(request: Request, item: OutboundRequest) -> OutboundOutcome:
    outcome = await _submit(request, item)
    assert isinstance(outcome, OutboundOutcome)
    return outcome
