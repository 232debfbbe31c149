"""Baseline actors, run by ``dramatiq bench.actors`` on the project's broker and settings.

``noop`` measures Dramatiq's own drain rate; ``post_once`` measures an actor doing one pooled
httpx POST per message, which is the floor for a relay hop. Each counts itself in Redis.
"""

from __future__ import annotations

import dramatiq

from app.integrations.http import shared_client
from app.store.redis_client import get_redis, redis_key
from workers.broker import setup_broker

broker = setup_broker()

COUNTER = "bench:done"


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop() -> None:
    get_redis().incr(redis_key(COUNTER))


@dramatiq.actor(queue_name="bench", max_retries=0)
def post_once(url: str, headers: dict[str, str], body: dict[str, object]) -> None:
    response = shared_client(allow_private=True).post(url, json=body, headers=headers)
    response.raise_for_status()
    get_redis().incr(redis_key(COUNTER))
