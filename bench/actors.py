"""The drain baseline, run by ``dramatiq bench.actors`` on the project's broker and settings:
``post_once`` does one pooled httpx POST per message (the floor for a relay hop) and records in
Redis how many it did and when the first and the last one finished."""

from __future__ import annotations

import time

import dramatiq

from app.integrations.http import shared_client
from app.store.redis_client import get_redis, redis_key
from workers.broker import setup_broker

broker = setup_broker()

DONE, FIRST, LAST = "bench:done", "bench:first", "bench:last"


@dramatiq.actor(queue_name="bench", max_retries=0)
def post_once(url: str, headers: dict[str, str], body: dict[str, object]) -> None:
    response = shared_client(allow_private=True).post(url, json=body, headers=headers)
    response.raise_for_status()
    now = str(time.time())
    pipe = get_redis().pipeline()
    pipe.incr(redis_key(DONE))
    pipe.setnx(redis_key(FIRST), now)
    pipe.set(redis_key(LAST), now)
    pipe.execute()
