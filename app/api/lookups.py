"""Cached webhook lookups (see :mod:`app.management.lookup_cache`) with their async glue.

The config token that tags cache entries comes from :class:`ConfigWatch`: a subscription to
the configuration-change channel, held by a task of the web process's event loop, so a
request reads the token without any I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.api.errors import ApiError
from app.api.webhook_body import STORAGE_DOWN, STORAGE_ERRORS
from app.management.lookup_cache import (
    LookupCache,
    WebhookInstance,
    WebhookIntegration,
    config_channel,
    load_instance,
    load_integration,
    local_change_count,
)
from app.store.db import request_connection

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

HEARTBEAT_SECONDS = 1.0
"""A subscription quiet this long is pinged."""
SILENCE_LIMIT = 3 * HEARTBEAT_SECONDS
"""A subscription not heard from for this long may be cut off without an error (a network
partition): until it is heard again there is no token, so nothing is served from the cache."""
RECONNECT_PAUSE = 0.5


class ConfigWatch:
    """This process's config token, moved by every configuration change announced on Redis.

    A task of the event loop subscribes to :func:`~app.management.lookup_cache.config_channel`
    and moves its epoch on each announcement, on each (re)subscription and on resuming after
    a silence (a token is only handed out once subscribed, so those are the only moves
    needed); the token also carries this process's own change count, so a change made here
    is seen by the next request here. No token (nothing cached) until the subscription is
    confirmed, while it is down or reconnecting, and while it is silent past
    :data:`SILENCE_LIMIT`: announcements may have been missed then.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._epoch = 0
        self._subscribed = False
        self._heard = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._healthy = True

    def token(self) -> str | None:
        """The current token, or ``None`` when announcements may be missed (start, outage)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._start(loop)
        if not self._subscribed or loop.time() - self._heard > SILENCE_LIMIT:
            return None
        return f"{self._epoch}.{local_change_count()}"

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._subscribed = loop, False
        self._task = loop.create_task(self._watch(), name="config-watch")

    async def stop(self) -> None:
        """End the subscription (the app is shutting down)."""
        task, self._task = self._task, None
        self._subscribed = False
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                if self._healthy:
                    logger.warning("lookups uncached, Redis unavailable: %s", type(exc).__name__)
                self._healthy = False
            except Exception as exc:  # a bug: logged loudly; uncached until subscribed again
                logger.error("config watch failed", exc_info=exc)
            await asyncio.sleep(RECONNECT_PAUSE)

    async def _listen(self) -> None:
        try:
            async with self._redis.pubsub() as pubsub:
                await pubsub.subscribe(config_channel())
                while True:
                    message = await pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                    if message is None:
                        await pubsub.ping()
                    else:
                        self._hear(message)
        finally:
            self._subscribed = False

    def _hear(self, message: dict[str, Any]) -> None:
        now = asyncio.get_running_loop().time()
        if message["type"] in ("subscribe", "message") or now - self._heard > SILENCE_LIMIT:
            self._epoch += 1
        if message["type"] == "subscribe":
            self._subscribed = True
            if not self._healthy:
                logger.info("lookups cached again, Redis reachable")
            self._healthy = True
        self._heard = now


class Lookups:
    """One web app's caches of instances and integrations."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.config = ConfigWatch(redis)
        self.instances: LookupCache[tuple[str, str], WebhookInstance] = LookupCache()
        self.integrations: LookupCache[str, WebhookIntegration] = LookupCache()
        self.flights: dict[tuple[int, object, str | None], asyncio.Future[Any]] = {}

    def __repr__(self) -> str:
        return f"<Lookups {self.instances!r} {self.integrations!r}>"


def lookups_of(app: Starlette) -> Lookups:
    found: Lookups | None = getattr(app.state, "lookups", None)
    if found is None:
        found = app.state.lookups = Lookups(app.state.redis)
    return found


async def _load(
    lookups: Lookups, cache: LookupCache[K, V], key: K, loader: Callable[[], V | None]
) -> V | None:
    """A cached value, or one load shared by every request missing the same key meanwhile
    (a burst after a change costs one query, not one per request); 503 when the database is
    unreachable."""
    token = lookups.config.token()
    hit, value = cache.cached(key, token)
    if hit:
        return value
    flight_key = (id(cache), key, token)
    flight = lookups.flights.get(flight_key)
    if flight is None or flight.get_loop() is not asyncio.get_running_loop():
        flight = asyncio.ensure_future(
            run_in_threadpool(_with_connection, cache, key, token, loader)
        )
        lookups.flights[flight_key] = flight
        flight.add_done_callback(lambda _: lookups.flights.pop(flight_key, None))
    try:
        return await asyncio.shield(flight)
    except STORAGE_ERRORS as exc:
        raise ApiError(503, STORAGE_DOWN) from exc


def _with_connection(
    cache: LookupCache[K, V], key: K, token: str | None, loader: Callable[[], V | None]
) -> V | None:
    """On the thread pool's request connection (a pooled one goes back after the load)."""
    with request_connection():
        return cache.load(key, token, loader)


async def webhook_instance(request: Request, name: str, provider: str) -> WebhookInstance | None:
    """The instance ``name`` of ``provider`` (None when there is none)."""
    lookups = lookups_of(request.app)
    return await _load(
        lookups, lookups.instances, (name, provider), lambda: load_instance(name, provider)
    )


async def webhook_integration(request: Request, integration_id: str) -> WebhookIntegration | None:
    lookups = lookups_of(request.app)
    return await _load(
        lookups, lookups.integrations, integration_id, lambda: load_integration(integration_id)
    )


async def stop_lookups(app: Starlette) -> None:
    """End the app's config watch (at shutdown, before its Redis client is closed)."""
    found: Lookups | None = getattr(app.state, "lookups", None)
    if found is not None:
        await found.config.stop()
