"""Actors of the template sync (:mod:`app.management.templates`) and its 3-hourly schedule."""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware

from app import jobs
from app.logs import log_context
from app.management import templates as service
from app.store.db import thread_connection
from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

MAX_RETRIES = 3
SCHEDULE_CHECK_SECONDS = 300.0  # how often each process asks whether the periodic sync is due
SCHEDULE_FIRST_CHECK_SECONDS = 30.0  # a booting worker first recovers its lanes
SCHEDULE_LOCK_SECONDS = 60.0


@dramatiq.actor(
    actor_name=jobs.SYNC_TEMPLATES,
    queue_name=jobs.TEMPLATES_QUEUE,
    max_retries=MAX_RETRIES,
    min_backoff=30_000,
    time_limit=10 * 60_000,
)
def sync_templates(integration_id: str) -> None:
    """Sync one integration's message templates into its inbox. A transient failure
    (:class:`~app.management.templates.SyncRetryLater`) is retried with Dramatiq's backoff; the
    next trigger (at the latest the periodic sync) tries again after the last retry."""
    with thread_connection(), log_context(integration_id=integration_id):
        service.sync_integration(integration_id)


@dramatiq.actor(
    actor_name=jobs.TEMPLATES_CHANGED,
    queue_name=jobs.TEMPLATES_QUEUE,
    max_retries=MAX_RETRIES,
    min_backoff=5_000,
)
def templates_changed(instance_id: str, business_account_id: str) -> None:
    """Meta reported template changes of the business account (debounced by the web process):
    sync every integration of it in the instance's account."""
    service.take_pending(instance_id, business_account_id)
    with thread_connection():
        found = service.integrations_of_business_account(instance_id, business_account_id)
    for integration_id in found:
        sync_templates.send(integration_id)
    logger.info(
        "templates of business account %s changed: %d integrations to sync",
        business_account_id,
        len(found),
    )


def schedule_if_due(interval: float = service.SYNC_INTERVAL_SECONDS) -> int | None:
    """Enqueue a sync of every integration with templates unless that was done (by any
    process) less than ``interval`` ago; None when skipped. One process at a time: a Redis lock;
    the time of the last run is a Redis key that expires after ``interval``."""
    client = get_redis()
    lock = client.lock(redis_key("templates", "schedule", "lock"), timeout=SCHEDULE_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return None
    try:
        done = redis_key("templates", "schedule", "done")
        if client.exists(done):
            return None
        with thread_connection():
            found = service.integrations_to_sync()
        for integration_id in found:
            sync_templates.send(integration_id)
        client.set(done, "1", ex=max(1, int(interval)))
    finally:
        lock.release()
    if found:
        logger.info("periodic template sync: %d integrations", len(found))
    return len(found)


class TemplateScheduler(Middleware):
    """Every 5 minutes, each worker process asks whether the 3-hourly template sync is due
    (:func:`schedule_if_due`); one of them enqueues it."""

    def __init__(
        self,
        first_check: float = SCHEDULE_FIRST_CHECK_SECONDS,
        every: float = SCHEDULE_CHECK_SECONDS,
    ) -> None:
        self.first_check = first_check
        self.every = every
        self.thread: threading.Thread | None = None
        self._stop = threading.Event()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop = stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(stop,), name="template-scheduler", daemon=True
        )
        self.thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self._stop.set()

    def _run(self, stop: threading.Event) -> None:
        wait = self.first_check
        while not stop.wait(wait):
            wait = self.every
            try:
                schedule_if_due()
            except Exception:  # checked again at the next round; the failure is logged
                logger.exception("periodic template sync could not be scheduled")
