"""One synchronous Redis client per process (the web process keeps its async one in app state)."""

from __future__ import annotations

import os
import threading

import redis

from app.config import get_settings

_lock = threading.Lock()
_sync: redis.Redis | None = None


def _forget_after_fork() -> None:
    global _sync
    _sync = None


os.register_at_fork(after_in_child=_forget_after_fork)


def get_redis() -> redis.Redis:
    global _sync
    with _lock:
        if _sync is None:
            _sync = redis.Redis.from_url(
                get_settings().effective_redis_url(), socket_timeout=5, socket_connect_timeout=5
            )
        return _sync


def reset_clients() -> None:
    """Drop the cached clients (tests switching servers, or the web lifespan closing)."""
    _forget_after_fork()


def redis_key(*parts: str) -> str:
    """A Redis key in this deployment's namespace (``QUEUE_NAMESPACE``), so that several
    deployments, or test runs, can share one Redis."""
    return ":".join((get_settings().queue_namespace, *parts))
