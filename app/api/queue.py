"""Enqueueing jobs from the web process (blocking Redis calls, run in the thread pool).

Jobs are sent by actor name (:mod:`app.jobs`), so the web process never imports ``workers``.
A failure to enqueue is reported to the caller; events stay stored and the workers' recovery
sweep picks them up.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from app import jobs
from app.relay.lanes.drain import claim_enqueue
from app.store.models import DIRECTION_INBOUND, DIRECTION_OUTBOUND

logger = logging.getLogger(__name__)

QUEUE_ERRORS = (RedisError, OSError)
LANE_ACTORS = {DIRECTION_INBOUND: jobs.DELIVER_INBOUND, DIRECTION_OUTBOUND: jobs.DELIVER_OUTBOUND}


def _send_provision(integration_id: str, generation: int) -> None:
    jobs.enqueue(jobs.PROVISION, integration_id, generation)


def _send_lanes(direction: str, integration_id: str, chat_keys: list[str]) -> None:
    actor_name = LANE_ACTORS[direction]
    for chat_key in chat_keys:
        if claim_enqueue(direction, integration_id, chat_key):
            jobs.enqueue(actor_name, integration_id, chat_key)


def _send_replay(integration_id: str) -> None:
    jobs.enqueue(jobs.REPLAY_INTEGRATION, integration_id)


async def enqueue_provision(integration_id: str, generation: int) -> None:
    """Raises one of ``QUEUE_ERRORS`` when Redis is unreachable."""
    await run_in_threadpool(_send_provision, integration_id, generation)


async def enqueue_lanes(direction: str, integration_id: str, chat_keys: list[str]) -> bool:
    """Enqueue delivery of each lane once; False (logged) when the queue is unreachable."""
    try:
        await run_in_threadpool(_send_lanes, direction, integration_id, chat_keys)
    except QUEUE_ERRORS as exc:
        logger.warning(
            "events of %s stored, not queued (%s); the sweep will pick them up",
            integration_id,
            type(exc).__name__,
        )
        return False
    return True


async def enqueue_replay(integration_id: str) -> bool:
    try:
        await run_in_threadpool(_send_replay, integration_id)
    except QUEUE_ERRORS as exc:
        logger.warning(
            "replay of %s not queued (%s); the sweep will pick it up",
            integration_id,
            type(exc).__name__,
        )
        return False
    return True
