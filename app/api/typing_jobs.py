"""Typing, handed from a webhook to a typing job (:mod:`app.jobs`): ephemeral, never stored.

Chatwoot never retries a webhook and a gateway's presence is outdated seconds later, so a queue
that cannot be reached loses the typing (logged) and the webhook still answers 200: nothing
durable depends on it.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from app import jobs
from app.api.queue import QUEUE_ERRORS
from app.relay.inbound.gateway_presence import CustomerPresence
from app.relay.outbound.chatwoot_webhook import AgentTyping

logger = logging.getLogger(__name__)


async def enqueue_agent_typing(integration_id: str, typing: AgentTyping) -> bool:
    """Ask a worker to show the customer the agent's typing; False when the queue is down."""
    args = (integration_id, typing.recipient, typing.on)
    return await _enqueue(jobs.AGENT_TYPING, args)


async def enqueue_customer_typing(integration_id: str, presence: CustomerPresence) -> bool:
    """Ask a worker to show the agents the customer's typing; False when the queue is down."""
    args = (integration_id, list(presence.identifiers), presence.typing)
    return await _enqueue(jobs.CUSTOMER_TYPING, args)


async def _enqueue(actor_name: str, args: tuple[object, ...]) -> bool:
    try:
        await run_in_threadpool(jobs.enqueue, actor_name, *args)
    except QUEUE_ERRORS as exc:
        logger.warning("%s for %s not queued: %s", actor_name, args[0], type(exc).__name__)
        return False
    return True
