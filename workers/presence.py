"""Actors of typing, both ways: an agent typing (the customer sees "typing…" and blue ticks) and
a customer typing on a gateway (the agents see it in Chatwoot).

Typing is ephemeral: never stored as a relay event, never retried, and dropped when it waited
in the queue longer than :data:`MAX_AGE_MS` (it would show a typing that is long over). Its own
queue keeps it from waiting behind a backlog of replies.
"""

from __future__ import annotations

import logging

import dramatiq

from app import jobs
from app.logs import log_context
from app.relay import read_receipts
from app.relay.inbound.customer_typing import customer_typing as show_customer_typing
from app.store.db import thread_connection

logger = logging.getLogger(__name__)

MAX_AGE_MS = 15_000
TIME_LIMIT_MS = 60_000


@dramatiq.actor(
    actor_name=jobs.AGENT_TYPING,
    queue_name=jobs.TYPING_QUEUE,
    max_retries=0,
    max_age=MAX_AGE_MS,
    time_limit=TIME_LIMIT_MS,
)
def agent_typing(integration_id: str, chat_key: str, on: bool) -> None:
    """An agent started (``on``) or stopped typing in the chat ``chat_key``."""
    with thread_connection(), log_context(integration_id=integration_id):
        outcome = read_receipts.agent_typing(integration_id, chat_key, on)
    logger.info("agent typing %s in %s: %s", "on" if on else "off", chat_key, outcome)


@dramatiq.actor(
    actor_name=jobs.CUSTOMER_TYPING,
    queue_name=jobs.TYPING_QUEUE,
    max_retries=0,
    max_age=MAX_AGE_MS,
    time_limit=TIME_LIMIT_MS,
)
def customer_typing(integration_id: str, identifiers: list[str], on: bool) -> None:
    """The customer of the chat named by ``identifiers`` started or stopped typing."""
    with thread_connection(), log_context(integration_id=integration_id):
        outcome = show_customer_typing(integration_id, list(identifiers), on)
    logger.info("customer typing %s in %s: %s", "on" if on else "off", identifiers[:1], outcome)
