"""The Dramatiq broker: Redis from ``REDIS_URL``, namespaced by ``QUEUE_NAMESPACE``."""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage, Middleware

from app import jobs
from app.config import Settings, get_settings
from app.heap import freeze_startup_heap
from app.store import init_store

logger = logging.getLogger(__name__)


class StoreSetup(Middleware):
    """Opens the database and the cipher in every worker process once it has booted, then
    freezes the process's startup heap (see :mod:`app.heap`)."""

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        init_store(get_settings())
        frozen = freeze_startup_heap()
        logger.info("worker process ready (%d startup objects frozen)", frozen)


def build_broker(settings: Settings) -> RedisBroker:
    broker = jobs.build_broker(settings)
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(StoreSetup())
    return broker


def setup_broker(settings: Settings | None = None) -> dramatiq.Broker:
    """Install the project's broker as Dramatiq's global broker (before actors are declared)."""
    broker = build_broker(settings or get_settings())
    dramatiq.set_broker(broker)
    return broker
