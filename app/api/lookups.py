"""Cached webhook lookups (see :mod:`app.management.lookup_cache`) with their async glue.

Each request reads the config version once; concurrent requests share one Redis ``GET``
(the next one sent after they asked, so a change committed and bumped before a request
arrived is always seen by it).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
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
    config_version_key,
    load_instance,
    load_integration,
)
from app.store.db import request_connection

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class VersionReader:
    """The config version token, one Redis ``GET`` in flight at a time for all requests.

    Each request waits on a future of its own (a client that goes away cancels only its
    own); every request that asked while a ``GET`` was in flight is answered by the next one.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: list[asyncio.Future[str | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._healthy = True

    async def token(self) -> str | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): start afresh
            self._loop, self._waiting, self._task = loop, [], None
        mine: asyncio.Future[str | None] = loop.create_future()
        self._waiting.append(mine)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        return await mine

    async def _run(self) -> None:
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            try:
                value = await self._read()
            except asyncio.CancelledError:  # the loop is shutting down
                for future in waiting:
                    future.cancel()
                raise
            except Exception as exc:  # a bug: each waiting request fails with it, none hangs
                for future in waiting:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for future in waiting:
                if not future.done():
                    future.set_result(value)

    async def _read(self) -> str | None:
        key = config_version_key()
        try:
            value = await self._redis.get(key)
            if value is None:  # first use, or Redis restarted empty: start a new version
                await self._redis.set(key, uuid.uuid4().hex, nx=True)
        except (RedisError, OSError) as exc:
            if self._healthy:
                logger.warning("lookups uncached, Redis unavailable: %s", type(exc).__name__)
            self._healthy = False
            return None
        self._healthy = True
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


class Lookups:
    """One web app's caches of instances and integrations."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.version = VersionReader(redis)
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
    token = await lookups.version.token()
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
