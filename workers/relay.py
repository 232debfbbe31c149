"""Actors of the relay: drain one chat's lane, replay an integration, the recovery sweep, and
the hourly retention purge."""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware

from app import jobs
from app.config import get_settings
from app.management import retention
from app.relay.inbound.deliver import InboundHandler
from app.relay.lanes import drain, liveness, recovery
from app.relay.outbound.deliver import OutboundHandler
from app.store.db import thread_connection
from app.store.models import DIRECTION_INBOUND, DIRECTION_OUTBOUND
from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 10.0
SWEEP_IDLE_SECONDS = 10.0
HEARTBEAT_RETRY_SECONDS = 0.5
PURGE_INTERVAL_SECONDS = 3600.0  # one purge an hour, over all worker processes
PURGE_CHECK_SECONDS = 300.0  # how often each process asks whether a purge is due
PURGE_LOCK_SECONDS = 300.0  # extended after every batch while a purge runs


def wake_lane(direction: str, integration_id: str, chat_key: str) -> None:
    """Enqueue a lane from inside another (a status woke it, a reply was confirmed)."""
    lane_actor(direction).send(integration_id, chat_key)


INBOUND = InboundHandler(wake_lane)
OUTBOUND = OutboundHandler(wake_lane)


UNEXPECTED_FAILURE_RETRIES = 20  # a bug or an outage inside a drain; the sweep is the last net


def _lane_retry_when(retries: int, exception: BaseException) -> bool:
    """Dramatiq's ``retry_when``: a lane's own ``Retry`` (a transient failure, with the event's
    backoff) is always honoured — how often is bounded per event by the lane (``MAX_ATTEMPTS``);
    anything unexpected is retried with Dramatiq's backoff a bounded number of times."""
    return isinstance(exception, dramatiq.Retry) or retries < UNEXPECTED_FAILURE_RETRIES


def _drain(handler: drain.LaneHandler, integration_id: str, chat_key: str) -> None:
    """Drain one lane. A transient failure asks Dramatiq's ``Retries`` to run the message
    again after the event's backoff (``Retry`` with that delay)."""
    result = drain.drain(handler, integration_id, chat_key)
    if result.retry_after is not None:
        raise dramatiq.Retry(delay=int(result.retry_after * 1000))


@dramatiq.actor(
    actor_name=jobs.DELIVER_INBOUND,
    queue_name=jobs.RELAY_QUEUE,
    retry_when=_lane_retry_when,
    time_limit=15 * 60_000,
)
def deliver_inbound(integration_id: str, chat_key: str) -> None:
    """Deliver the pending WhatsApp events of one chat into Chatwoot, in order."""
    _drain(INBOUND, integration_id, chat_key)


@dramatiq.actor(
    actor_name=jobs.DELIVER_OUTBOUND,
    queue_name=jobs.RELAY_QUEUE,
    retry_when=_lane_retry_when,
    time_limit=15 * 60_000,
)
def deliver_outbound(integration_id: str, chat_key: str) -> None:
    """Send the pending agent replies of one chat to WhatsApp, in order."""
    _drain(OUTBOUND, integration_id, chat_key)


@dramatiq.actor(actor_name=jobs.REPLAY_INTEGRATION, queue_name=jobs.RELAY_QUEUE, max_retries=20)
def replay_integration(integration_id: str) -> None:
    """Enqueue every lane of the integration that has events waiting (after set/resume)."""
    enqueue_lanes(recovery.ready_lanes(integration_id))


def lane_actor(direction: str) -> dramatiq.Actor[[str, str], None]:
    return {DIRECTION_INBOUND: deliver_inbound, DIRECTION_OUTBOUND: deliver_outbound}[direction]


def enqueue_lanes(found: list[recovery.Lane]) -> None:
    for direction, integration_id, chat_key in found:
        lane_actor(direction).send(integration_id, chat_key)
    if found:
        logger.info("enqueued %d lanes with undelivered events", len(found))


def sweep(idle_seconds: float = SWEEP_IDLE_SECONDS) -> int:
    """Enqueue lanes whose events have waited ``idle_seconds`` (one process at a time)."""
    lock = get_redis().lock(redis_key("sweep"), timeout=SWEEP_INTERVAL_SECONDS)
    if not lock.acquire(blocking=False):
        return 0
    try:
        with thread_connection():
            found = recovery.ready_lanes(idle_seconds=idle_seconds)
        enqueue_lanes(found)
    finally:
        lock.release()
    return len(found)


def purge_if_due(interval: float = PURGE_INTERVAL_SECONDS) -> retention.PurgeResult | None:
    """Run the retention purge unless one ran (in any process) less than ``interval`` ago or
    is running now; None when skipped. One process at a time: a Redis lock, extended after
    every batch; the time of the last purge is a Redis key that expires after ``interval``."""
    client = get_redis()
    lock = client.lock(redis_key("retention:lock"), timeout=PURGE_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return None
    try:
        if client.exists(redis_key("retention:done")):
            return None
        with thread_connection():
            result = retention.purge(get_settings().retention_days, keep_alive=lock.reacquire)
        client.set(redis_key("retention:done"), "1", ex=max(1, int(interval)))
    finally:
        lock.release()
    return result


class RecoverySweeper(Middleware):
    """On worker boot, and then every 10 s, re-enqueue stored-but-undelivered events; every
    3 s, say this process is alive (its lanes are taken over once it is not); and every 5 min
    see whether the hourly retention purge is due (its own thread: a long purge never delays
    a sweep).

    Dramatiq hands a killed worker's messages back only after a heartbeat timeout and a rare
    maintenance pass, so we never rely on it: the database is the source of truth. The
    heartbeat has its own thread, so a slow sweep never makes a live process look dead; it
    beats again as soon as Redis is back after a restart.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # one stop signal per boot: threads of an earlier worker on the same broker (tests boot
        # several) never see a later boot's fresh signal and always end
        self._stop = stop = threading.Event()
        for target, name in (
            (self._beat, "liveness-heartbeat"),
            (self._sweep, "recovery-sweeper"),
            (self._purge, "retention-purge"),
        ):
            threading.Thread(target=target, args=(stop,), name=name, daemon=True).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _beat(self, stop: threading.Event) -> None:
        failing = False
        while not stop.is_set():
            try:
                liveness.beat()
                failing = False
            except Exception as exc:  # Redis down: beat again as soon as it is back
                level = logging.DEBUG if failing else logging.WARNING
                logger.log(level, "liveness heartbeat failed: %s", type(exc).__name__)
                failing = True
            stop.wait(HEARTBEAT_RETRY_SECONDS if failing else liveness.HEARTBEAT_SECONDS)

    def _sweep(self, stop: threading.Event) -> None:
        idle = 0.0  # at boot, everything pending is due
        while not stop.is_set():
            try:
                sweep(idle)
                idle = SWEEP_IDLE_SECONDS
            except Exception:  # the sweeper must keep running; the failure is logged
                logger.exception("recovery sweep failed")
            stop.wait(SWEEP_INTERVAL_SECONDS if idle else liveness.HEARTBEAT_SECONDS)

    def _purge(self, stop: threading.Event) -> None:
        # the first check waits too: a booting worker first recovers the lanes
        while not stop.wait(PURGE_CHECK_SECONDS):
            try:
                purge_if_due()
            except Exception:  # the purge is retried at the next check; the failure is logged
                logger.exception("retention purge failed")
